// Bindings of the embedding lookup and its gradient (embedding.h): ids of any shape, int32 or
// int64, validated against [0, input_dim) before any row is read.
#include <cstdint>

#include "checks.h"
#include "embedding.h"

using namespace fastdl::bindings;
using fastdl::index_t;

namespace {

template <typename I>
using Ids = py::array_t<I, py::array::c_style>;

// The multi-index of flat position `flat` in ids, as "(i, j, ...)".
std::string embedding_position(const py::array& ids, index_t flat) {
    Shape idx(static_cast<std::size_t>(ids.ndim()));
    for (py::ssize_t a = ids.ndim() - 1; a >= 0; --a) {
        const index_t dim = static_cast<index_t>(ids.shape(a));
        idx[static_cast<std::size_t>(a)] = dim ? flat % dim : 0;
        flat = dim ? flat / dim : 0;
    }
    return shape_str(idx);
}

template <typename I>
void embedding_check_ids(const Ids<I>& ids, index_t input_dim, const char* fn) {
    check_aligned(ids, fn, "ids");
    const index_t m = static_cast<index_t>(ids.size());
    const I* p = ids.data();
    index_t bad;
    {
        py::gil_scoped_release nogil;
        bad = fastdl::embedding_find_invalid(p, m, input_dim);
    }
    FASTDL_CHECK(bad < 0, fn, ": index ", static_cast<long long>(p[bad < 0 ? 0 : bad]),
                 " at position ", embedding_position(ids, bad < 0 ? 0 : bad),
                 " is out of range: indices must be in [0, input_dim) = [0, ", input_dim, ")");
}

template <typename T, typename I>
Array<T> embedding_forward(const Array<T>& table, const Ids<I>& ids) {
    const char* fn = "embedding_forward";
    auto st = shape_of<2>(table, fn, "embeddings");
    FASTDL_CHECK(st[0] >= 1 && st[1] >= 1, fn,
                 ": embeddings must be (input_dim, output_dim) with positive sizes, received ",
                 shape_str(table));
    embedding_check_ids<I>(ids, st[0], fn);
    Shape shape(ids.shape(), ids.shape() + ids.ndim());
    shape.push_back(st[1]);
    auto y = new_array<T>(shape, fn);
    T* yp = y.mutable_data();
    const T* tp = table.data();
    const I* ip = ids.data();
    const index_t m = static_cast<index_t>(ids.size());
    {
        py::gil_scoped_release nogil;
        fastdl::embedding_forward<T, I>(yp, tp, ip, m, st[1]);
    }
    return y;
}

template <typename T, typename I>
Array<T> embedding_backward(const Array<T>& dy, const Ids<I>& ids, index_t input_dim) {
    const char* fn = "embedding_backward";
    FASTDL_CHECK(input_dim >= 1, fn, ": input_dim must be a positive integer, received ",
                 input_dim);
    FASTDL_CHECK(dy.ndim() == ids.ndim() + 1, fn, ": dy must have shape ids.shape + (output_dim,)"
                 ", received dy ", shape_str(dy), " for ids ", shape_str(ids));
    bool same = true;
    for (py::ssize_t a = 0; a < ids.ndim(); ++a) same = same && dy.shape(a) == ids.shape(a);
    const index_t d = static_cast<index_t>(dy.shape(dy.ndim() - 1));
    FASTDL_CHECK(same && d >= 1, fn, ": dy must have shape ids.shape + (output_dim,) with "
                 "output_dim >= 1, received dy ", shape_str(dy), " for ids ", shape_str(ids));
    check_aligned(dy, fn, "dy");
    embedding_check_ids<I>(ids, input_dim, fn);
    auto dtable = new_array<T>({input_dim, d}, fn);
    T* dp = dtable.mutable_data();
    const T* gp = dy.data();
    const I* ip = ids.data();
    const index_t m = static_cast<index_t>(ids.size());
    {
        py::gil_scoped_release nogil;
        fastdl::embedding_backward<T, I>(dp, gp, ip, m, input_dim, d);
    }
    return dtable;
}

template <typename T, typename I>
void bind_embedding_t(py::module_& m) {
    m.def("embedding_forward", &embedding_forward<T, I>, py::arg("embeddings").noconvert(),
          py::arg("ids").noconvert(), "embeddings[ids]: ids.shape + (output_dim,).");
    m.def("embedding_backward", &embedding_backward<T, I>, py::arg("dy").noconvert(),
          py::arg("ids").noconvert(), py::arg("input_dim"),
          "Scatter-add of dy into a zero (input_dim, output_dim) gradient.");
}

}  // namespace

void bind_embedding(py::module_& m) {
    bind_embedding_t<float, std::int32_t>(m);
    bind_embedding_t<float, std::int64_t>(m);
    bind_embedding_t<double, std::int32_t>(m);
    bind_embedding_t<double, std::int64_t>(m);
}
