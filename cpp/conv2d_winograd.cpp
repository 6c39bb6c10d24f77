// 3x3, stride-1, undilated, ungrouped 2-D convolution by Winograd's minimal filtering
// F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
//
// Each 2x2 block of outputs ("tile") comes from the 4x4 block of inputs under it:
//   Y = A^T [ U (.) V ] A,   U = G g G^T (kernel),   V = B^T d B (input),
// 16 element-wise products instead of 36 multiply-adds per channel pair. Summed over input
// channels, the element-wise product at each of the 16 positions xi of the 4x4 block is a GEMM:
//   M[xi] (tiles, F) = V[xi] (tiles, C) @ U[xi] (C, F)
// so a tile costs 16*C*F multiply-adds against 36*C*F for im2col + GEMM (2.25x fewer, less
// the outputs past an odd edge). The transforms are additions, vectorised across channels
// (NHWC keeps them contiguous), and run on blocks of tiles that stay in L2 with their GEMMs.
//
// Backward, the exact adjoint of the above (so float64 gradient checks hold to rounding):
//   dM = A dY A^T                       (dY: the 2x2 output gradient, masked by ReLU)
//   dU[xi] += V[xi]^T @ dM[xi]          dkernel = G^T dU G
//   dV[xi]  = dM[xi] @ U[xi]^T          dx += B dV B^T (4x4 blocks overlap by 2: added)
//
// Threads take blocks of tiles in the forward, whole images in the backward (dx blocks of
// neighbouring tiles overlap); dU is summed per thread and reduced in thread order, so results
// are deterministic for a thread count.
#include "conv2d.h"
#include "conv2d_tiles.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <type_traits>

namespace fastdl {

namespace {

using namespace conv_tiles;

std::atomic<int> g_algorithm{static_cast<int>(Conv2dAlgorithm::kAuto)};

// Bytes of a block's buffers: V and M in the forward (stay in L2 between the transforms and
// the GEMMs); V, dM and dV in the backward, larger because each block's dU products re-read
// and re-write dU (measured on the tutorial CNN: 320 KiB forward, 1.5 MiB backward best).
constexpr index_t kBlockBytesForward = index_t{320} << 10;
constexpr index_t kBlockBytesBackward = index_t{1536} << 10;
// Below this many input channels and filters the transforms cost more than the saved FMAs
// (measured on the tutorial CNN's first layer, C = 3: im2col is faster).
constexpr index_t kMinChannels = 16;

struct Tiling {
    index_t th, tw, tiles;  // tile rows / columns per image, tiles in the batch
    index_t fp, cp;         // F and C rounded up to whole packets (GEMM widths)
    index_t block;          // tiles per block
};

template <typename T>
Tiling tiling_for(const Conv2dParams& p, bool backward) {
    constexpr index_t PS = Simd<T>::size;
    Tiling t;
    t.th = (p.oh + 1) / 2;
    t.tw = (p.ow + 1) / 2;
    t.tiles = p.n * t.th * t.tw;
    t.fp = round_up(p.f, PS);
    t.cp = round_up(p.c, PS);
    const index_t tile_bytes =
        16 * (backward ? 2 : 1) * (t.cp + t.fp) * static_cast<index_t>(sizeof(T));
    const index_t budget = backward ? kBlockBytesBackward : kBlockBytesForward;
    t.block = std::clamp<index_t>(budget / tile_bytes, 8, 1024);
    return t;
}

// The 16 source rows (C elements each) of the 4x4 input block of tile (n, ty, tx); rows in the
// padding or past the edge point at `zeros`.
template <typename T>
inline void block_rows(const T* (&rows)[16], const T* x, const Conv2dParams& p, index_t n,
                       index_t ty, index_t tx, const T* zeros) {
    for (int i = 0; i < 4; ++i) {
        const index_t ih = 2 * ty - p.pad_top + i;
        for (int j = 0; j < 4; ++j) {
            const index_t iw = 2 * tx - p.pad_left + j;
            const bool inside = ih >= 0 && ih < p.h && iw >= 0 && iw < p.w;
            rows[i * 4 + j] = inside ? x + ((n * p.h + ih) * p.w + iw) * p.c : zeros;
        }
    }
}

// Calls f(Packet, c) over c in [0, count) in whole packets, then f(T, c) for the remainder:
// the transforms below are written once for both.
template <typename T, typename F>
inline void over_channels(index_t count, F&& f) {
    using P = typename Simd<T>::P;
    constexpr index_t PS = Simd<T>::size;
    index_t c = 0;
    for (; c + PS <= count; c += PS) f(P{}, c);
    for (; c < count; ++c) f(T{}, c);
}

// v[xi * ld + c] = (B^T d B)[xi] for the 4x4 block d read from rows[k][c], c < count.
template <typename T>
inline void input_transform(T* __restrict v, index_t ld, const T* const (&rows)[16],
                            index_t count) {
    over_channels<T>(count, [&](auto q, index_t c) {
        using Q = decltype(q);
        Q t[16];
        for (int j = 0; j < 4; ++j) {  // B^T d: combine rows
            const Q d0 = ei::ploadu<Q>(rows[j] + c), d1 = ei::ploadu<Q>(rows[4 + j] + c);
            const Q d2 = ei::ploadu<Q>(rows[8 + j] + c), d3 = ei::ploadu<Q>(rows[12 + j] + c);
            t[j] = ei::psub(d0, d2);
            t[4 + j] = ei::padd(d1, d2);
            t[8 + j] = ei::psub(d2, d1);
            t[12 + j] = ei::psub(d1, d3);
        }
        for (int i = 0; i < 4; ++i) {  // (B^T d) B: combine columns
            const Q* r = t + 4 * i;
            ei::pstoreu(v + (4 * i + 0) * ld + c, ei::psub(r[0], r[2]));
            ei::pstoreu(v + (4 * i + 1) * ld + c, ei::padd(r[1], r[2]));
            ei::pstoreu(v + (4 * i + 2) * ld + c, ei::psub(r[2], r[1]));
            ei::pstoreu(v + (4 * i + 3) * ld + c, ei::psub(r[1], r[3]));
        }
    });
}

// The outputs of tile (n, ty, tx), [relu](A^T m A + bias) from m[xi * ld + f], f < F: into y
// (when not null) its (up to) 2x2 outputs, those past the bottom/right edge dropped; into
// pool (when not null, and the tile is a whole pooling window) their maximum at [n, ty, tx] of
// the (N, OH/2, OW/2, F) output, scanned in max_pool2d_forward's order with its rule (strict >,
// a NaN first element stays), and the flat index into y of that maximum when pool->argmax.
template <typename T>
inline void output_transform(T* y, const MaxPoolOutput<T>* pool, const T* __restrict m,
                             index_t ld, const Conv2dParams& p, index_t n, index_t ty,
                             index_t tx, const T* bias, bool relu) {
    constexpr index_t PS = Simd<T>::size;
    const index_t oh0 = 2 * ty, ow0 = 2 * tx;
    const bool down = oh0 + 1 < p.oh, right = ow0 + 1 < p.ow;
    const index_t at00 = ((n * p.oh + oh0) * p.ow + ow0) * p.f;  // flat index of output (0, 0)
    // the window's four outputs in scan order, as offsets from output (0, 0)
    const index_t offsets[4] = {0, p.f, p.ow * p.f, (p.ow + 1) * p.f};
    const bool pooled = pool && ty < p.oh / 2 && tx < p.ow / 2;
    const index_t po = ((n * (p.oh / 2) + ty) * (p.ow / 2) + tx) * p.f;
    over_channels<T>(p.f, [&](auto q, index_t f) {
        using Q = decltype(q);
        Q s[8];  // A^T m: rows 0 and 1
        for (int j = 0; j < 4; ++j) {
            const Q m0 = ei::ploadu<Q>(m + j * ld + f), m1 = ei::ploadu<Q>(m + (4 + j) * ld + f);
            const Q m2 = ei::ploadu<Q>(m + (8 + j) * ld + f);
            const Q m3 = ei::ploadu<Q>(m + (12 + j) * ld + f);
            s[j] = ei::padd(ei::padd(m0, m1), m2);
            s[4 + j] = ei::psub(ei::psub(m1, m2), m3);
        }
        const Q b = bias ? ei::ploadu<Q>(bias + f) : ei::pset1<Q>(T(0));
        const Q zero = ei::pset1<Q>(T(0));
        Q v[4];  // (A^T m) A + bias, [relu]: outputs (0,0), (0,1), (1,0), (1,1)
        for (int k = 0; k < 4; ++k) {
            const Q* r = s + 4 * (k / 2);
            Q t = k % 2 == 0 ? ei::padd(ei::padd(r[0], r[1]), r[2])
                             : ei::psub(ei::psub(r[1], r[2]), r[3]);
            t = ei::padd(t, b);
            if (relu) t = ei::pmax(t, zero);  // pmax(NaN, 0) keeps NaN like the scalar path
            v[k] = t;
        }
        if (y) {
            T* y00 = y + at00 + f;
            ei::pstoreu(y00, v[0]);
            if (right) ei::pstoreu(y00 + offsets[1], v[1]);
            if (down) ei::pstoreu(y00 + offsets[2], v[2]);
            if (down && right) ei::pstoreu(y00 + offsets[3], v[3]);
        }
        if (!pooled) return;
        Q best = v[0];
        if constexpr (std::is_same_v<Q, T>) {
            int which = 0;
            for (int k = 1; k < 4; ++k)
                if (v[k] > best) best = v[k], which = k;
            if (pool->argmax) pool->argmax[po + f] = at00 + offsets[which] + f;
        } else {
            Q which = ei::pset1<Q>(T(0));  // window position of the maximum, per lane
            for (int k = 1; k < 4; ++k) {
                const Q gt = ei::pcmp_lt(best, v[k]);
                best = ei::pselect(gt, v[k], best);
                which = ei::pselect(gt, ei::pset1<Q>(T(k)), which);
            }
            if (pool->argmax) {
                alignas(64) T w[PS];
                ei::pstore(w, which);
                for (index_t l = 0; l < PS; ++l)
                    pool->argmax[po + f + l] = at00 + offsets[static_cast<int>(w[l])] + f + l;
            }
        }
        ei::pstoreu(pool->pooled + po + f, best);
    });
}

// u[(xi * rows + r) * ld + k] = (G g G^T)[xi] of the 3x3 kernels g[(i*3 + j) * rows * cols +
// r * cols + k] (a kernel (3, 3, rows, cols)); columns k in [cols, ld) are zero. Called in a
// parallel region, the rows are shared among its threads (and all wait for the last).
template <typename T>
void kernel_transform(T* u, index_t ld, const T* g, index_t rows, index_t cols) {
    const index_t plane = rows * cols;
#pragma omp for schedule(dynamic, 8)
    for (index_t r = 0; r < rows; ++r) {
        const T* gr = g + r * cols;
        T* ur = u + r * ld;
        over_channels<T>(cols, [&](auto q, index_t k) {
            using Q = decltype(q);
            const Q half = ei::pset1<Q>(T(0.5));
            Q h[4][3];  // G g
            for (int j = 0; j < 3; ++j) {
                const Q g0 = ei::ploadu<Q>(gr + j * plane + k);
                const Q g1 = ei::ploadu<Q>(gr + (3 + j) * plane + k);
                const Q g2 = ei::ploadu<Q>(gr + (6 + j) * plane + k);
                h[0][j] = g0;
                h[1][j] = ei::pmul(ei::padd(ei::padd(g0, g1), g2), half);
                h[2][j] = ei::pmul(ei::padd(ei::psub(g0, g1), g2), half);
                h[3][j] = g2;
            }
            for (int i = 0; i < 4; ++i) {  // (G g) G^T
                T* ui = ur + 4 * i * rows * ld + k;
                ei::pstoreu(ui, h[i][0]);
                ei::pstoreu(ui + rows * ld,
                            ei::pmul(ei::padd(ei::padd(h[i][0], h[i][1]), h[i][2]), half));
                ei::pstoreu(ui + 2 * rows * ld,
                            ei::pmul(ei::padd(ei::psub(h[i][0], h[i][1]), h[i][2]), half));
                ei::pstoreu(ui + 3 * rows * ld, h[i][2]);
            }
        });
        for (int xi = 0; xi < 16; ++xi)
            std::fill(ur + xi * rows * ld + cols, ur + (xi * rows + 1) * ld, T(0));
    }
}

// Tile index t -> (n, ty, tx).
struct TileAt {
    index_t n, ty, tx;
    TileAt(index_t t, const Tiling& tl)
        : n(t / (tl.th * tl.tw)), ty(t / tl.tw % tl.th), tx(t % tl.tw) {}
};

// V of the tiles [t0, t0 + rows): v[xi * ld + r * C + c], C = p.c.
template <typename T>
void transform_inputs(T* v, index_t ld, const T* x, const Conv2dParams& p, const Tiling& tl,
                      index_t t0, index_t rows, const T* zeros) {
    for (index_t r = 0; r < rows; ++r) {
        const TileAt at(t0 + r, tl);
        const T* src[16];
        block_rows(src, x, p, at.n, at.ty, at.tx, zeros);
        input_transform(v + r * p.c, ld, src, p.c);
    }
}

}  // namespace

void set_conv2d_algorithm(Conv2dAlgorithm a) { g_algorithm.store(static_cast<int>(a)); }
Conv2dAlgorithm conv2d_algorithm() { return static_cast<Conv2dAlgorithm>(g_algorithm.load()); }

bool winograd_applies(const Conv2dParams& p) {
    const auto a = conv2d_algorithm();
    if (a == Conv2dAlgorithm::kIm2col) return false;
    const bool shape = p.kh == 3 && p.kw == 3 && p.sh == 1 && p.sw == 1 && p.dh == 1 &&
                       p.dw == 1 && p.groups == 1 && p.oh > 0 && p.ow > 0 && p.n > 0;
    if (!shape) return false;
    return a == Conv2dAlgorithm::kWinograd || (p.c >= kMinChannels && p.f >= kMinChannels);
}

template <typename T>
void winograd_forward(T* y, const T* x, const T* w, const T* bias, const Conv2dParams& p,
                      bool relu, const MaxPoolOutput<T>* pool) {
    Tiling tl = tiling_for<T>(p, false);
    if (!y) {  // pooled alone: only the tiles under a pooling window
        tl.th = p.oh / 2;
        tl.tw = p.ow / 2;
        tl.tiles = p.n * tl.th * tl.tw;
    }
    const int nt = threads_for(tl.tiles * 16 * p.c * p.f, kMinParallelMacs);
    const index_t blocks = ceil_div(tl.tiles, tl.block);
    const index_t u_size = Slicer<T>::size(16 * p.c * tl.fp);
    const index_t v_size = Slicer<T>::size(16 * tl.block * p.c);
    const index_t m_size = Slicer<T>::size(16 * tl.block * tl.fp);
    const index_t ws_size = u_size + Slicer<T>::size(tl.fp) + Slicer<T>::size(p.c) +
                            nt * (v_size + m_size);
    T* base;
    Workspace ws(ws_size, base);
    Slicer<T> sl(base, ws_size);
    T* u = sl.take(16 * p.c * tl.fp);
    T* bp = sl.take(tl.fp);
    T* zeros = sl.take(p.c);
    T* work = sl.take(nt * (v_size + m_size));
    std::fill(bp, bp + tl.fp, T(0));
    if (bias) std::copy(bias, bias + p.f, bp);
    std::fill(zeros, zeros + p.c, T(0));
#pragma omp parallel num_threads(nt)
    {
        kernel_transform(u, tl.fp, w, p.c, p.f);
        T* v = work + omp_get_thread_num() * (v_size + m_size);
        T* m = v + v_size;
        const index_t vld = tl.block * p.c, mld = tl.block * tl.fp;  // per position xi
#pragma omp for schedule(dynamic)  // independent blocks (see conv2d_forward's tiles)
        for (index_t b = 0; b < blocks; ++b) {
            const index_t t0 = b * tl.block, rows = std::min(tl.block, tl.tiles - t0);
            transform_inputs(v, vld, x, p, tl, t0, rows, zeros);
            for (int xi = 0; xi < 16; ++xi)
                tile_gemm<T, true>(rows, tl.fp, p.c, v + xi * vld, p.c, u + xi * p.c * tl.fp,
                                   tl.fp, m + xi * mld, tl.fp, false);
            for (index_t r = 0; r < rows; ++r) {
                const TileAt at(t0 + r, tl);
                output_transform(y, pool, m + r * tl.fp, mld, p, at.n, at.ty, at.tx,
                                 bias ? bp : nullptr, relu);
            }
        }
    }
}

template <typename T>
void winograd_backward(T* dx, T* dw, T* dbias, const T* dy, const T* x, const T* w,
                       const T* relu_y, const Conv2dParams& p) {
    const Tiling tl = tiling_for<T>(p, true);
    // Threads own whole images (overlapping dx blocks); with fewer images than threads the
    // extra threads would idle, so the team is no larger than the batch.
    const int nt = static_cast<int>(
        std::min<index_t>(threads_for(2 * tl.tiles * 16 * p.c * p.f, kMinParallelMacs), p.n));
    const index_t tiles_per_image = tl.th * tl.tw;
    const index_t u_size = dx ? Slicer<T>::size(16 * p.f * tl.cp) : 0;  // U^T
    const index_t wt_size = dx ? Slicer<T>::size(9 * p.f * p.c) : 0;  // kernel^T
    const index_t v_size = dw ? Slicer<T>::size(16 * tl.block * p.c) : 0;
    const index_t dm_size = Slicer<T>::size(16 * tl.block * tl.fp);
    const index_t dv_size = dx ? Slicer<T>::size(16 * tl.block * tl.cp) : 0;
    const index_t du_size = dw ? Slicer<T>::size(16 * p.c * tl.fp) : 0;
    const index_t db_size = Slicer<T>::size(tl.fp);
    const index_t per_thread = v_size + dm_size + dv_size + du_size + db_size;
    // a thread's part: V, dM, dV, then its dU and dbias partials (summed across threads below)
    const index_t du_offset = v_size + dm_size + dv_size, db_offset = du_offset + du_size;
    const index_t ws_size = u_size + wt_size + Slicer<T>::size(p.c) + nt * per_thread;
    T* base;
    Workspace ws(ws_size, base);
    Slicer<T> sl(base, ws_size);
    T* ut = sl.take(u_size);
    T* wt = sl.take(wt_size);
    T* zeros = sl.take(p.c);  // the input rows in the padding
    T* work = sl.take(nt * per_thread);
    std::fill(zeros, zeros + p.c, T(0));
    const index_t vld = tl.block * p.c, mld = tl.block * tl.fp, dvld = tl.block * tl.cp;

#pragma omp parallel num_threads(nt)
    {
        const int tid = omp_get_thread_num(), team = omp_get_num_threads();
        if (dx) {  // U^T: the transform of the kernel transposed to (3, 3, F, C)
#pragma omp for schedule(dynamic, 8)
            for (index_t f = 0; f < p.f; ++f)
                for (index_t ij = 0; ij < 9; ++ij)
                    for (index_t c = 0; c < p.c; ++c)
                        wt[(ij * p.f + f) * p.c + c] = w[(ij * p.c + c) * p.f + f];
            kernel_transform(ut, tl.cp, wt, p.f, p.c);
        }
        T* v = work + tid * per_thread;
        T* dm = v + v_size;
        T* dv = dm + dm_size;
        T* du = v + du_offset;
        T* db = v + db_offset;
        if (dw) std::fill(du, du + 16 * p.c * tl.fp, T(0));
        std::fill(db, db + tl.fp, T(0));
        const index_t n_lo = p.n * tid / team, n_hi = p.n * (tid + 1) / team;
        if (dx) std::fill(dx + n_lo * p.h * p.w * p.c, dx + n_hi * p.h * p.w * p.c, T(0));
        const index_t t_end = n_hi * tiles_per_image;
        for (index_t t0 = n_lo * tiles_per_image; t0 < t_end; t0 += tl.block) {
            const index_t rows = std::min(tl.block, t_end - t0);
            // dM = A dY A^T of each tile's (masked) 2x2 output gradient; dbias sums dY
            for (index_t r = 0; r < rows; ++r) {
                const TileAt at(t0 + r, tl);
                const index_t oh0 = 2 * at.ty, ow0 = 2 * at.tx;
                const bool down = oh0 + 1 < p.oh, right = ow0 + 1 < p.ow;
                const index_t o00 = ((at.n * p.oh + oh0) * p.ow + ow0) * p.f;
                const index_t o[4] = {o00, right ? o00 + p.f : -1, down ? o00 + p.ow * p.f : -1,
                                      down && right ? o00 + (p.ow + 1) * p.f : -1};
                T* dmr = dm + r * tl.fp;
                over_channels<T>(p.f, [&](auto q, index_t f) {
                    using Q = decltype(q);
                    Q g[4];
                    for (int k = 0; k < 4; ++k) {
                        if (o[k] < 0) {
                            g[k] = ei::pset1<Q>(T(0));
                            continue;
                        }
                        g[k] = ei::ploadu<Q>(dy + o[k] + f);
                        if (relu_y) {  // dy * (y > 0), NaN in dy kept where y > 0
                            const Q yk = ei::ploadu<Q>(relu_y + o[k] + f);
                            if constexpr (std::is_same_v<Q, T>)
                                g[k] = yk > T(0) ? g[k] : T(0);
                            else
                                g[k] = ei::pselect(ei::pcmp_lt(ei::pset1<Q>(T(0)), yk), g[k],
                                                   ei::pset1<Q>(T(0)));
                        }
                    }
                    if (dbias)
                        ei::pstoreu(db + f, ei::padd(ei::ploadu<Q>(db + f),
                                                     ei::padd(ei::padd(g[0], g[1]),
                                                              ei::padd(g[2], g[3]))));
                    // A dY: rows (g0 g1), (g0+g2 g1+g3), (g0-g2 g1-g3), (-g2 -g3)
                    Q a[4][2] = {{g[0], g[1]},
                                 {ei::padd(g[0], g[2]), ei::padd(g[1], g[3])},
                                 {ei::psub(g[0], g[2]), ei::psub(g[1], g[3])},
                                 {ei::pnegate(g[2]), ei::pnegate(g[3])}};
                    for (int i = 0; i < 4; ++i) {  // (A dY) A^T
                        T* d = dmr + 4 * i * mld + f;
                        ei::pstoreu(d, a[i][0]);
                        ei::pstoreu(d + mld, ei::padd(a[i][0], a[i][1]));
                        ei::pstoreu(d + 2 * mld, ei::psub(a[i][0], a[i][1]));
                        ei::pstoreu(d + 3 * mld, ei::pnegate(a[i][1]));
                    }
                });
                for (int xi = 0; xi < 16; ++xi)  // padded GEMM columns stay zero
                    std::fill(dmr + xi * mld + p.f, dmr + xi * mld + tl.fp, T(0));
            }
            if (dw) {  // dU[xi] += V[xi]^T @ dM[xi]
                transform_inputs(v, vld, x, p, tl, t0, rows, zeros);
                for (int xi = 0; xi < 16; ++xi)
                    tile_gemm<T, false>(p.c, tl.fp, rows, v + xi * vld, p.c, dm + xi * mld,
                                        tl.fp, du + xi * p.c * tl.fp, tl.fp, true);
            }
            if (dx) {  // dV[xi] = dM[xi] @ U[xi]^T, then dx += B dV B^T
                for (int xi = 0; xi < 16; ++xi)
                    tile_gemm<T, true>(rows, tl.cp, p.f, dm + xi * mld, tl.fp,
                                       ut + xi * p.f * tl.cp, tl.cp, dv + xi * dvld, tl.cp,
                                       false);
                for (index_t r = 0; r < rows; ++r) {
                    const TileAt at(t0 + r, tl);
                    T* dst[16];  // null where the input position is padding
                    for (int i = 0; i < 4; ++i) {
                        const index_t ih = 2 * at.ty - p.pad_top + i;
                        for (int j = 0; j < 4; ++j) {
                            const index_t iw = 2 * at.tx - p.pad_left + j;
                            const bool inside = ih >= 0 && ih < p.h && iw >= 0 && iw < p.w;
                            dst[i * 4 + j] =
                                inside ? dx + ((at.n * p.h + ih) * p.w + iw) * p.c : nullptr;
                        }
                    }
                    const T* s = dv + r * tl.cp;
                    over_channels<T>(p.c, [&](auto q, index_t c) {
                        using Q = decltype(q);
                        Q e[16];
                        for (int j = 0; j < 4; ++j) {  // B dV: rows
                            const Q d0 = ei::ploadu<Q>(s + j * dvld + c);
                            const Q d1 = ei::ploadu<Q>(s + (4 + j) * dvld + c);
                            const Q d2 = ei::ploadu<Q>(s + (8 + j) * dvld + c);
                            const Q d3 = ei::ploadu<Q>(s + (12 + j) * dvld + c);
                            e[j] = d0;
                            e[4 + j] = ei::padd(ei::psub(d1, d2), d3);
                            e[8 + j] = ei::psub(ei::padd(d1, d2), d0);
                            e[12 + j] = ei::pnegate(d3);
                        }
                        for (int i = 0; i < 4; ++i) {  // (B dV) B^T: columns, added into dx
                            const Q* r4 = e + 4 * i;
                            const Q cols[4] = {r4[0], ei::padd(ei::psub(r4[1], r4[2]), r4[3]),
                                               ei::psub(ei::padd(r4[1], r4[2]), r4[0]),
                                               ei::pnegate(r4[3])};
                            for (int j = 0; j < 4; ++j) {
                                T* d = dst[i * 4 + j];
                                if (d)
                                    ei::pstoreu(d + c, ei::padd(ei::ploadu<Q>(d + c), cols[j]));
                            }
                        }
                    });
                }
            }
        }
#pragma omp barrier
        // Reduce the per-thread dU and dbias in thread order, then dkernel = G^T dU G.
        if (dw) {
#pragma omp for schedule(static) nowait
            for (index_t c = 0; c < p.c; ++c)
                for (index_t f = 0; f < p.f; ++f) {
                    T s[16];
                    for (int xi = 0; xi < 16; ++xi) {
                        const T* part = work + du_offset + (xi * p.c + c) * tl.fp + f;
                        T sum = T(0);
                        for (int k = 0; k < team; ++k) sum += part[k * per_thread];
                        s[xi] = sum;
                    }
                    const T half = T(0.5);
                    T h[3][4];  // G^T dU: rows
                    for (int j = 0; j < 4; ++j) {
                        h[0][j] = s[j] + (s[4 + j] + s[8 + j]) * half;
                        h[1][j] = (s[4 + j] - s[8 + j]) * half;
                        h[2][j] = (s[4 + j] + s[8 + j]) * half + s[12 + j];
                    }
                    for (int i = 0; i < 3; ++i) {  // (G^T dU) G
                        T* out = dw + (i * 3 * p.c + c) * p.f + f;
                        out[0] = h[i][0] + (h[i][1] + h[i][2]) * half;
                        out[p.c * p.f] = (h[i][1] - h[i][2]) * half;
                        out[2 * p.c * p.f] = (h[i][1] + h[i][2]) * half + h[i][3];
                    }
                }
        }
        if (dbias) {
#pragma omp for schedule(static) nowait
            for (index_t f = 0; f < p.f; ++f) {
                const T* part = work + db_offset + f;
                T sum = T(0);
                for (int k = 0; k < team; ++k) sum += part[k * per_thread];
                dbias[f] = sum;
            }
        }
    }
}

template void winograd_forward<float>(float*, const float*, const float*, const float*,
                                      const Conv2dParams&, bool, const MaxPoolOutput<float>*);
template void winograd_forward<double>(double*, const double*, const double*, const double*,
                                       const Conv2dParams&, bool, const MaxPoolOutput<double>*);
template void winograd_backward<float>(float*, float*, float*, const float*, const float*,
                                       const float*, const float*, const Conv2dParams&);
template void winograd_backward<double>(double*, double*, double*, const double*,
                                        const double*, const double*, const double*,
                                        const Conv2dParams&);

}  // namespace fastdl
