// String hashes of Keras's Hashing layer (TensorFlow's to_hash_bucket_fast and
// to_hash_bucket_strong): FarmHash's Fingerprint64 and SipHash-2-4.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastdl {

// FarmHash Fingerprint64 of n bytes (the "na" 64-bit hash with FarmHash's fixed seed 81).
std::uint64_t fingerprint64(const unsigned char* s, std::size_t n);

// SipHash-2-4 of n bytes under the 128-bit key (k0, k1), k0 the key's first 8 bytes read
// little-endian.
std::uint64_t siphash24(std::uint64_t k0, std::uint64_t k1, const unsigned char* s,
                        std::size_t n);

}  // namespace fastdl
