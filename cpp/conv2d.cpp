// 2-D convolution, NHWC: im2col + GEMM in cache-sized tiles of output pixels.
//
// Notation: pixel row m = (n * OH + oh) * OW + ow is a row of the im2col matrix
// cols (N*OH*OW, Kg), Kg = KH*KW*Cg, whose columns are ordered (kh, kw, c) like the flattened
// kernel (Kg, F). Group g reads channels [g*Cg, (g+1)*Cg) and writes filters [g*Fg, (g+1)*Fg).
//
// Why not one big Eigen GEMM: the conv GEMMs are tall and skinny ((N*OH*OW) x Kg x F with F of
// 32..128); Eigen's parallel GEMM splits them poorly (measured: no gain from 2 threads, and a 3x
// loss for the dkernel reduction), and a whole-batch im2col matrix makes a round trip through
// memory. So each thread takes tiles of pixel rows, builds the tile's im2col rows in its own
// L2-sized buffer and multiplies them with a register-blocked micro-kernel written with Eigen's
// SIMD packets (AVX-512 / AVX2 / SSE / scalar as compiled); bias and ReLU are applied while the
// tile is in cache. No Eigen GEMM runs here, so OpenMP regions never nest with Eigen's.
//
// Forward:  y[tile] = [relu](cols[tile] @ W + bias)                      one parallel loop
//           (with a fused max pooling, tiles are whole pooling rows, pooled while in cache)
// Backward: g = dy * (y > 0) (when fused with ReLU), dbias = sum_m g,
//           dW = sum_tiles cols[tile]^T @ g[tile]   (per-thread partial sums, added in thread
//                                                    order: deterministic for a thread count)
//           dcols[chunk] = g[chunk] @ W^T, then dx += col2im(dcols[chunk]) in gather form
//           (threads own input rows). Chunks of output rows bound the dcols buffer
//           (conv2d_chunk_bytes).
// 1x1, stride 1, unpadded convolutions skip im2col (x is its own cols) and col2im. 3x3
// stride-1 convolutions with C, F >= 16 go to Winograd (conv2d_winograd.cpp) instead.
#include "conv2d.h"
#include "conv2d_tiles.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

namespace fastdl {

namespace {

using namespace conv_tiles;

// 512 KiB in all: a dcols chunk stays in L2 between its GEMM and col2im (4 MiB measured 5%
// slower end to end on the tutorial CNN with 1 thread, level with 2).
std::atomic<index_t> g_chunk_bytes{index_t{512} << 10};
constexpr index_t kTileBytes = index_t{160} << 10;  // im2col + output rows of a forward tile
constexpr index_t kTileBytesBackward = index_t{384} << 10;  // im2col + dy rows (L2 share)

// Rows per micro-tile of the transposed implicit im2col (dkernel: a(r, t) = rp[t][s * rs[t] +
// o + r], rows r consecutive columns of one segment) for segments of `run` columns and NP
// packets: the largest candidate that divides run (a micro-tile never straddles two kernel
// rows) and keeps MR x NP accumulators in registers.
inline int segment_mr(index_t run, int np) {
    for (int mr : {12, 9, 8, 6, 4, 3, 2, 1})
        if (run % mr == 0 && mr * np <= mk::kMaxAccumulators) return mr;
    return 1;
}

template <typename T, int MR, int NV>
void segment_t_blocks(index_t m, index_t depth, const T* const* rp, const index_t* rs,
                      index_t run, const T* b, index_t ldb, T* c, index_t ldc) {
    if constexpr (MR * NV <= mk::kMaxAccumulators) {
        for (index_t k0 = 0; k0 < m; k0 += MR)
            mk::tile<T, MR, NV, false>(depth, mk::ASegmentsT<T>{rp, rs, k0 / run, k0 % run}, b,
                                       ldb,
                                       mk::Out<T>{c + k0 * ldc, ldc, NV * mk::kLanes<T>,
                                                  mk::Out<T>::kAdd});
    }
}

template <typename T, int NV>
void segment_t_row_blocks(index_t m, index_t depth, const T* const* rp, const index_t* rs,
                          index_t run, const T* b, index_t ldb, T* c, index_t ldc) {
    switch (segment_mr(run, NV)) {
        case 12: segment_t_blocks<T, 12, NV>(m, depth, rp, rs, run, b, ldb, c, ldc); break;
        case 9: segment_t_blocks<T, 9, NV>(m, depth, rp, rs, run, b, ldb, c, ldc); break;
        case 8: segment_t_blocks<T, 8, NV>(m, depth, rp, rs, run, b, ldb, c, ldc); break;
        case 6: segment_t_blocks<T, 6, NV>(m, depth, rp, rs, run, b, ldb, c, ldc); break;
        case 4: segment_t_blocks<T, 4, NV>(m, depth, rp, rs, run, b, ldb, c, ldc); break;
        case 3: segment_t_blocks<T, 3, NV>(m, depth, rp, rs, run, b, ldb, c, ldc); break;
        case 2: segment_t_blocks<T, 2, NV>(m, depth, rp, rs, run, b, ldb, c, ldc); break;
        default: segment_t_blocks<T, 1, NV>(m, depth, rp, rs, run, b, ldb, c, ldc); break;
    }
}

// True when every micro-tile width that tile_gemm_segments_t uses for n columns gets at least
// 4 rows: then reading the im2col rows in place beats gathering them.
template <typename T>
bool segments_t_efficient(index_t run, index_t n) {
    const index_t packets = n / mk::kLanes<T>;
    if (packets >= mk::kMaxNV && segment_mr(run, mk::kMaxNV) < 4) return false;
    const int rest = static_cast<int>(packets % mk::kMaxNV);
    return rest == 0 || segment_mr(run, rest) >= 4;
}

// c (m = nseg*run, n) += A^T @ b (depth, n) with A (depth, m) the implicit im2col rows rp/rs;
// n must be a multiple of the packet size.
template <typename T>
void tile_gemm_segments_t(index_t m, index_t n, index_t depth, const T* const* rp,
                          const index_t* rs, index_t run, const T* b, index_t ldb, T* c,
                          index_t ldc) {
    constexpr int PS = mk::kLanes<T>;
    for (index_t t0 = 0; t0 < depth; t0 += kDepthBlock) {
        const index_t dt = std::min(kDepthBlock, depth - t0);
        for (index_t j0 = 0; j0 < n; j0 += mk::kMaxNV * PS) {
            const int np = static_cast<int>(std::min<index_t>(mk::kMaxNV, (n - j0) / PS));
            const T* bt = b + t0 * ldb + j0;
            mk::with_vectors(np, [&](auto k) {
                segment_t_row_blocks<T, decltype(k)::value>(m, dt, rp + t0, rs + t0, run, bt, ldb,
                                                            c + j0, ldc);
            });
        }
    }
}

// Single-threaded tile product with A rows in place, the implicit im2col: a(r, s*run + t) =
// rp[r][s * rs[r] + t] (a kernel row of the receptive field is one contiguous run of x).
// c (m, n) = [relu](A (m, nseg*run) @ b (nseg*run, n) + bias), n a multiple of the packet size.
template <typename T>
void tile_gemm_segments(index_t m, index_t n, index_t nseg, index_t run, const T* const* rp,
                        const index_t* rs, const T* b, index_t ldb, T* c, index_t ldc,
                        const T* bias, bool relu) {
    constexpr int PS = mk::kLanes<T>;
    const index_t block = std::max<index_t>(1, 2 * kDepthBlock / run);  // segments per block
    for (index_t s0 = 0; s0 < nseg; s0 += block) {
        const index_t s1 = std::min(nseg, s0 + block);
        const bool last = s1 == nseg;
        const T* bt = b + s0 * run * ldb;
        for (index_t j0 = 0; j0 < n; j0 += mk::kMaxNV * PS) {
            const int np = static_cast<int>(std::min<index_t>(mk::kMaxNV, (n - j0) / PS));
            const mk::Out<T> o{c + j0, ldc, np * PS, s0 > 0 ? mk::Out<T>::kAdd : mk::Out<T>::kSet,
                               last && bias ? bias + j0 : nullptr, last && relu};
            mk::with_vectors(np, [&](auto k) {
                constexpr int NV = decltype(k)::value;
                mk::row_tiles<T, mk::kRows<NV>, NV>(m, (s1 - s0) * run,
                                                    mk::ASegments<T>{rp, rs, s0, run}, bt + j0,
                                                    ldb, o);
            });
        }
    }
}

// Sizes of one call, derived from the params once.
template <typename T>
struct Plan {
    index_t cg, fg, kg;  // channels, filters, im2col columns per group
    index_t fgp, kgp;    // fg and kg rounded up to the packet size (padded GEMM widths)
    bool direct;         // 1x1, stride 1, unpadded: x itself is the im2col matrix
    index_t pixels;      // N * OH * OW
    index_t tile;        // pixel rows per tile

    Plan(const Conv2dParams& p, index_t tile_bytes) {
        constexpr int PS = Simd<T>::size;
        cg = p.c / p.groups;
        fg = p.f / p.groups;
        kg = p.kh * p.kw * cg;
        fgp = round_up(fg, PS);
        kgp = round_up(kg, PS);
        direct = p.kh == 1 && p.kw == 1 && p.sh == 1 && p.sw == 1 && p.pad_top == 0 &&
                 p.pad_left == 0;
        pixels = p.n * p.oh * p.ow;
        const index_t row_bytes = (kg + fgp) * static_cast<index_t>(sizeof(T));
        tile = std::clamp<index_t>(tile_bytes / row_bytes, 8, 4096);
    }
    // Tiles of [begin, end): equal sizes, a count that is a multiple of the thread count.
    index_t tiles_of(index_t count, int threads) const {
        index_t t = ceil_div(count, tile);
        return std::max<index_t>(1, round_up(t, threads));
    }
};

// Keep GCC from turning the short copy loops below into memcpy calls (runs of 9..200 elements,
// where the call costs more than the copy).
#if defined(__GNUC__) && !defined(__clang__)
#define FASTDL_INLINE_COPIES __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define FASTDL_INLINE_COPIES
#endif

// d[0:n] = s[0:n] with whole packets: the last (partial) packet overlaps the previous one,
// runs shorter than a packet use two overlapping half packets (im2col runs are 9..200 long).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"  // SIMD types as template arguments
template <typename T>
inline void copy_run(T* __restrict d, const T* __restrict s, index_t n) {
    using P = typename Simd<T>::P;
    using H = typename ei::unpacket_traits<P>::half;
    constexpr index_t PS = Simd<T>::size;
    constexpr index_t HS = ei::unpacket_traits<H>::size;
    if (n >= PS) {
        index_t q = 0;
        for (; q + PS <= n; q += PS) ei::pstoreu(d + q, ei::ploadu<P>(s + q));
        if (q < n) ei::pstoreu(d + n - PS, ei::ploadu<P>(s + n - PS));
    } else if (HS < PS && n >= HS) {
        ei::pstoreu(d, ei::ploadu<H>(s));
        ei::pstoreu(d + n - HS, ei::ploadu<H>(s + n - HS));
    } else {
        for (index_t q = 0; q < n; ++q) d[q] = s[q];
    }
}
#pragma GCC diagnostic pop

// cols rows [m0, m1) of group g -> dst (m1 - m0, kg), leading dimension ld; zeros in padding.
template <typename T>
FASTDL_INLINE_COPIES void im2col_rows(T* __restrict dst, index_t ld, const T* __restrict x,
                                      const Conv2dParams& p, const Plan<T>& pl, index_t m0,
                                      index_t m1, index_t g) {
    const index_t cg = pl.cg, run = p.kw * cg;
    const bool contiguous_kw = p.dw == 1 && p.groups == 1;  // a kernel row is one run of x
    index_t ow = m0 % p.ow, r = m0 / p.ow;
    index_t n = r / p.oh, oh = r % p.oh;
    for (index_t m = m0; m < m1; ++m) {
        T* d0 = dst + (m - m0) * ld;
        const index_t iw0 = ow * p.sw - p.pad_left;
        const bool inside_w = iw0 >= 0 && iw0 + (p.kw - 1) * p.dw < p.w;
        for (index_t i = 0; i < p.kh; ++i) {
            T* d = d0 + i * run;
            const index_t ih = oh * p.sh - p.pad_top + i * p.dh;
            if (ih < 0 || ih >= p.h) {
                std::fill(d, d + run, T(0));
                continue;
            }
            const T* xrow = x + (n * p.h + ih) * p.w * p.c + g * cg;
            if (contiguous_kw && inside_w) {
                copy_run(d, xrow + iw0 * p.c, run);
                continue;
            }
            for (index_t j = 0; j < p.kw; ++j) {
                const index_t iw = iw0 + j * p.dw;
                T* dj = d + j * cg;
                if (iw < 0 || iw >= p.w) {
                    std::fill(dj, dj + cg, T(0));
                } else {
                    copy_run(dj, xrow + iw * p.c, cg);
                }
            }
        }
        if (++ow == p.ow) {
            ow = 0;
            if (++oh == p.oh) {
                oh = 0;
                ++n;
            }
        }
    }
}

// Implicit im2col of pixel rows [m0, m1) (groups == 1, dw == 1): row i is read at rp[i] with
// segment (kernel row) stride rs[i] -- in place in x when the window lies inside x, else
// gathered into abuf row i (leading dimension kg, segment stride KW*C).
template <typename T>
void implicit_rows(const T** rp, index_t* rs, T* abuf, const T* x, const Conv2dParams& p,
                   const Plan<T>& pl, index_t m0, index_t m1) {
    index_t ow = m0 % p.ow, r = m0 / p.ow;
    index_t n = r / p.oh, oh = r % p.oh;
    for (index_t m = m0; m < m1; ++m) {
        const index_t i = m - m0;
        const index_t ih0 = oh * p.sh - p.pad_top, iw0 = ow * p.sw - p.pad_left;
        if (ih0 >= 0 && ih0 + (p.kh - 1) * p.dh < p.h && iw0 >= 0 && iw0 + p.kw <= p.w) {
            rp[i] = x + ((n * p.h + ih0) * p.w + iw0) * p.c;
            rs[i] = p.kh > 1 ? p.dh * p.w * p.c : 0;  // < H*W*C here; unused when KH == 1
        } else {
            im2col_rows(abuf + i * pl.kg, pl.kg, x, p, pl, m, m + 1, 0);
            rp[i] = abuf + i * pl.kg;
            rs[i] = p.kw * p.c;
        }
        if (++ow == p.ow) {
            ow = 0;
            if (++oh == p.oh) {
                oh = 0;
                ++n;
            }
        }
    }
}

// dx[n, ih, :, group g] += col2im(dcols) for output rows [r0, r1) (dcols row = pixel row minus
// r0*OW, leading dimension ld). Gather form: one thread owns the input row (n, ih) and sums
// every window of the chunk that covers it, in a fixed order. Chunks go in order and each
// visits every row of its images, so the row is zeroed first on its first visit: group 0 of the
// chunk where image n starts.
template <typename T>
void col2im_row(T* __restrict dx, const T* __restrict dcols, index_t ld, const Conv2dParams& p,
                const Plan<T>& pl, index_t r0, index_t r1, index_t g, index_t n, index_t ih) {
    const index_t cg = pl.cg, run = p.kw * cg;
    if (g == 0 && n * p.oh >= r0) {
        T* row = dx + (n * p.h + ih) * p.w * p.c;
        std::fill(row, row + p.w * p.c, T(0));
    }
    T* dxrow = dx + (n * p.h + ih) * p.w * p.c + g * cg;
    for (index_t i = 0; i < p.kh; ++i) {
        const index_t num = ih + p.pad_top - i * p.dh;
        if (num < 0 || num % p.sh != 0) continue;
        const index_t oh = num / p.sh;
        const index_t r = n * p.oh + oh;
        if (oh >= p.oh || r < r0 || r >= r1) continue;
        const T* src_row = dcols + (r - r0) * p.ow * ld + i * run;
        // Kernel column j outermost: consecutive ow then add to disjoint parts of the dx row
        // (with the whole run per ow, neighbours overlap and stall on store forwarding).
        for (index_t j = 0; j < p.kw; ++j) {
            // ow with 0 <= ow*sw - pad_left + j*dw < W
            const index_t lo_num = p.pad_left - j * p.dw;
            const index_t ow_lo = lo_num <= 0 ? 0 : ceil_div(lo_num, p.sw);
            const index_t hi_num = p.w - 1 + p.pad_left - j * p.dw;
            if (hi_num < 0) continue;
            const index_t ow_hi = std::min<index_t>(hi_num / p.sw, p.ow - 1);
            const T* sj = src_row + j * cg;
            for (index_t ow = ow_lo; ow <= ow_hi; ++ow) {
                T* __restrict d = dxrow + (ow * p.sw - p.pad_left + j * p.dw) * p.c;
                const T* __restrict s = sj + ow * ld;
                for (index_t q = 0; q < cg; ++q) d[q] += s[q];
            }
        }
    }
}

// w (KH,KW,Cg,F) group g -> packed (kg, fgp) with zero columns past fg.
template <typename T>
void pack_w(T* dst, const T* w, const Conv2dParams& p, const Plan<T>& pl, index_t g) {
    for (index_t k = 0; k < pl.kg; ++k) {
        const T* s = w + k * p.f + g * pl.fg;
        T* d = dst + k * pl.fgp;
        std::copy(s, s + pl.fg, d);
        std::fill(d + pl.fg, d + pl.fgp, T(0));
    }
}

// w group g transposed -> packed (fg, kgp) with zero columns past kg.
template <typename T>
void pack_wt(T* dst, const T* w, const Conv2dParams& p, const Plan<T>& pl, index_t g) {
    for (index_t j = 0; j < pl.fg; ++j) {
        T* d = dst + j * pl.kgp;
        for (index_t k = 0; k < pl.kg; ++k) d[k] = w[k * p.f + g * pl.fg + j];
        std::fill(d + pl.kg, d + pl.kgp, T(0));
    }
}


}  // namespace

void set_conv2d_chunk_bytes(index_t bytes) { g_chunk_bytes.store(std::max<index_t>(bytes, 1)); }
index_t conv2d_chunk_bytes() { return g_chunk_bytes.load(); }

WindowAxis window_output_size(index_t in, index_t k, index_t stride, index_t dilation, bool same,
                              const char* what) {
    const index_t max = std::numeric_limits<index_t>::max();
    const index_t span = checked_mul(k - 1, dilation, what);  // eff - 1
    FASTDL_CHECK(span <= max - 1 - in, what, ": window ", k, " with dilation ", dilation,
                 " is too large for an input of size ", in);
    const index_t eff = span + 1;
    if (!same) return WindowAxis{eff > in ? 0 : (in - eff) / stride + 1, 0};
    const index_t out = (in - 1) / stride + 1;  // ceil(in / stride)
    const index_t total = std::max<index_t>((out - 1) * stride - in + eff, 0);
    return WindowAxis{out, total / 2};
}

Conv2dParams conv2d_params(index_t n, index_t h, index_t w, index_t c, index_t kh, index_t kw,
                           index_t f, index_t sh, index_t sw, index_t dh, index_t dw,
                           index_t groups, bool same, const char* what) {
    const WindowAxis ah = window_output_size(h, kh, sh, dh, same, what);
    const WindowAxis aw = window_output_size(w, kw, sw, dw, same, what);
    return Conv2dParams{n,  h,  w,  c,  kh,          kw,           f,     sh,
                        sw, dh, dw, ah.pad_before, aw.pad_before, ah.out, aw.out, groups};
}

// The pooled rows [pr0, pr1) of image n from the conv rows of one item: c holds conv output
// rows (pixels (n, oh, ow), ldc apart) from conv row pr0 * ph on, filters col.. col + fg of y.
// Each window is scanned in max_pool2d_forward's order with its rule (strict >, a NaN first
// element stays); argmax (optional) gets the flat index into y of each window's maximum.
template <typename T>
void pool_rows(const MaxPoolOutput<T>& pool, index_t col, const T* c, index_t ldc, index_t fg,
               const Conv2dParams& p, index_t n, index_t pr0, index_t pr1) {
    const index_t ph_out = p.oh / pool.ph, pw_out = p.ow / pool.pw;
    for (index_t pr = pr0; pr < pr1; ++pr)
        for (index_t pc = 0; pc < pw_out; ++pc) {
            const index_t o = ((n * ph_out + pr) * pw_out + pc) * p.f + col;
            T* __restrict yo = pool.pooled + o;
            const T* first = c + ((pr - pr0) * pool.ph * p.ow + pc * pool.pw) * ldc;
            std::copy(first, first + fg, yo);
            if (!pool.argmax) {
                for (index_t i = 0; i < pool.ph; ++i)
                    for (index_t j = 0; j < pool.pw; ++j) {
                        const T* __restrict v = first + (i * p.ow + j) * ldc;
                        for (index_t q = 0; q < fg; ++q) yo[q] = v[q] > yo[q] ? v[q] : yo[q];
                    }
                continue;
            }
            std::int64_t* __restrict ao = pool.argmax + o;
            const index_t at0 = ((n * p.oh + pr * pool.ph) * p.ow + pc * pool.pw) * p.f + col;
            for (index_t q = 0; q < fg; ++q) ao[q] = at0 + q;
            for (index_t i = 0; i < pool.ph; ++i)
                for (index_t j = 0; j < pool.pw; ++j) {
                    const T* __restrict v = first + (i * p.ow + j) * ldc;
                    const index_t at = at0 + (i * p.ow + j) * p.f;
                    for (index_t q = 0; q < fg; ++q) {
                        const bool gt = v[q] > yo[q];
                        yo[q] = gt ? v[q] : yo[q];
                        ao[q] = gt ? at + q : ao[q];
                    }
                }
        }
}

// x (N,H,W,C), w (KH,KW,C/G,F), bias (F) -> y (N,OH,OW,F) and/or the max pooling of y
template <typename T>
void conv2d_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p,
                    bool relu, const MaxPoolOutput<T>* pool) {
    if (winograd_applies(p)) {
        if (!pool || (pool->ph == 2 && pool->pw == 2))  // a 2x2 window is one Winograd tile
            return winograd_forward(y, x, w, bias, p, relu, pool);
        // other windows: the convolution's output, then the pooling (the same bits as the two
        // separate passes, no faster)
        // (not a Workspace: winograd_forward takes the calling thread's workspace itself)
        std::unique_ptr<T[]> buffer(y ? nullptr : new T[p.n * p.oh * p.ow * p.f]);
        T* conv = y ? y : buffer.get();
        winograd_forward<T>(conv, x, w, bias, p, relu, nullptr);
#pragma omp parallel for num_threads(threads_for(p.n * p.oh * p.ow * p.f, kMinParallelMacs)) schedule(dynamic)
        for (index_t n = 0; n < p.n; ++n)
            pool_rows(*pool, 0, conv + n * p.oh * p.ow * p.f, p.f, p.f, p, n, 0,
                      p.oh / pool->ph);
        return;
    }
    const Plan<T> pl(p, kTileBytes);
    if (pl.pixels == 0) return;
    const int nt = threads_for(pl.pixels * pl.kg * p.f, kMinParallelMacs);
    // Work items: tiles of pixel rows; pooled, whole windows: `per_item` pooled rows of one
    // image (their ph * per_item conv rows of OW pixels are consecutive pixel rows), and when y
    // is kept and OH is not a multiple of ph, one more item an image for its last rows.
    const index_t ph_out = pool ? p.oh / pool->ph : 0;
    const index_t per_item =
        pool ? std::clamp<index_t>(pl.tile / (pool->ph * p.ow), 1, ph_out) : 0;
    const index_t pooled_items = pool ? ceil_div(ph_out, per_item) : 0;
    const index_t items_per_image = pooled_items + (pool && y && p.oh % pool->ph != 0);
    const index_t tiles = pool ? p.n * items_per_image : pl.tiles_of(pl.pixels, nt);
    const index_t tile = pool ? std::max(per_item * pool->ph, p.oh - ph_out * pool->ph) * p.ow
                              : ceil_div(pl.pixels, tiles);
    // Implicit im2col (groups == 1, dw == 1): a tile row whose window lies inside x is read in
    // place as KH runs of KW*C elements (stride dh*W*C); only rows that touch the padding are
    // gathered into abuf. Other convolutions gather whole tiles (im2col_rows).
    const bool implicit = !pl.direct && p.groups == 1 && p.dw == 1;
    const index_t run = p.kw * pl.cg;
    std::vector<const T*> row_ptrs(implicit ? nt * tile : 0);
    std::vector<index_t> row_strides(implicit ? nt * tile : 0);
    // Packed kernel (kg, fgp) and bias (fgp) per group, zero-padded to whole packets.
    const index_t wp_size = pl.kg * pl.fgp;
    // Tiles write y in place when it is kept and a group's filters are whole packets (pooling
    // then reads the rows just written), else through cbuf.
    const bool in_place = y && pl.fgp == pl.fg;
    const index_t a_size = pl.direct ? 0 : Slicer<T>::size(tile * pl.kg);
    const index_t c_size = in_place ? 0 : Slicer<T>::size(tile * pl.fgp);
    const index_t ws_size = Slicer<T>::size(p.groups * wp_size) +
                            Slicer<T>::size(p.groups * pl.fgp) + nt * (a_size + c_size);
    T* base;
    Workspace ws(ws_size, base);
    Slicer<T> sl(base, ws_size);
    T* wp = sl.take(p.groups * wp_size);
    T* bp = sl.take(p.groups * pl.fgp);
    T* work = sl.take(nt * (a_size + c_size));
    for (index_t g = 0; g < p.groups; ++g) {
        pack_w(wp + g * wp_size, w, p, pl, g);
        T* bg = bp + g * pl.fgp;
        std::fill(bg, bg + pl.fgp, T(0));
        if (bias) std::copy(bias + g * pl.fg, bias + (g + 1) * pl.fg, bg);
    }
#pragma omp parallel num_threads(nt)
    {
        const int tid = omp_get_thread_num();
        T* abuf = work + tid * (a_size + c_size);
        T* cbuf = abuf + a_size;
        const T** rp = implicit ? row_ptrs.data() + tid * tile : nullptr;
        index_t* rs = implicit ? row_strides.data() + tid * tile : nullptr;
        for (index_t g = 0; g < p.groups; ++g) {
            const T* wg = wp + g * wp_size;
            const T* bg = bias ? bp + g * pl.fgp : nullptr;
            // dynamic: tiles are independent, and the master need not wait for a worker that
            // is slow to wake (OMP_WAIT_POLICY=PASSIVE)
#pragma omp for schedule(dynamic) nowait
            for (index_t t = 0; t < tiles; ++t) {
                index_t m0, m1, n = 0, pr0 = 0, pr1 = 0;
                if (pool) {
                    n = t / items_per_image;
                    const index_t k = t % items_per_image;
                    pr0 = std::min(ph_out, k * per_item);
                    pr1 = std::min(ph_out, pr0 + per_item);
                    m0 = (n * p.oh + pr0 * pool->ph) * p.ow;
                    m1 = (n * p.oh + (k < pooled_items ? pr1 * pool->ph : p.oh)) * p.ow;
                } else {
                    m0 = std::min(pl.pixels, t * tile);
                    m1 = std::min(pl.pixels, m0 + tile);
                }
                if (m0 == m1) continue;
                T* yt = y ? y + m0 * p.f + g * pl.fg : nullptr;
                T* out = in_place ? yt : cbuf;
                const index_t ldc = in_place ? p.f : pl.fgp;
                if (implicit) {
                    implicit_rows(rp, rs, abuf, x, p, pl, m0, m1);
                    tile_gemm_segments(m1 - m0, pl.fgp, p.kh, run, rp, rs, wg, pl.fgp, out, ldc,
                                       bg, relu);
                } else {
                    const T* a = x + m0 * p.c + g * pl.cg;  // direct: x rows are the cols
                    index_t lda = p.c;
                    if (!pl.direct) {
                        im2col_rows(abuf, pl.kg, x, p, pl, m0, m1, g);
                        a = abuf;
                        lda = pl.kg;
                    }
                    tile_gemm<T, true>(m1 - m0, pl.fgp, pl.kg, a, lda, wg, pl.fgp, out, ldc,
                                       false, bg, relu);
                }
                if (y && !in_place)
                    for (index_t m = m0; m < m1; ++m)
                        std::copy(cbuf + (m - m0) * pl.fgp, cbuf + (m - m0) * pl.fgp + pl.fg,
                                  yt + (m - m0) * p.f);
                if (pool && pr0 < pr1)
                    pool_rows(*pool, g * pl.fg, out, ldc, pl.fg, p, n, pr0, pr1);
            }
        }
    }
}

// sums[j] += sum over rows r of g[r * cols + j], cols a whole number of packets: each packet
// of columns is summed down the rows in one register.
template <typename T>
void add_column_sums(T* sums, const T* g, index_t rows, index_t cols) {
    using P = typename Simd<T>::P;
    constexpr index_t PS = Simd<T>::size;
    for (index_t j = 0; j < cols; j += PS) {
        // four partial sums (rows r mod 4): one add chain would wait on its own latency
        P acc[4] = {ei::pset1<P>(T(0)), ei::pset1<P>(T(0)), ei::pset1<P>(T(0)),
                    ei::pset1<P>(T(0))};
        index_t r = 0;
        for (; r + 4 <= rows; r += 4)
            for (int u = 0; u < 4; ++u)
                acc[u] = ei::padd(acc[u], ei::ploadu<P>(g + (r + u) * cols + j));
        for (; r < rows; ++r) acc[0] = ei::padd(acc[0], ei::ploadu<P>(g + r * cols + j));
        const P total = ei::padd(ei::padd(acc[0], acc[1]), ei::padd(acc[2], acc[3]));
        ei::pstoreu(sums + j, ei::padd(ei::ploadu<P>(sums + j), total));
    }
}

// dy (N,OH,OW,F) -> dx (N,H,W,C), dw (KH,KW,C/G,F), dbias (F); all overwritten, each optional
//
// Scheduling: with at least two images per thread, each thread takes whole images and runs
// tiles, dcols and col2im for them on its own (its dcols chunk stays in its L2, and the only
// barrier is the final reduction). With fewer images, the threads share each chunk's tiles,
// then its col2im rows (two barriers per chunk).
template <typename T>
void conv2d_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w,
                     const T* relu_y, const Conv2dParams& p) {
    if (winograd_applies(p)) return winograd_backward(dx, dw, dbias, dy, x, w, relu_y, p);
    const Plan<T> pl(p, kTileBytesBackward);
    const int nt = threads_for(2 * pl.pixels * pl.kg * p.f, kMinParallelMacs);
    const index_t x_size = p.n * p.h * p.w * p.c;
    if (dw) std::fill(dw, dw + p.kh * p.kw * pl.cg * p.f, T(0));
    if (dbias) std::fill(dbias, dbias + p.f, T(0));
    if (pl.pixels == 0) {
        if (dx) std::fill(dx, dx + x_size, T(0));
        return;
    }
    const bool by_images = nt == 1 || p.n >= 2 * nt;
    const bool col2im = dx && !pl.direct;
    // Chunks of output rows bound the dcols buffers: one per thread (by_images) or one shared.
    const index_t out_rows = p.n * p.oh;
    const index_t dcols_buffers = by_images ? nt : 1;
    index_t chunk_rows = out_rows;
    if (col2im) {
        const index_t row_bytes = p.ow * pl.kgp * static_cast<index_t>(sizeof(T));
        const index_t budget = g_chunk_bytes.load() / dcols_buffers;
        chunk_rows = std::clamp<index_t>(budget / row_bytes, 1, out_rows);
    }
    const index_t chunk_pixels = chunk_rows * p.ow;
    // Tiles: L2-sized; when threads share a chunk, a multiple of the thread count per chunk.
    const index_t tiles = by_images ? 1 : pl.tiles_of(chunk_pixels, nt);
    const index_t tile = by_images ? std::min(pl.tile, chunk_pixels)
                                   : ceil_div(chunk_pixels, tiles);
    // dkernel reads the im2col rows in place (see conv2d_forward) when the micro-kernel blocks
    // fit the kernel rows; else it gathers them.
    const bool implicit_dw = dw && !pl.direct && p.groups == 1 && p.dw == 1 &&
                             segments_t_efficient<T>(p.kw * p.c, pl.fgp);
    std::vector<const T*> row_ptrs(implicit_dw ? nt * tile : 0);
    std::vector<index_t> row_strides(implicit_dw ? nt * tile : 0);

    // per thread: im2col tile (tile, kg), g tile (tile, fgp), c tile (tile, kgp) for the direct
    // dx, dW partial (kg, fgp), dbias partial (fgp)
    const index_t a_size = (dw && !pl.direct) ? Slicer<T>::size(tile * pl.kg) : 0;
    const index_t g_size = Slicer<T>::size(tile * pl.fgp);
    const index_t c_size = (dx && pl.direct) ? Slicer<T>::size(tile * pl.kgp) : 0;
    const index_t dw_size = dw ? Slicer<T>::size(pl.kg * pl.fgp) : 0;
    const index_t db_size = dbias ? Slicer<T>::size(pl.fgp) : 0;
    const index_t per_thread = a_size + g_size + c_size + dw_size + db_size;
    const index_t dw_offset = a_size + g_size + c_size;  // of the dW partial in a thread's part
    const index_t wt_size = dx ? Slicer<T>::size(p.groups * pl.fg * pl.kgp) : 0;
    const index_t dcols_size = col2im ? Slicer<T>::size(chunk_pixels * pl.kgp) : 0;
    const index_t ws_size = wt_size + dcols_buffers * dcols_size + nt * per_thread;
    T* base;
    Workspace ws(ws_size, base);
    Slicer<T> sl(base, ws_size);
    T* wt = sl.take(wt_size);
    T* dcols_all = sl.take(dcols_buffers * dcols_size);
    T* work = sl.take(nt * per_thread);
    if (dx)
        for (index_t g = 0; g < p.groups; ++g) pack_wt(wt + g * pl.fg * pl.kgp, w, p, pl, g);
    const index_t dw_elems = pl.kg * pl.fg;
    const bool rows_contiguous = p.groups == 1 && pl.fgp == p.f;

#pragma omp parallel num_threads(nt)
    {
        const int tid = omp_get_thread_num(), team = omp_get_num_threads();
        T* abuf = work + tid * per_thread;
        T* gbuf = abuf + a_size;
        T* cbuf = gbuf + g_size;
        T* dwp = cbuf + c_size;
        T* dbp = dwp + dw_size;
        const T** rp = implicit_dw ? row_ptrs.data() + tid * tile : nullptr;
        index_t* rs = implicit_dw ? row_strides.data() + tid * tile : nullptr;
        T* dcols = by_images ? dcols_all + tid * dcols_size : dcols_all;
        if (dw) std::fill(dwp, dwp + dw_size, T(0));
        if (dbias) std::fill(dbp, dbp + db_size, T(0));

        // Pixel rows [m0, m1) of group g: dbias and dW partials, and their dcols rows at out
        // (or, for the direct 1x1 case, their dx rows).
        auto tile_step = [&](index_t g, index_t m0, index_t m1, T* out) {
            const index_t rows = m1 - m0;
            // g tile: the (masked) dy of group g, zero-padded to fgp
            if (rows_contiguous) {  // dy rows are the tile rows back to back: one flat loop
                const index_t len = rows * p.f;
                const T* d = dy + m0 * p.f;
                if (relu_y) {
                    const T* yr = relu_y + m0 * p.f;
                    for (index_t i = 0; i < len; ++i) gbuf[i] = yr[i] > T(0) ? d[i] : T(0);
                } else {
                    std::copy(d, d + len, gbuf);
                }
            } else {
                for (index_t m = m0; m < m1; ++m) {
                    const T* d = dy + m * p.f + g * pl.fg;
                    T* gr = gbuf + (m - m0) * pl.fgp;
                    if (relu_y) {
                        const T* yr = relu_y + m * p.f + g * pl.fg;
                        for (index_t j = 0; j < pl.fg; ++j) gr[j] = yr[j] > T(0) ? d[j] : T(0);
                    } else {
                        for (index_t j = 0; j < pl.fg; ++j) gr[j] = d[j];
                    }
                    std::fill(gr + pl.fg, gr + pl.fgp, T(0));
                }
            }
            if (dbias) add_column_sums(dbp, gbuf, rows, pl.fgp);
            if (implicit_dw) {  // dW partial += cols[tile]^T @ g[tile]
                implicit_rows(rp, rs, abuf, x, p, pl, m0, m1);
                tile_gemm_segments_t(pl.kg, pl.fgp, rows, rp, rs, p.kw * p.c, gbuf, pl.fgp,
                                     dwp, pl.fgp);
            } else if (dw) {
                const T* a = x + m0 * p.c + g * pl.cg;  // direct: x rows are the cols
                index_t lda = p.c;
                if (!pl.direct) {
                    im2col_rows(abuf, pl.kg, x, p, pl, m0, m1, g);
                    a = abuf;
                    lda = pl.kg;
                }
                tile_gemm<T, false>(pl.kg, pl.fgp, rows, a, lda, gbuf, pl.fgp, dwp, pl.fgp,
                                    true);
            }
            if (dx) {  // dcols[tile] = g[tile] @ W^T
                const T* wtg = wt + g * pl.fg * pl.kgp;
                T* c = pl.direct ? cbuf : out;
                tile_gemm<T, true>(rows, pl.kgp, pl.fg, gbuf, pl.fgp, wtg, pl.kgp, c, pl.kgp,
                                   false);
                if (pl.direct)
                    for (index_t m = m0; m < m1; ++m)
                        std::copy(cbuf + (m - m0) * pl.kgp, cbuf + (m - m0) * pl.kgp + pl.cg,
                                  dx + m * p.c + g * pl.cg);
            }
        };

        for (index_t g = 0; g < p.groups; ++g) {
            if (by_images) {
                // whole images [n_lo, n_hi) per thread, in chunks of output rows
                const index_t n_lo = p.n * tid / team, n_hi = p.n * (tid + 1) / team;
                for (index_t r0 = n_lo * p.oh; r0 < n_hi * p.oh; r0 += chunk_rows) {
                    const index_t r1 = std::min(n_hi * p.oh, r0 + chunk_rows);
                    const index_t c0 = r0 * p.ow, c1 = r1 * p.ow;
                    for (index_t m0 = c0; m0 < c1; m0 += tile)
                        tile_step(g, m0, std::min(c1, m0 + tile), dcols + (m0 - c0) * pl.kgp);
                    if (col2im)
                        for (index_t n = r0 / p.oh; n <= (r1 - 1) / p.oh; ++n)
                            for (index_t ih = 0; ih < p.h; ++ih)
                                col2im_row(dx, dcols, pl.kgp, p, pl, r0, r1, g, n, ih);
                }
            } else {
                for (index_t r0 = 0; r0 < out_rows; r0 += chunk_rows) {
                    const index_t r1 = std::min(out_rows, r0 + chunk_rows);
                    const index_t c0 = r0 * p.ow, c1 = r1 * p.ow;
#pragma omp for schedule(static)
                    for (index_t t = 0; t < tiles; ++t) {
                        const index_t m0 = std::min(c1, c0 + t * tile);
                        const index_t m1 = std::min(c1, m0 + tile);
                        if (m0 < m1) tile_step(g, m0, m1, dcols + (m0 - c0) * pl.kgp);
                    }  // implicit barrier: the chunk's dcols are complete
                    if (col2im) {
                        const index_t n0 = r0 / p.oh, n1 = (r1 - 1) / p.oh;
                        const index_t items = (n1 - n0 + 1) * p.h;
#pragma omp for schedule(static)
                        for (index_t it = 0; it < items; ++it)
                            col2im_row(dx, dcols, pl.kgp, p, pl, r0, r1, g, n0 + it / p.h,
                                       it % p.h);
                    }  // implicit barrier before dcols is reused
                }
            }
            // Reduce the per-thread partials in thread order (deterministic).
#pragma omp barrier
            if (dw) {
#pragma omp for schedule(static) nowait
                for (index_t e = 0; e < dw_elems; ++e) {
                    const index_t k = e / pl.fg, j = e % pl.fg;
                    const T* part = work + dw_offset + k * pl.fgp + j;
                    T sum = T(0);
                    for (int u = 0; u < team; ++u) sum += part[u * per_thread];
                    dw[k * p.f + g * pl.fg + j] = sum;
                }
            }
            if (dbias) {
#pragma omp for schedule(static) nowait
                for (index_t j = 0; j < pl.fg; ++j) {
                    const T* part = work + dw_offset + dw_size + j;
                    T sum = T(0);
                    for (int u = 0; u < team; ++u) sum += part[u * per_thread];
                    dbias[g * pl.fg + j] = sum;
                }
            }
            if (g + 1 < p.groups) {  // partials are read above before the next group resets them
#pragma omp barrier
                if (dw) std::fill(dwp, dwp + dw_size, T(0));
                if (dbias) std::fill(dbp, dbp + db_size, T(0));
            }
        }
    }
}

template void conv2d_forward<float>(float*, const float*, const float*, const float*,
                                    const Conv2dParams&, bool, const MaxPoolOutput<float>*);
template void conv2d_forward<double>(double*, const double*, const double*, const double*,
                                     const Conv2dParams&, bool, const MaxPoolOutput<double>*);
template void conv2d_backward<float>(float*, float*, float*, const float*, const float*,
                                     const float*, const float*, const Conv2dParams&);
template void conv2d_backward<double>(double*, double*, double*, const double*, const double*,
                                      const double*, const double*, const Conv2dParams&);

}  // namespace fastdl
