#include "embedding.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace fastdl {

namespace {
// below this many copied elements one thread is faster than starting a team
constexpr index_t kParallelElements = 1 << 15;

int team_size(index_t elements, index_t units) {
    if (elements < kParallelElements) return 1;
    return static_cast<int>(std::max<index_t>(1, std::min<index_t>(num_threads(), units)));
}
}  // namespace

template <typename I>
index_t embedding_find_invalid(const I* ids, index_t m, index_t v) {
    for (index_t i = 0; i < m; ++i) {
        const std::int64_t id = static_cast<std::int64_t>(ids[i]);
        if (id < 0 || id >= v) return i;
    }
    return -1;
}

// table (V,D), ids (M,) -> y (M,D)
template <typename T, typename I>
void embedding_forward(T* y, const T* table, const I* ids, index_t m, index_t d) {
    const int nt = team_size(m * d, m);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (index_t i = 0; i < m; ++i)
        std::memcpy(y + i * d, table + static_cast<index_t>(ids[i]) * d, sizeof(T) * d);
}

// dy (M,D), ids (M,) -> dtable (V,D)
template <typename T, typename I>
void embedding_backward(T* dtable, const T* dy, const I* ids, index_t m, index_t v, index_t d) {
    // each thread owns a contiguous range of table rows and scans all ids: no write conflicts
    const int nt = team_size(std::max(m, v) * d, v);
#pragma omp parallel num_threads(nt)
    {
        const int tid = nt > 1 ? omp_get_thread_num() : 0;
        const index_t lo = v * tid / nt, hi = v * (tid + 1) / nt;
        std::fill(dtable + lo * d, dtable + hi * d, T(0));
        for (index_t i = 0; i < m; ++i) {
            const index_t row = static_cast<index_t>(ids[i]);
            if (row < lo || row >= hi) continue;
            T* __restrict dst = dtable + row * d;
            const T* __restrict src = dy + i * d;
            for (index_t j = 0; j < d; ++j) dst[j] += src[j];
        }
    }
}

template index_t embedding_find_invalid<std::int32_t>(const std::int32_t*, index_t, index_t);
template index_t embedding_find_invalid<std::int64_t>(const std::int64_t*, index_t, index_t);
#define FASTDL_EMBEDDING_INSTANTIATE(T, I)                                                    \
    template void embedding_forward<T, I>(T*, const T*, const I*, index_t, index_t);          \
    template void embedding_backward<T, I>(T*, const T*, const I*, index_t, index_t, index_t);
FASTDL_EMBEDDING_INSTANTIATE(float, std::int32_t)
FASTDL_EMBEDDING_INSTANTIATE(float, std::int64_t)
FASTDL_EMBEDDING_INSTANTIATE(double, std::int32_t)
FASTDL_EMBEDDING_INSTANTIATE(double, std::int64_t)
#undef FASTDL_EMBEDDING_INSTANTIATE

}  // namespace fastdl
