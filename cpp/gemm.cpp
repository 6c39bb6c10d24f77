// Matrix products. float32 runs fastdl's own GEMM (microkernel.h's tiles of AVX-512 8x48 and 12x32,
// or AVX2 6x16) in builds with AVX-512 or AVX2+FMA; double, and float in builds without them (the
// x86-64-v2 build of the dispatching wheel), run Eigen's GEMM.
//
// The float driver is GotoBLAS/BLIS-shaped, written for a row-major c (m, n):
//   for jc (NC columns of op(b)), for pc (KC of k):
//     pack the kc x nc block of op(b) into NR-column panels (L2)       [skipped: see below]
//     for each MR-row panel of op(a) (L1), for each NR-column panel of the block (from L2):
//       micro-kernel on the MR x NR tile of c
// Operands are copied only when that pays: the micro-kernel reads a row-major op(a) in place
// (MR row streams), a transposed op(a) in place unless more than four column panels reuse it
// (then one thread transposes the whole block into row panels, a team packs panel by panel),
// and a row-major op(b) in place when few row panels reuse it (small and skinny products). So
// the im2col products (k or n of 27..288) and Dense/RNN products pay no or a tiny copy; the
// bias of a Dense product is added by the tiles as they write c.
// Threads (fastdl::num_threads(), one OpenMP region per product, none inside another region):
// the team packs each op(b) block together (double-buffered, so packing the next block overlaps
// the slowest thread's last tiles) and takes tiles in chunks from a shared counter, so a thread
// the OS preempts on a busy machine delays the product little. Products with a long k against a
// small c (weight gradients) split k instead: no synchronisation, then one reduction.
// Results are bitwise the same for every run and every thread count: the blocking, the k slices
// and the order of every sum depend on the shape only, not on which thread computes what.
#include "gemm.h"

#include "microkernel.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define FASTDL_GEMM_SIMD 1
#endif

namespace fastdl {

namespace {
std::atomic<int> g_threads{0};
}

int num_threads() {
    int n = g_threads.load(std::memory_order_relaxed);
    return n > 0 ? n : omp_get_max_threads();
}

void set_num_threads(int n) {
    g_threads.store(n, std::memory_order_relaxed);
    Eigen::setNbThreads(n);
}

namespace {

// ---------------------------------------------------------------- Eigen (double, generic float)
template <typename T>
using ConstStrided = Eigen::Map<const MatrixR<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using Strided = Eigen::Map<MatrixR<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

template <typename T, typename A, typename B>
void product_into(Strided<T>& c, const A& a, const B& b, bool accumulate) {
    if (accumulate)
        c.noalias() += a * b;
    else
        c.noalias() = a * b;
}

template <typename T, typename B>
void with_op_a(Strided<T>& c, const T* a, index_t lda, const B& opb, const GemmParams& p,
               bool accumulate) {
    if (p.transpose_a)
        product_into<T>(c, ConstStrided<T>(a, p.k, p.m, Eigen::OuterStride<>(lda)).transpose(), opb,
                        accumulate);
    else
        product_into<T>(c, ConstStrided<T>(a, p.m, p.k, Eigen::OuterStride<>(lda)), opb, accumulate);
}

// sums (n) = op(b)'s column sums, b stored with row stride ldb: a pass of its own.
template <typename T>
void column_sums(T* sums, const T* b, index_t ldb, const GemmParams& p) {
    Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>> out(sums, p.n);
    if (p.transpose_b)
        out = ConstStrided<T>(b, p.n, p.k, Eigen::OuterStride<>(ldb)).rowwise().sum().transpose();
    else
        out = ConstStrided<T>(b, p.k, p.n, Eigen::OuterStride<>(ldb)).colwise().sum();
}

template <typename T>
void eigen_gemm(T* c, index_t ldc, const T* a, index_t lda, const T* b, index_t ldb,
                const GemmParams& p, bool accumulate, const T* bias, T* b_sums) {
    Strided<T> cm(c, p.m, p.n, Eigen::OuterStride<>(ldc));
    if (b_sums) column_sums(b_sums, b, ldb, p);
    if (p.transpose_b)
        with_op_a<T>(cm, a, lda, ConstStrided<T>(b, p.n, p.k, Eigen::OuterStride<>(ldb)).transpose(),
                     p, accumulate);
    else
        with_op_a<T>(cm, a, lda, ConstStrided<T>(b, p.k, p.n, Eigen::OuterStride<>(ldb)), p,
                     accumulate);
    if (bias) cm.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(bias, p.n);
}

#ifdef FASTDL_GEMM_SIMD
// ---------------------------------------------------------------- fastdl's float GEMM
// Tiles of MR x NR (MR rows, NV vectors): with AVX-512 8 x 48 (24 zmm accumulators; 8 row
// streams and 3 vector loads per k step), or 12 x 32 where 48-column panels would leave much
// of the last one empty (sgemm); 6 x 16 with AVX2 (12 ymm). On an Ice Lake core 8 x 48 ran the
// products of 128 to 512 columns 1.1-1.3x faster than 12 x 32.
constexpr int W = mk::kLanes<float>;
template <int MR_, int NV_>
struct Tiling {
    static constexpr int MR = MR_, NV = NV_, NR = NV_ * W;
};
#if defined(__AVX512F__)
using Wide = Tiling<8, 3>;
using Narrow = Tiling<12, 2>;
#else
using Wide = Tiling<6, 2>;
using Narrow = Wide;
#endif
using View = mk::View<float>;

// The tile for (rows, vectors, op(a) by rows, masked b) through one table of entry points.
using TileFn = void (*)(index_t, const float*, index_t, const float*, index_t,
                        const mk::Out<float>&);
template <int ROWS, int NV, bool A_ROWS, bool MASKED>
void tile_entry(index_t kc, const float* a, index_t as, const float* b, index_t bs,
                const mk::Out<float>& o) {
    if constexpr (A_ROWS)
        mk::tile<float, ROWS, NV, MASKED>(kc, mk::ARows<float>{a, as}, b, bs, o);
    else
        mk::tile<float, ROWS, NV, MASKED>(kc, mk::ACols<float>{a, as}, b, bs, o);
}
// tiles[rows - 1][nv - 1][a_rows][masked] of one tiling
template <class G>
using TileTable = std::array<std::array<std::array<std::array<TileFn, 2>, 2>, G::NV>, G::MR>;
template <int ROWS, int NV, class Table>
void fill_tiles(Table& t) {
    t[ROWS - 1][NV - 1][0][0] = &tile_entry<ROWS, NV, false, false>;
    t[ROWS - 1][NV - 1][0][1] = &tile_entry<ROWS, NV, false, true>;
    t[ROWS - 1][NV - 1][1][0] = &tile_entry<ROWS, NV, true, false>;
    t[ROWS - 1][NV - 1][1][1] = &tile_entry<ROWS, NV, true, true>;
}
template <class G, int... R, int... V>
TileTable<G> make_tiles(std::integer_sequence<int, R...>, std::integer_sequence<int, V...>) {
    TileTable<G> t{};
    auto row = [&](auto rows) { (fill_tiles<decltype(rows)::value, V + 1>(t), ...); };
    (row(std::integral_constant<int, R + 1>{}), ...);
    return t;
}
template <class G>
const TileTable<G>& tiles() {
    static const TileTable<G> table = make_tiles<G>(std::make_integer_sequence<int, G::MR>{},
                                                    std::make_integer_sequence<int, G::NV>{});
    return table;
}

// Cache blocking (floats): the MR x KC a panel (18 KB) stays in L1 (48 KB on Zen 5 and Golden
// Cove) while KC x NR b panels stream from the KC x NC b block (768 KB) in L2 (1-2 MB per core).
constexpr index_t kKC = 384;
constexpr index_t kNC = 512;
// A transposed op(a) is packed when more NR-column panels than this reuse each of its panels.
constexpr index_t kPackAPanels = 4;
// op(b) is packed when op(a) has more rows than this, or when its row stride is this many
// floats or more (4 KB: every k step of a panel on its own page). Read in place, a panel whose
// row stride is a multiple of 512 bytes falls on 8 of L1's 64 sets and cannot stay in L1: from
// 16 row panels on, the copy costs less than re-reading it from L2 (attention's per-head
// products on the projections, m = 200: 11% faster backward; Dense products of 128-240 rows).
constexpr int kPackBPanels = 16;
constexpr index_t kPackBStride = 1024;
// With more than one k block, each block of op(b) is new to the caches (weight gradients: dy is
// megabytes). Packing reads it once, in whole rows; in place, the first row panel's tiles fetch
// it one column panel at a time, a cache line or two per row across all its pages. From more
// than 24 rows on, the copy pays: x^T @ dy (6400 x 128 x 384, k slices of 800 in three blocks)
// 1.34x faster on an Ice Lake core, with 48 rows 1.42x; one k block (k = 384) gains nothing.
// One column panel (n <= NR) is read row after row in place as well.
constexpr index_t kPackBRowsManyBlocks = 24;
// k splitting (see k_slices): products with k >= 4 * kKC and fewer tiles than kSplitKTiles (or
// k >= 4 * max(m, n)) are cut into up to kSplitKSlices slices of k, whose partial products may
// take up to kSplitKMaxFloats floats (16 MB).
constexpr index_t kSplitKTiles = 16;
constexpr index_t kSplitKSlices = 16;
constexpr index_t kSplitKMaxFloats = index_t{4} << 20;
// Each thread gets at least this many flops (about 25 us of work): below twice that a product
// runs on the calling thread only, since an OpenMP fork/join and the hand-over of tiles cost
// several microseconds (more on a busy machine); 128^3 measured faster on 1 thread than on 2.
constexpr double kParallelFlops = 4e6;

struct Job {
    index_t m, n, k;
    View a, b;  // op(a) (m, k), op(b) (k, n)
    float* c;
    index_t ldc;
    bool accumulate;
    const float* bias = nullptr;  // added to every row of c; padded to whole NR-column panels
    float* b_sums = nullptr;      // when set: op(b)'s column sums over k are added to these n
};

struct Blocking {
    index_t kc, nc;       // block sizes (balanced so the last block is not a sliver)
    bool pack_a, pack_b;  // copy the operand into panels, or let the kernel read it in place
};

// The block size that splits `total` into the fewest blocks of at most `cap`, of nearly equal
// size rounded up to a multiple of `unit` (so the last block is not a sliver).
inline index_t balanced_block(index_t total, index_t cap, index_t unit) {
    const index_t blocks = ceil_div(total, cap);
    return std::min(cap, ceil_div(ceil_div(total, blocks), unit) * unit);
}

template <class G>
Blocking plan(const Job& j) {
    constexpr int MR = G::MR, NR = G::NR;
    Blocking b;
    b.kc = balanced_block(j.k, kKC, 1);
    b.nc = balanced_block(j.n, kNC / NR * NR, NR);  // whole panels
    // An a panel is read once per NR columns of op(b). Read in place, a row-major op(a) streams
    // through L1 well (MR row streams), so it is never copied; a transposed op(a) touches a
    // cache line or two per k step, so it is copied into a contiguous panel when it is reused
    // by more than four NR-column panels.
    b.pack_a = j.a.rs == 1 && j.a.cs != 1 && j.n > kPackAPanels * NR && j.m > MR;
    // op(b) must be packed when its rows are not contiguous (op(b) = stored^T) or narrower than a
    // vector panel (masked loads of short rows are slow). Otherwise the kernel reads it in place
    // unless many row panels reuse it or its row stride spreads a panel over many pages.
    b.pack_b = j.b.cs != 1 || j.n < NR || j.m > kPackBPanels * MR || j.b.rs >= kPackBStride ||
               (j.k > b.kc && j.m > kPackBRowsManyBlocks && j.n > NR);
    return b;
}

// Shared progress of one (jc, pc) block of a team. Work is handed out through these counters
// rather than split statically, and a thread waits only for work to be finished, never for
// another thread to show up: a thread the OS has not scheduled yet (busy shared machines) is
// simply left less work, and holds nothing up until the end of the product.
struct alignas(64) BlockCounters {
    std::atomic<index_t> pack_next{0};   // next b panel to pack
    std::atomic<index_t> packed{0};      // b panels packed
    std::atomic<index_t> tile_next{0};   // next tile to hand out
    std::atomic<index_t> tiles_done{0};  // tiles finished (their c written, their b read)
};

// Waits until x >= value: a short spin, then yielding the core, so that on a machine with more
// runnable threads than cores the thread being waited for can run (often on this very core).
inline void wait_for(const std::atomic<index_t>& x, index_t value) {
    for (int spins = 0; x.load(std::memory_order_acquire) < value; ++spins) {
        if (spins < 256)
            _mm_pause();
        else
            std::this_thread::yield();
    }
}

// Ends a team's work: each thread checks in, then waits (yielding) for the others. libgomp's own
// barrier at the end of the region then finds everyone there; its busy spin (up to milliseconds,
// without yielding) would otherwise keep a preempted teammate off a shared core.
inline void check_out(std::atomic<index_t>& arrived, int team) {
    arrived.fetch_add(1, std::memory_order_acq_rel);
    wait_for(arrived, team);
}

// Cycles of kernel work a thread takes per visit to a tile counter (MR * NR FMAs on 2 FMA
// pipes: about MR cycles per k step of a tile).
constexpr index_t kChunkCycles = 24000;

// All row panels of a transposed op(a) (stored (k, m), rows contiguous over i) for k columns
// [p0, p0 + kc), as row-major panels one after another: a(i, p) at
// dst[(i / MR) * MR * kc + (i % MR) * kc + p], so that the tiles read them like a row-major
// op(a) in place (row streams), with 8 x 8 in-register transposes. Packed panel by panel into
// the column layout instead, the weight gradients x^T @ dy ran 15-30% slower than x @ w.
template <int MR>
void pack_a_rows(float* __restrict dst, const View& a, index_t m, index_t p0, index_t kc) {
    auto out = [&](index_t i) { return dst + (i / MR) * MR * kc + (i % MR) * kc; };
    const index_t m8 = m / 8 * 8, kc8 = kc / 8 * 8;
    for (index_t p = 0; p < kc8; p += 8) {
        for (index_t i = 0; i < m8; i += 8) {
            __m256 r[8];
            for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(a.at(i, p0 + p + q));
            mk::transpose8(r);
            for (int q = 0; q < 8; ++q) _mm256_storeu_ps(out(i + q) + p, r[q]);
        }
        for (index_t i = m8; i < m; ++i)
            for (index_t q = 0; q < 8; ++q) out(i)[p + q] = *a.at(i, p0 + p + q);
    }
    for (index_t p = kc8; p < kc; ++p)
        for (index_t i = 0; i < m; ++i) out(i)[p] = *a.at(i, p0 + p);
}

// sums[0, cols) += the column sums of a packed op(b) panel (kc rows of NR floats, zero-padded),
// read back while it is still in L1/L2: the bias gradient beside the weight gradient, without
// a second pass over dy from memory. Lane j adds its rows in order, so the sums are the same
// for every thread count.
template <int NV>
void add_panel_sums(float* sums, const float* panel, index_t kc, int cols) {
    using V = mk::Vec<float>;
    constexpr int NR = NV * W;
    V acc[NV] = {};
    for (index_t p = 0; p < kc; ++p)
        for (int v = 0; v < NV; ++v) acc[v] = acc[v] + mk::load<V>(panel + p * NR + v * W);
    alignas(64) float lanes[NR];
    for (int v = 0; v < NV; ++v) mk::store(lanes + v * W, acc[v]);
    for (int q = 0; q < cols; ++q) sums[q] += lanes[q];
}

// sums[0, n) += the column sums of the k rows of a row-major op(b) (b.cs == 1), row by row.
inline void add_column_sums(float* sums, const View& b, index_t k, index_t n) {
    for (index_t p = 0; p < k; ++p) {
        const float* row = b.at(p, 0);
        for (index_t q = 0; q < n; ++q) sums[q] += row[q];
    }
}

// The blocked product, run by every thread of a team of nt (counters: one per (jc, pc) block),
// or by one thread (nt = 1, counters null). The b panels of a block are packed by whichever
// threads get there first into one of two alternating buffers (bbuf, bbuf + bsize), so a block
// can be packed while slower threads still multiply the previous one; tiles are then handed out
// in chunks of row panels (or of single tiles when there are few row panels). apanel is this
// thread's own MR x kc buffer for packed panels of op(a) (in a team), or room for all of them
// (one thread: pack_a_rows).
template <class G>
void run_blocked(const Job& j, const Blocking& bl, float* bbuf, index_t bsize, float* apanel,
                 BlockCounters* counters, int nt) {
    constexpr int MR = G::MR, NR = G::NR, kNV = G::NV;
    const TileTable<G>& kernels = tiles<G>();
    const index_t npa = ceil_div(j.m, MR);
    // One thread packs the whole of a transposed op(a) per k block (apanel holds npa panels).
    const bool a_block = bl.pack_a && !counters;
    index_t block = 0;
    index_t block_tiles[2] = {0, 0};  // tiles of the last two blocks (block % 2)
    for (index_t jc = 0; jc < j.n; jc += bl.nc) {
        const index_t nc = std::min(bl.nc, j.n - jc);
        const index_t npb = ceil_div(nc, NR);
        const index_t tiles = npa * npb;
        for (index_t pc = 0; pc < j.k; pc += bl.kc, ++block) {
            const index_t kc = std::min(bl.kc, j.k - pc);
            const bool accumulate = j.accumulate || pc > 0;
            BlockCounters* bc = counters ? counters + block : nullptr;
            float* bb = bbuf + (block % 2) * bsize;
            if (bl.pack_b) {
                // Panel jp of every k block is packed after the one before it is finished
                // (all threads wait for a block's packing before they pack the next), so its
                // column sums are added in k order by whichever thread packs it.
                auto pack = [&](index_t jp) {
                    const int cols = static_cast<int>(std::min<index_t>(NR, nc - jp * NR));
                    mk::pack_b<float, kNV>(bb + jp * NR * kc, j.b, pc, kc, jc + jp * NR, cols);
                    if (j.b_sums)
                        add_panel_sums<kNV>(j.b_sums + jc + jp * NR, bb + jp * NR * kc, kc, cols);
                };
                if (!bc) {
                    for (index_t jp = 0; jp < npb; ++jp) pack(jp);
                } else {
                    if (block >= 2)  // the buffer is free once block - 2 is finished
                        wait_for(counters[block - 2].tiles_done, block_tiles[block % 2]);
                    for (index_t jp; (jp = bc->pack_next.fetch_add(1, std::memory_order_relaxed)) < npb;) {
                        pack(jp);
                        bc->packed.fetch_add(1, std::memory_order_release);
                    }
                    wait_for(bc->packed, npb);
                }
            }
            // A k block after the first adds to the c tiles of the one before: all of them must
            // be finished (the packing above may overlap the previous block, the tiles may not).
            if (bc && pc > 0) wait_for(counters[block - 1].tiles_done, block_tiles[(block - 1) % 2]);
            block_tiles[block % 2] = tiles;
            // Tiles in row-panel-major order, so an a panel serves all NR-panels of its row in
            // turn from L1 (b panels stream from L2).
            index_t chunk = tiles;
            if (bc) {
                const index_t panel_cycles = MR * kc * npb;
                chunk = npa >= 4 * nt ? npb * std::max<index_t>(1, kChunkCycles / panel_cycles)
                                      : std::max<index_t>(1, std::min(kChunkCycles / (MR * kc),
                                                                      tiles / (2 * nt)));
            }
            if (a_block) pack_a_rows<MR>(apanel, j.a, j.m, pc, kc);
            index_t packed_ip = -1;
            mk::APanel<float> a{};
            for (;;) {
                const index_t lo = bc ? bc->tile_next.fetch_add(chunk, std::memory_order_relaxed) : 0;
                if (lo >= tiles) break;
                const index_t hi = std::min(tiles, lo + chunk);
                for (index_t t = lo; t < hi; ++t) {
                    const index_t ip = t / npb, jp = t % npb;
                    const int rows = static_cast<int>(std::min<index_t>(MR, j.m - ip * MR));
                    const int cols = static_cast<int>(std::min<index_t>(NR, nc - jp * NR));
                    const int nv = (cols + W - 1) / W;
                    const index_t i0 = ip * MR, j0 = jc + jp * NR;
                    if (ip != packed_ip) {
                        a = a_block     ? mk::APanel<float>{apanel + ip * MR * kc, kc, true}
                            : bl.pack_a ? mk::pack_a<float, MR>(apanel, j.a, i0, rows, pc, kc)
                                        : mk::a_in_place(j.a, i0, pc);
                        packed_ip = ip;
                    }
                    const float* bp;
                    index_t bs;
                    bool masked;
                    if (bl.pack_b) {
                        bp = bb + jp * NR * kc, bs = NR, masked = false;
                    } else {
                        bp = j.b.at(pc, j0), bs = j.b.rs, masked = cols < nv * W;
                    }
                    const mk::Out<float> o{j.c + i0 * j.ldc + j0, j.ldc, cols,
                                           accumulate ? mk::Out<float>::kAdd
                                                      : mk::Out<float>::kSet,
                                           j.bias && pc + kc == j.k ? j.bias + j0 : nullptr};
                    kernels[rows - 1][nv - 1][a.rows][masked](kc, a.p, a.as, bp, bs, o);
                }
                if (!bc) break;
                bc->tiles_done.fetch_add(hi - lo, std::memory_order_release);
            }
        }
    }
}

// Runs j on nt threads (a team sharing the packed op(b) blocks) or on the calling thread alone.
template <class G>
void run_team(const Job& j, int nt) {
    constexpr int MR = G::MR, NR = G::NR;
    const Blocking bl = plan<G>(j);
    if (j.b_sums && !bl.pack_b) add_column_sums(j.b_sums, j.b, j.k, j.n);  // read in place
    const index_t bsize = std::min(bl.nc, ceil_div(j.n, NR) * NR) * bl.kc;
    const index_t blocks = ceil_div(j.n, bl.nc) * ceil_div(j.k, bl.kc);
    float* bbuf;
    const Workspace bws(bl.pack_b ? bsize * (nt > 1 && blocks > 1 ? 2 : 1) : 0, bbuf,
                        ScratchSlot::gemm_b);
    // a team: one MR x kc panel per thread (+ 64 bytes between them); one thread: all panels
    const index_t panel = MR * bl.kc + 16;
    float* abuf;
    const Workspace aws(!bl.pack_a ? 0 : nt > 1 ? panel * nt : ceil_div(j.m, MR) * MR * bl.kc,
                        abuf, ScratchSlot::gemm_a);
    if (nt <= 1) {
        run_blocked<G>(j, bl, bbuf, 0, abuf, nullptr, 1);
        return;
    }
    std::vector<BlockCounters> counters(static_cast<std::size_t>(blocks));
    std::atomic<index_t> arrived{0};
#pragma omp parallel num_threads(nt)
    {
        const int tid = omp_get_thread_num(), team = omp_get_num_threads();
        run_blocked<G>(j, bl, bbuf, bsize, abuf ? abuf + tid * panel : nullptr, counters.data(),
                       team);
        check_out(arrived, team);
    }
}

// Products with a long k against a small c (weight gradients: k = batch * pixels) are cut into
// k slices, computed independently and added in slice order. The slicing depends on the shape
// only, so the result is the same for every thread count; 0 means "not such a product".
template <class G>
index_t k_slices(const Job& j) {
    constexpr int MR = G::MR, NR = G::NR;
    const index_t tiles = ceil_div(j.m, MR) * ceil_div(j.n, NR);
    if (j.k < 4 * kKC || (tiles >= kSplitKTiles && j.k < 4 * std::max(j.m, j.n))) return 0;
    const index_t slices = std::clamp<index_t>(j.k / (2 * kKC), 2, kSplitKSlices);
    return j.m * j.n * slices <= kSplitKMaxFloats ? slices : 0;
}

// The threads take the slices from a shared counter and multiply each into its own part of c
// with no synchronisation at all; the calling thread then adds the parts into c in order.
template <class G>
void run_split_k(const Job& j, index_t slices, int nt) {
    const index_t mn = j.m * j.n;
    const index_t slice = ceil_div(j.k, slices);
    // each slice's part of c, then (b_sums) its column sums of op(b)
    const index_t part = mn + (j.b_sums ? j.n : 0);
    std::unique_ptr<float[]> parts(new float[static_cast<std::size_t>(part * slices)]);
    std::atomic<index_t> next{0};
    auto work = [&] {
        Job sub = j;
        sub.ldc = j.n;
        sub.accumulate = false;
        sub.bias = nullptr;  // added once, in the reduction below
        for (index_t s; (s = next.fetch_add(1, std::memory_order_relaxed)) < slices;) {
            const index_t k0 = s * slice;
            sub.k = std::min(slice, j.k - k0);
            sub.a.p = j.a.at(0, k0);
            sub.b.p = j.b.at(k0, 0);
            sub.c = parts.get() + s * part;
            if (j.b_sums) {
                sub.b_sums = sub.c + mn;
                std::fill(sub.b_sums, sub.b_sums + j.n, 0.0f);
            }
            run_team<G>(sub, 1);
        }
    };
    if (nt <= 1) {
        work();
    } else {
        std::exception_ptr error;
        std::atomic<index_t> arrived{0};
#pragma omp parallel num_threads(nt)
        {
            try {
                work();
            } catch (...) {  // scratch allocation: rethrown after the region
#pragma omp critical(fastdl_gemm_error)
                error = std::current_exception();
            }
            check_out(arrived, omp_get_num_threads());
        }
        if (error) std::rethrow_exception(error);
    }
    if (j.b_sums)
        for (index_t s = 0; s < slices; ++s) {
            const float* sums = parts.get() + s * part + mn;
            for (index_t q = 0; q < j.n; ++q) j.b_sums[q] += sums[q];
        }
    for (index_t i = 0; i < j.m; ++i) {
        float* ci = j.c + i * j.ldc;
        for (index_t s = 0; s < slices; ++s) {
            const float* pi = parts.get() + s * part + i * j.n;
            if (s == 0 && !j.accumulate)
                std::copy(pi, pi + j.n, ci);
            else
                for (index_t q = 0; q < j.n; ++q) ci[q] += pi[q];
        }
        if (j.bias)
            for (index_t q = 0; q < j.n; ++q) ci[q] += j.bias[q];
    }
}

template <class G>
void sgemm_with(const Job& j) {
    constexpr int MR = G::MR, NR = G::NR;
    const double flops = 2.0 * static_cast<double>(j.m) * static_cast<double>(j.n) *
                         static_cast<double>(j.k);
    // One thread for small products and inside a caller's parallel region (no nesting); else
    // at most one thread per kParallelFlops of work.
    int nt = omp_in_parallel() ? 1 : num_threads();
    nt = static_cast<int>(std::min<double>(nt, std::max(1.0, flops / kParallelFlops)));
    if (const index_t slices = k_slices<G>(j)) {
        run_split_k<G>(j, slices, static_cast<int>(std::min<index_t>(nt, slices)));
        return;
    }
    nt = static_cast<int>(std::min<index_t>(nt, ceil_div(j.m, MR) * ceil_div(j.n, NR)));
    run_team<G>(j, nt);
}

// Wide tiles unless their column panels pad n by much more than narrow ones: on an Ice Lake
// core n = 64 (96 lanes against 64) ran 1.05x faster on 12 x 32 tiles, n = 128 (144 lanes
// against 128) 1.1x faster on 8 x 48.
void sgemm(const Job& j) {
    const index_t wide = ceil_div(j.n, index_t{Wide::NR}) * Wide::NR;
    const index_t narrow = ceil_div(j.n, index_t{Narrow::NR}) * Narrow::NR;
    if (8 * wide > 9 * narrow)
        sgemm_with<Narrow>(j);
    else
        sgemm_with<Wide>(j);
}
#endif  // FASTDL_GEMM_SIMD

// b_sums (when set): overwritten with op(b)'s column sums.
template <typename T>
void gemm_dispatch(T* c, index_t ldc, const T* a, index_t lda, const T* b, index_t ldb,
                   const GemmParams& p, bool accumulate, const T* bias = nullptr,
                   T* b_sums = nullptr) {
#ifdef FASTDL_GEMM_SIMD
    if constexpr (std::is_same_v<T, float>) {
        Job j;
        j.m = p.m, j.n = p.n, j.k = p.k;
        j.a = p.transpose_a ? View{a, 1, lda} : View{a, lda, 1};
        j.b = p.transpose_b ? View{b, 1, ldb} : View{b, ldb, 1};
        j.c = c, j.ldc = ldc, j.accumulate = accumulate;
        // The tiles' epilogue reads whole vectors of bias: a copy padded to whole panels (of
        // either tiling).
        std::vector<float> padded;
        if (bias) {
            const index_t n = std::max(ceil_div(p.n, index_t{Wide::NR}) * Wide::NR,
                                       ceil_div(p.n, index_t{Narrow::NR}) * Narrow::NR);
            padded.assign(static_cast<std::size_t>(n), 0.0f);
            std::copy(bias, bias + p.n, padded.begin());
            j.bias = padded.data();
        }
        if (b_sums) std::fill(b_sums, b_sums + p.n, 0.0f);
        j.b_sums = b_sums;
        sgemm(j);
        return;
    }
#endif
    eigen_gemm(c, ldc, a, lda, b, ldb, p, accumulate, bias, b_sums);
}

}  // namespace

const char* gemm_backend() {
#if defined(__AVX512F__)
    return "avx512";
#elif defined(FASTDL_GEMM_SIMD)
    return "avx2";
#else
    return "eigen";
#endif
}

// c (m,n; row stride ldc) = op(a) @ op(b) (+ c), a/b stored row-major with row strides lda/ldb
template <typename T>
void matmul_forward_strided(T* c, index_t ldc, const T* a, index_t lda, const T* b, index_t ldb,
                            const GemmParams& p, bool accumulate) {
    if (p.m == 0 || p.n == 0) return;
    if (p.k == 0) {  // an empty reduction is a zero product
        if (!accumulate)
            for (index_t i = 0; i < p.m; ++i) std::fill(c + i * ldc, c + i * ldc + p.n, T(0));
        return;
    }
    gemm_dispatch(c, ldc, a, lda, b, ldb, p, accumulate);
}

template <typename T>
void matmul_bias_forward(T* c, const T* a, const T* b, const T* bias, const GemmParams& p) {
    if (p.m == 0 || p.n == 0) return;
    if (p.k == 0) {  // an empty reduction: every row is the bias
        for (index_t i = 0; i < p.m; ++i) std::copy(bias, bias + p.n, c + i * p.n);
        return;
    }
    gemm_dispatch(c, p.n, a, p.transpose_a ? p.m : p.k, b, p.transpose_b ? p.k : p.n, p, false,
                  bias);
}

template <typename T>
void matmul_b_sums_forward(T* c, T* b_sums, const T* a, const T* b, const GemmParams& p) {
    const index_t ldb = p.transpose_b ? p.k : p.n;
    if (p.m == 0 || p.n == 0 || p.k == 0) {  // no product to take the sums from
        std::fill(c, c + p.m * p.n, T(0));
        column_sums(b_sums, b, ldb, p);
        return;
    }
    gemm_dispatch(c, p.n, a, p.transpose_a ? p.m : p.k, b, ldb, p, false,
                  static_cast<const T*>(nullptr), b_sums);
}

// a (m,k)|(k,m), b (k,n)|(n,k) -> c (m,n)
template <typename T>
void matmul_forward(T* c, const T* a, const T* b, const GemmParams& p, bool accumulate) {
    matmul_forward_strided(c, p.n, a, p.transpose_a ? p.m : p.k, b, p.transpose_b ? p.k : p.n, p,
                           accumulate);
}

// dc (m,n) -> da like a, db like b
template <typename T>
void matmul_backward(T* da, T* db, const T* dc, const T* a, const T* b, const GemmParams& p) {
    // da = dc @ op(b)^T, stored transposed when a was: da^T = op(b) @ dc^T
    if (da) {
        GemmParams q{p.m, p.k, p.n, false, !p.transpose_b};
        if (p.transpose_a) {  // da (k, m) = op(b) (k,n) @ dc^T (n,m)
            q = GemmParams{p.k, p.m, p.n, p.transpose_b, true};
            matmul_forward(da, b, dc, q);
        } else {
            matmul_forward(da, dc, b, q);
        }
    }
    // db = op(a)^T @ dc, stored transposed when b was: db (n,k) = dc^T @ op(a)
    if (db) {
        if (p.transpose_b) {
            GemmParams q{p.n, p.k, p.m, true, p.transpose_a};
            matmul_forward(db, dc, a, q);
        } else {
            GemmParams q{p.k, p.n, p.m, !p.transpose_a, false};
            matmul_forward(db, a, dc, q);
        }
    }
}

template void matmul_forward<float>(float*, const float*, const float*, const GemmParams&, bool);
template void matmul_forward<double>(double*, const double*, const double*, const GemmParams&, bool);
template void matmul_bias_forward<float>(float*, const float*, const float*, const float*,
                                         const GemmParams&);
template void matmul_bias_forward<double>(double*, const double*, const double*, const double*,
                                          const GemmParams&);
template void matmul_b_sums_forward<float>(float*, float*, const float*, const float*,
                                           const GemmParams&);
template void matmul_b_sums_forward<double>(double*, double*, const double*, const double*,
                                            const GemmParams&);
template void matmul_forward_strided<float>(float*, index_t, const float*, index_t, const float*,
                                            index_t, const GemmParams&, bool);
template void matmul_forward_strided<double>(double*, index_t, const double*, index_t,
                                             const double*, index_t, const GemmParams&, bool);
template void matmul_backward<float>(float*, float*, const float*, const float*, const float*,
                                     const GemmParams&);
template void matmul_backward<double>(double*, double*, const double*, const double*, const double*,
                                      const GemmParams&);

}  // namespace fastdl
