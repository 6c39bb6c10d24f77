// Embedding: gather rows of a table by integer ids (forward), scatter-add into the table's
// gradient (backward). The ids are validated (embedding_find_invalid) before either kernel runs.
#pragma once

#include "common.h"

namespace fastdl {

// ids (M,) -> the first position whose id is outside [0, v), or -1 when all are valid.
template <typename I>
index_t embedding_find_invalid(const I* ids, index_t m, index_t v);

// table (V,D), ids (M,) in [0, V) -> y (M,D): y[i] = table[ids[i]]
template <typename T, typename I>
void embedding_forward(T* y, const T* table, const I* ids, index_t m, index_t d);

// dy (M,D), ids (M,) in [0, V) -> dtable (V,D) = sum over i of dy[i] into row ids[i].
// dtable is overwritten (zeroed first). Each row is accumulated in the order of the positions
// whatever the thread count, so the result is bitwise independent of the number of threads.
template <typename T, typename I>
void embedding_backward(T* dtable, const T* dy, const I* ids, index_t m, index_t v, index_t d);

}  // namespace fastdl
