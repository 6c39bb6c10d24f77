// 2-D max / average pooling, NHWC. Forward passes run OpenMP over output rows (n, oh) and
// vectorise over channels; backward passes give each thread whole images (max: scatter at the
// argmax) or whole input rows (avg: gather), so no two threads write one element. Every loop
// is scheduled dynamically: its iterations are independent (any schedule gives the same bits),
// and a worker slow to wake (OMP_WAIT_POLICY=PASSIVE) leaves its share to the others.
#include "pool2d.h"

#include <omp.h>

#include <algorithm>

namespace fastdl {

namespace {

// The part of a window inside x along one axis: [lo, hi).
struct Span {
    index_t lo, hi;
};

inline Span clip(index_t start, index_t k, index_t size) {
    return Span{std::max<index_t>(start, 0), std::min<index_t>(start + k, size)};
}

// Passes over fewer input elements run on one thread (fork/join would cost more).
constexpr index_t kMinParallelElements = index_t{1} << 15;

}  // namespace

Pool2dParams pool2d_params(index_t n, index_t h, index_t w, index_t c, index_t kh, index_t kw,
                           index_t sh, index_t sw, bool same, const char* what) {
    const WindowAxis ah = window_output_size(h, kh, sh, 1, same, what);
    const WindowAxis aw = window_output_size(w, kw, sw, 1, same, what);
    return Pool2dParams{n, h, w, c, kh, kw, sh, sw, ah.pad_before, aw.pad_before, ah.out, aw.out};
}

// x (N,H,W,C) -> y (N,OH,OW,C), argmax (N,OH,OW,C)
template <typename T>
void max_pool2d_forward(T* y, std::int64_t* argmax, const T* x, const Pool2dParams& p) {
    const index_t rows = p.n * p.oh, c = p.c;
#pragma omp parallel for num_threads(threads_for(p.n * p.h * p.w * c, kMinParallelElements)) schedule(dynamic, 8)
    for (index_t r = 0; r < rows; ++r) {
        const index_t n = r / p.oh, oh = r % p.oh;
        const Span sh = clip(oh * p.sh - p.pad_top, p.kh, p.h);
        for (index_t ow = 0; ow < p.ow; ++ow) {
            const Span sw = clip(ow * p.sw - p.pad_left, p.kw, p.w);
            T* __restrict yo = y + (r * p.ow + ow) * c;
            std::int64_t* __restrict ao = argmax ? argmax + (r * p.ow + ow) * c : nullptr;
            const index_t first = ((n * p.h + sh.lo) * p.w + sw.lo) * c;
            if (!argmax) {  // the same maxima (strict >, a NaN first element stays) alone
                std::copy(x + first, x + first + c, yo);
                for (index_t ih = sh.lo; ih < sh.hi; ++ih)
                    for (index_t iw = sw.lo; iw < sw.hi; ++iw) {
                        const T* __restrict xp = x + ((n * p.h + ih) * p.w + iw) * c;
                        for (index_t q = 0; q < c; ++q) yo[q] = xp[q] > yo[q] ? xp[q] : yo[q];
                    }
                continue;
            }
            for (index_t q = 0; q < c; ++q) {
                yo[q] = x[first + q];
                ao[q] = first + q;
            }
            for (index_t ih = sh.lo; ih < sh.hi; ++ih) {
                for (index_t iw = sw.lo; iw < sw.hi; ++iw) {
                    const index_t base = ((n * p.h + ih) * p.w + iw) * c;
                    if (base == first) continue;
                    const T* __restrict xp = x + base;
                    for (index_t q = 0; q < c; ++q) {
                        const T v = xp[q];
                        const bool gt = v > yo[q];
                        yo[q] = gt ? v : yo[q];
                        ao[q] = gt ? base + q : ao[q];
                    }
                }
            }
        }
    }
}

bool max_pool2d_argmax_valid(const std::int64_t* argmax, const Pool2dParams& p) {
    const index_t image = p.h * p.w * p.c, per_image = p.oh * p.ow * p.c;
    bool ok = true;
    for (index_t n = 0; n < p.n; ++n) {
        const std::int64_t lo = n * image, hi = lo + image;
        const std::int64_t* a = argmax + n * per_image;
        std::int64_t amin = lo, amax = lo;  // min/max reductions vectorise
        for (index_t i = 0; i < per_image; ++i) {
            amin = std::min(amin, a[i]);
            amax = std::max(amax, a[i]);
        }
        ok &= amin >= lo && amax < hi;
    }
    return ok;
}

bool max_pool2d_windows_disjoint(const Pool2dParams& p) { return p.sh >= p.kh && p.sw >= p.kw; }

// dy (N,OH,OW,C), argmax -> dx (N,H,W,C)
template <typename T>
index_t max_pool2d_backward(T* dx, const T* dy, const std::int64_t* argmax,
                            const Pool2dParams& p) {
    if (max_pool2d_windows_disjoint(p)) {
        // Windows do not overlap: each dx element lies in at most one window, so it is written
        // once -- dy where the window's argmax points at it, else 0 -- with no zero-fill pass
        // and no scatter. Threads own input rows. Each valid argmax matches exactly one element
        // of its window; the matches are counted so the caller can reject inconsistent argmax.
        const index_t rows = p.n * p.h, c = p.c;
        index_t matches = 0;
#pragma omp parallel for num_threads(threads_for(rows * p.w * c, kMinParallelElements)) schedule(dynamic, 8) \
    reduction(+ : matches)
        for (index_t r = 0; r < rows; ++r) {
            const index_t n = r / p.h, ih = r % p.h;
            T* __restrict dxrow = dx + r * p.w * c;
            const index_t oh = (ih + p.pad_top) / p.sh;
            if ((ih + p.pad_top) % p.sh >= p.kh || oh >= p.oh) {
                std::fill(dxrow, dxrow + p.w * c, T(0));
                continue;
            }
            for (index_t iw = 0; iw < p.w; ++iw) {
                T* __restrict o = dxrow + iw * c;
                const index_t ow = (iw + p.pad_left) / p.sw;
                if ((iw + p.pad_left) % p.sw >= p.kw || ow >= p.ow) {
                    std::fill(o, o + c, T(0));
                    continue;
                }
                const index_t at = ((n * p.oh + oh) * p.ow + ow) * c;
                const std::int64_t* __restrict a = argmax + at;
                const T* __restrict d = dy + at;
                const std::int64_t base = (r * p.w + iw) * c;
                index_t hits = 0;
                for (index_t q = 0; q < c; ++q) {
                    const bool hit = a[q] == base + q;
                    o[q] = hit ? d[q] : T(0);
                    hits += hit;
                }
                matches += hits;
            }
        }
        return matches;
    }
    const index_t image = p.h * p.w * p.c, per_image = p.oh * p.ow * p.c;
#pragma omp parallel for num_threads(threads_for(p.n * image, kMinParallelElements)) schedule(dynamic, 8)
    for (index_t n = 0; n < p.n; ++n) {
        std::fill(dx + n * image, dx + (n + 1) * image, T(0));
        const T* d = dy + n * per_image;
        const std::int64_t* a = argmax + n * per_image;
        for (index_t i = 0; i < per_image; ++i) dx[a[i]] += d[i];
    }
    return p.n * per_image;
}

// x (N,H,W,C) -> y (N,OH,OW,C)
template <typename T>
void avg_pool2d_forward(T* y, const T* x, const Pool2dParams& p) {
    const index_t rows = p.n * p.oh, c = p.c;
#pragma omp parallel for num_threads(threads_for(p.n * p.h * p.w * c, kMinParallelElements)) schedule(dynamic, 8)
    for (index_t r = 0; r < rows; ++r) {
        const index_t n = r / p.oh, oh = r % p.oh;
        const Span sh = clip(oh * p.sh - p.pad_top, p.kh, p.h);
        for (index_t ow = 0; ow < p.ow; ++ow) {
            const Span sw = clip(ow * p.sw - p.pad_left, p.kw, p.w);
            T* __restrict yo = y + (r * p.ow + ow) * c;
            std::fill(yo, yo + c, T(0));
            for (index_t ih = sh.lo; ih < sh.hi; ++ih) {
                for (index_t iw = sw.lo; iw < sw.hi; ++iw) {
                    const T* __restrict xp = x + ((n * p.h + ih) * p.w + iw) * c;
                    for (index_t q = 0; q < c; ++q) yo[q] += xp[q];
                }
            }
            const T scale = T(1) / static_cast<T>((sh.hi - sh.lo) * (sw.hi - sw.lo));
            for (index_t q = 0; q < c; ++q) yo[q] *= scale;
        }
    }
}

// dy (N,OH,OW,C) -> dx (N,H,W,C)
template <typename T>
void avg_pool2d_backward(T* dx, const T* dy, const Pool2dParams& p) {
    const index_t rows = p.n * p.h, c = p.c;
#pragma omp parallel for num_threads(threads_for(rows * p.w * c, kMinParallelElements)) schedule(dynamic, 8)
    for (index_t r = 0; r < rows; ++r) {  // input row (n, ih)
        const index_t n = r / p.h, ih = r % p.h;
        T* __restrict dxrow = dx + r * p.w * c;
        std::fill(dxrow, dxrow + p.w * c, T(0));
        // windows oh with oh*sh - pad_top <= ih < oh*sh - pad_top + kh
        const index_t num = ih + p.pad_top - p.kh + 1;
        const index_t oh_lo = num <= 0 ? 0 : ceil_div(num, p.sh);
        const index_t oh_hi = std::min<index_t>((ih + p.pad_top) / p.sh, p.oh - 1);
        for (index_t oh = oh_lo; oh <= oh_hi; ++oh) {
            const Span sh = clip(oh * p.sh - p.pad_top, p.kh, p.h);
            for (index_t ow = 0; ow < p.ow; ++ow) {
                const Span sw = clip(ow * p.sw - p.pad_left, p.kw, p.w);
                const T scale = T(1) / static_cast<T>((sh.hi - sh.lo) * (sw.hi - sw.lo));
                const T* __restrict d = dy + ((n * p.oh + oh) * p.ow + ow) * c;
                for (index_t iw = sw.lo; iw < sw.hi; ++iw) {
                    T* __restrict o = dxrow + iw * c;
                    for (index_t q = 0; q < c; ++q) o[q] += d[q] * scale;
                }
            }
        }
    }
}

template void max_pool2d_forward<float>(float*, std::int64_t*, const float*, const Pool2dParams&);
template void max_pool2d_forward<double>(double*, std::int64_t*, const double*,
                                         const Pool2dParams&);
template index_t max_pool2d_backward<float>(float*, const float*, const std::int64_t*,
                                            const Pool2dParams&);
template index_t max_pool2d_backward<double>(double*, const double*, const std::int64_t*,
                                             const Pool2dParams&);
template void avg_pool2d_forward<float>(float*, const float*, const Pool2dParams&);
template void avg_pool2d_forward<double>(double*, const double*, const Pool2dParams&);
template void avg_pool2d_backward<float>(float*, const float*, const Pool2dParams&);
template void avg_pool2d_backward<double>(double*, const double*, const Pool2dParams&);

}  // namespace fastdl
