// FarmHash Fingerprint64 and SipHash-2-4, written from their published definitions (FarmHash's
// farmhashna::Hash64 and the SipHash paper by Aumasson and Bernstein). Every length class is
// checked against TensorFlow's to_hash_bucket_fast/_strong and the SipHash paper's test vector
// (tests/test_hashing.py, with pyfarmhash as the oracle where it is installed).
#include "hashing.h"

#include <cstring>
#include <utility>

namespace fastdl {

namespace {

using u64 = std::uint64_t;

// Little-endian loads, whatever the host's byte order.
inline u64 load64(const unsigned char* p) {
    u64 v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}
inline u64 load32(const unsigned char* p) {
    return u64{p[0]} | u64{p[1]} << 8 | u64{p[2]} << 16 | u64{p[3]} << 24;
}
inline u64 rotate_right(u64 v, int r) { return r == 0 ? v : (v >> r) | (v << (64 - r)); }
inline u64 rotate_left(u64 v, int r) { return (v << r) | (v >> (64 - r)); }

// ---------------------------------------------------------------- FarmHash (na)
constexpr u64 k0 = 0xc3a5c85c97cb3127ULL;
constexpr u64 k1 = 0xb492b66fbe98f273ULL;
constexpr u64 k2 = 0x9ae16a3b2f90404fULL;

inline u64 shift_mix(u64 v) { return v ^ (v >> 47); }

inline u64 hash_len16(u64 u, u64 v, u64 mul) {
    u64 a = (u ^ v) * mul;
    a ^= a >> 47;
    u64 b = (v ^ a) * mul;
    b ^= b >> 47;
    return b * mul;
}

u64 hash_len0to16(const unsigned char* s, std::size_t n) {
    if (n >= 8) {
        const u64 mul = k2 + n * 2;
        const u64 a = load64(s) + k2, b = load64(s + n - 8);
        const u64 c = rotate_right(b, 37) * mul + a, d = (rotate_right(a, 25) + b) * mul;
        return hash_len16(c, d, mul);
    }
    if (n >= 4) {
        const u64 mul = k2 + n * 2;
        return hash_len16(n + (load32(s) << 3), load32(s + n - 4), mul);
    }
    if (n > 0) {
        const u64 y = u64{s[0]} + (u64{s[n >> 1]} << 8), z = n + (u64{s[n - 1]} << 2);
        return shift_mix(y * k2 ^ z * k0) * k2;
    }
    return k2;
}

u64 hash_len17to32(const unsigned char* s, std::size_t n) {
    const u64 mul = k2 + n * 2;
    const u64 a = load64(s) * k1, b = load64(s + 8);
    const u64 c = load64(s + n - 8) * mul, d = load64(s + n - 16) * k2;
    return hash_len16(rotate_right(a + b, 43) + rotate_right(c, 30) + d,
                      a + rotate_right(b + k2, 18) + c, mul);
}

u64 hash_len33to64(const unsigned char* s, std::size_t n) {
    const u64 mul = k2 + n * 2;
    const u64 a = load64(s) * k2, b = load64(s + 8);
    const u64 c = load64(s + n - 8) * mul, d = load64(s + n - 16) * k2;
    const u64 y = rotate_right(a + b, 43) + rotate_right(c, 30) + d;
    const u64 z = hash_len16(y, a + rotate_right(b + k2, 18) + c, mul);
    const u64 e = load64(s + 16) * mul, f = load64(s + 24);
    const u64 g = (y + load64(s + n - 32)) * mul, h = (z + load64(s + n - 24)) * mul;
    return hash_len16(rotate_right(e + f, 43) + rotate_right(g, 30) + h,
                      e + rotate_right(f + a, 18) + g, mul);
}

// Two 64-bit mixes of the 32 bytes at s with seeds a and b.
std::pair<u64, u64> weak_hash32(const unsigned char* s, u64 a, u64 b) {
    const u64 w = load64(s), x = load64(s + 8), y = load64(s + 16), z = load64(s + 24);
    a += w;
    b = rotate_right(b + a + z, 21);
    const u64 c = a;
    a += x;
    a += y;
    b += rotate_right(a, 44);
    return {a + z, b + c};
}

// ---------------------------------------------------------------- SipHash
inline void sip_round(u64& v0, u64& v1, u64& v2, u64& v3) {
    v0 += v1, v1 = rotate_left(v1, 13), v1 ^= v0, v0 = rotate_left(v0, 32);
    v2 += v3, v3 = rotate_left(v3, 16), v3 ^= v2;
    v0 += v3, v3 = rotate_left(v3, 21), v3 ^= v0;
    v2 += v1, v1 = rotate_left(v1, 17), v1 ^= v2, v2 = rotate_left(v2, 32);
}

}  // namespace

std::uint64_t fingerprint64(const unsigned char* s, std::size_t n) {
    if (n <= 16) return hash_len0to16(s, n);
    if (n <= 32) return hash_len17to32(s, n);
    if (n <= 64) return hash_len33to64(s, n);
    // 64-byte blocks over (x, y, z, v, w), then the last 64 bytes (overlapping the blocks).
    constexpr u64 seed = 81;
    u64 x = seed, y = seed * k1 + 113, z = shift_mix(y * k2 + 113) * k2;
    std::pair<u64, u64> v{0, 0}, w{0, 0};
    x = x * k2 + load64(s);
    const unsigned char* end = s + ((n - 1) / 64) * 64;
    const unsigned char* last64 = end + ((n - 1) & 63) - 63;
    do {
        x = rotate_right(x + y + v.first + load64(s + 8), 37) * k1;
        y = rotate_right(y + v.second + load64(s + 48), 42) * k1;
        x ^= w.second;
        y += v.first + load64(s + 40);
        z = rotate_right(z + w.first, 33) * k1;
        v = weak_hash32(s, v.second * k1, x + w.first);
        w = weak_hash32(s + 32, z + w.second, y + load64(s + 16));
        std::swap(z, x);
        s += 64;
    } while (s != end);
    const u64 mul = k1 + ((z & 0xff) << 1);
    s = last64;
    w.first += (n - 1) & 63;
    v.first += w.first;
    w.first += v.first;
    x = rotate_right(x + y + v.first + load64(s + 8), 37) * mul;
    y = rotate_right(y + v.second + load64(s + 48), 42) * mul;
    x ^= w.second * 9;
    y += v.first * 9 + load64(s + 40);
    z = rotate_right(z + w.first, 33) * mul;
    v = weak_hash32(s, v.second * mul, x + w.first);
    w = weak_hash32(s + 32, z + w.second, y + load64(s + 16));
    std::swap(z, x);
    return hash_len16(hash_len16(v.first, w.first, mul) + shift_mix(y) * k0 + z,
                      hash_len16(v.second, w.second, mul) + x, mul);
}

std::uint64_t siphash24(std::uint64_t key0, std::uint64_t key1, const unsigned char* s,
                        std::size_t n) {
    u64 v0 = key0 ^ 0x736f6d6570736575ULL, v1 = key1 ^ 0x646f72616e646f6dULL;
    u64 v2 = key0 ^ 0x6c7967656e657261ULL, v3 = key1 ^ 0x7465646279746573ULL;
    const std::size_t whole = n / 8 * 8;
    for (std::size_t i = 0; i < whole; i += 8) {
        const u64 m = load64(s + i);
        v3 ^= m;
        sip_round(v0, v1, v2, v3);
        sip_round(v0, v1, v2, v3);
        v0 ^= m;
    }
    // the last 0-7 bytes, little-endian, with the length's low byte on top
    u64 last = u64{n & 0xff} << 56;
    for (std::size_t i = whole; i < n; ++i) last |= u64{s[i]} << (8 * (i - whole));
    v3 ^= last;
    sip_round(v0, v1, v2, v3);
    sip_round(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    for (int r = 0; r < 4; ++r) sip_round(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

}  // namespace fastdl
