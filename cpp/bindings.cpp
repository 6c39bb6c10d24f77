// fastdl._core: the only file that includes pybind11.
// Every entry point checks its arguments (rank, shape agreement, sizes, overflow) before it
// allocates, releases the GIL or enters an OpenMP region; failures raise ValueError naming
// the function, the argument, what was expected and what was received.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "common.h"
#include "conv2d.h"
#include "gemm.h"
#include "pool2d.h"
#include "rnn.h"  // ---- rnn
#include "embedding.h"  // ---- embedding
#include "optimizers.h"  // ---- optimizers

namespace py = pybind11;
using fastdl::index_t;

void bind_image(py::module_& m);  // ---- image (bindings_image.cpp)

// CPython's tracemalloc C API. Python 3.11's tracemalloc.h declares it without extern "C", which
// would give C++ linkage; these declarations bind the C symbols under other names.
extern "C" int trace_track(unsigned int domain, std::uintptr_t ptr,
                           std::size_t size) __asm__("PyTraceMalloc_Track");
extern "C" int trace_untrack(unsigned int domain, std::uintptr_t ptr) __asm__("PyTraceMalloc_Untrack");

namespace {

// Inputs are strict: C-contiguous, exact dtype (noconvert), so nothing is copied silently.
template <typename T>
using Array = py::array_t<T, py::array::c_style>;

std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        if (i) s += ", ";
        s += std::to_string(a.shape(i));
    }
    return s + (a.ndim() == 1 ? ",)" : ")");
}

// Kernels load whole elements: an array whose data is not aligned to its dtype (a view at an
// odd byte offset) would be undefined behaviour, so every array argument passes this check.
void check_aligned(const py::array& a, const char* fn, const char* arg) {
    FASTDL_CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % a.itemsize() == 0, fn, ": ", arg,
                 " is not aligned to its dtype (", a.itemsize(),
                 " bytes); pass np.require(x, requirements='CA')");
}

// Checks the rank and alignment of an input array and returns its shape as int64.
template <size_t R>
std::array<index_t, R> shape_of(const py::array& a, const char* fn, const char* arg) {
    FASTDL_CHECK(a.ndim() == static_cast<py::ssize_t>(R), fn, ": ", arg, " must be ", R,
                 "-D, received shape ", shape_str(a));
    check_aligned(a, fn, arg);
    std::array<index_t, R> s{};
    for (size_t i = 0; i < R; ++i) s[i] = static_cast<index_t>(a.shape(i));
    return s;
}

// Output arrays hold 64-byte aligned blocks of the C allocator (freed with the array), not
// NumPy's: NumPy advises transparent huge pages for arrays of 4 MiB and more, and under the
// kernel's default defrag setting ("madvise") a fault on such fresh memory may first compact
// memory. Measured on the tutorial CNN at 2 threads: ~4% faster steps (8 of 9 interleaved
// pairs). The blocks are reported to tracemalloc under NumPy's domain, like NumPy's own.
//
// Large blocks are recycled: a training step allocates the same shapes as the step before,
// and glibc would hand their memory back to the kernel in between (page faults, zeroing).
// Freed blocks of at least kRecycleMin bytes wait in a small cache (at most kRecycleBlocks,
// kRecycleBytes in all) for a request of exactly their size; when it is full, the oldest
// blocks make room (so sizes the process no longer uses cannot stop the recycling). The cache
// is only touched with the GIL held: in new_array and in the capsule destructor, which runs
// at array deallocation.
constexpr unsigned kTraceDomain = 389047;  // NumPy's tracemalloc domain
constexpr std::size_t kHeader = 64;        // block size, kept in front of the data
constexpr std::size_t kRecycleMin = std::size_t{256} << 10;
constexpr std::size_t kRecycleBlocks = 32;
constexpr std::size_t kRecycleBytes = std::size_t{256} << 20;

struct RecycledBlocks {
    std::vector<std::pair<std::size_t, void*>> blocks;  // (data size, block)
    std::size_t bytes = 0;
};

RecycledBlocks& recycled() {
    static RecycledBlocks* cache = new RecycledBlocks;  // never destroyed: arrays may outlive
    return *cache;                                      // static destructors at exit
}

void free_output(void* data) {
    trace_untrack(kTraceDomain, reinterpret_cast<std::uintptr_t>(data));
    void* block = static_cast<char*>(data) - kHeader;
    const std::size_t size = *static_cast<std::size_t*>(block);
    RecycledBlocks& cache = recycled();
    if (size < kRecycleMin || size > kRecycleBytes) {
        std::free(block);
        return;
    }
    std::size_t evict = 0;  // the oldest blocks, until this one fits
    while (cache.blocks.size() - evict >= kRecycleBlocks || cache.bytes + size > kRecycleBytes) {
        cache.bytes -= cache.blocks[evict].first;
        std::free(cache.blocks[evict].second);
        ++evict;
    }
    cache.blocks.erase(cache.blocks.begin(), cache.blocks.begin() + evict);
    cache.blocks.emplace_back(size, block);
    cache.bytes += size;
}

// The most recently freed block of exactly `size` (the warmest in cache), or null.
void* take_recycled(std::size_t size) {
    RecycledBlocks& cache = recycled();
    for (auto it = cache.blocks.rbegin(); it != cache.blocks.rend(); ++it) {
        if (it->first == size) {
            void* block = it->second;
            cache.blocks.erase(std::next(it).base());
            cache.bytes -= size;
            return block;
        }
    }
    return nullptr;
}

template <typename T>
Array<T> new_array(std::initializer_list<index_t> shape, const char* fn) {
    const index_t count = fastdl::checked_product(shape, fn);  // before anything is allocated
    const index_t bytes = fastdl::checked_mul(count, static_cast<index_t>(sizeof(T)), fn);
    FASTDL_CHECK(bytes <= std::numeric_limits<index_t>::max() - 2 * 64, fn, ": output of ",
                 bytes, " bytes is too big");
    const std::size_t size = static_cast<std::size_t>((std::max<index_t>(bytes, 1) + 63) / 64 * 64);
    void* block = size >= kRecycleMin ? take_recycled(size) : nullptr;
    if (!block) block = std::aligned_alloc(64, kHeader + size);
    if (!block) {
        PyErr_SetString(PyExc_MemoryError,
                        fastdl::concat(fn, ": cannot allocate ", bytes, " bytes for the output")
                            .c_str());
        throw py::error_already_set();
    }
    *static_cast<std::size_t*>(block) = size;
    void* data = static_cast<char*>(block) + kHeader;
    py::capsule owner;
    try {
        owner = py::capsule(data, &free_output);
    } catch (...) {
        std::free(block);
        throw;
    }
    trace_track(kTraceDomain, reinterpret_cast<std::uintptr_t>(data), size);
    return Array<T>(std::vector<py::ssize_t>(shape.begin(), shape.end()), static_cast<T*>(data),
                    owner);
}

// ---------------------------------------------------------------- gemm
fastdl::GemmParams matmul_shapes(const py::array& a, const py::array& b, bool ta, bool tb,
                                 const char* fn) {
    auto sa = shape_of<2>(a, fn, "a");
    auto sb = shape_of<2>(b, fn, "b");
    index_t m = ta ? sa[1] : sa[0], ka = ta ? sa[0] : sa[1];
    index_t kb = tb ? sb[1] : sb[0], n = tb ? sb[0] : sb[1];
    FASTDL_CHECK(ka == kb, fn, ": inner dimensions differ: a ", shape_str(a),
                 ta ? " (transposed)" : "", " and b ", shape_str(b), tb ? " (transposed)" : "",
                 " give ", ka, " != ", kb);
    return fastdl::GemmParams{m, n, ka, ta, tb};
}

template <typename T>
Array<T> matmul(const Array<T>& a, const Array<T>& b, bool ta, bool tb) {
    auto p = matmul_shapes(a, b, ta, tb, "matmul");
    auto c = new_array<T>({p.m, p.n}, "matmul");
    const T* ap = a.data();
    const T* bp = b.data();
    T* cp = c.mutable_data();
    {
        py::gil_scoped_release nogil;
        fastdl::matmul_forward(cp, ap, bp, p);
    }
    return c;
}

template <typename T>
py::tuple matmul_backward(const Array<T>& dc, const Array<T>& a, const Array<T>& b, bool ta,
                          bool tb) {
    auto p = matmul_shapes(a, b, ta, tb, "matmul_backward");
    auto sc = shape_of<2>(dc, "matmul_backward", "dc");
    FASTDL_CHECK(sc[0] == p.m && sc[1] == p.n, "matmul_backward: dc must have shape (", p.m,
                 ", ", p.n, "), received ", shape_str(dc));
    auto da = new_array<T>({static_cast<index_t>(a.shape(0)), static_cast<index_t>(a.shape(1))},
                           "matmul_backward");
    auto db = new_array<T>({static_cast<index_t>(b.shape(0)), static_cast<index_t>(b.shape(1))},
                           "matmul_backward");
    T* dap = da.mutable_data();
    T* dbp = db.mutable_data();
    const T *dcp = dc.data(), *ap = a.data(), *bp = b.data();
    {
        py::gil_scoped_release nogil;
        fastdl::matmul_backward(dap, dbp, dcp, ap, bp, p);
    }
    return py::make_tuple(da, db);
}

template <typename T>
void bind_gemm(py::module_& m) {
    m.def("matmul", &matmul<T>, py::arg("a").noconvert(), py::arg("b").noconvert(),
          py::arg("transpose_a") = false, py::arg("transpose_b") = false,
          "op(a) @ op(b) for C-contiguous 2-D arrays of one float dtype.");
    m.def("matmul_backward", &matmul_backward<T>, py::arg("dc").noconvert(),
          py::arg("a").noconvert(), py::arg("b").noconvert(), py::arg("transpose_a") = false,
          py::arg("transpose_b") = false, "(da, db) for c = op(a) @ op(b).");
}

// ---- conv2d
// Shared by conv2d_forward and conv2d_backward: ranks, positive sizes and hyperparameters,
// channels/groups agreement, output size >= 1 and overflow-checked element counts.
bool parse_padding(const std::string& padding, const char* fn) {
    FASTDL_CHECK(padding == "valid" || padding == "same", fn,
                 ": padding must be 'valid' or 'same', received '", padding, "'");
    return padding == "same";
}

void check_positive_pair(index_t a, index_t b, const char* fn, const char* arg) {
    FASTDL_CHECK(a >= 1 && b >= 1, fn, ": ", arg, " must be positive integers, received (", a,
                 ", ", b, ")");
}

fastdl::Conv2dParams conv2d_check(const py::array& x, const py::array& kernel, index_t sh,
                                  index_t sw, const std::string& padding, index_t dh, index_t dw,
                                  index_t groups, const char* fn) {
    auto sx = shape_of<4>(x, fn, "x");
    auto sk = shape_of<4>(kernel, fn, "kernel");
    check_positive_pair(sh, sw, fn, "strides");
    check_positive_pair(dh, dw, fn, "dilation_rate");
    FASTDL_CHECK(groups >= 1, fn, ": groups must be a positive integer, received ", groups);
    const bool same = parse_padding(padding, fn);
    FASTDL_CHECK(sx[1] >= 1 && sx[2] >= 1 && sx[3] >= 1, fn,
                 ": x must be (N, H, W, C) with positive H, W and C, received shape ",
                 shape_str(x));
    FASTDL_CHECK(sk[0] >= 1 && sk[1] >= 1 && sk[2] >= 1 && sk[3] >= 1, fn,
                 ": kernel must be (KH, KW, C/groups, F) with positive sizes, received shape ",
                 shape_str(kernel));
    FASTDL_CHECK(sx[3] % groups == 0, fn, ": the channels of x ", shape_str(x),
                 " must be a multiple of groups, received groups=", groups);
    FASTDL_CHECK(sk[3] % groups == 0, fn, ": the filters of kernel ", shape_str(kernel),
                 " must be a multiple of groups, received groups=", groups);
    FASTDL_CHECK(sk[2] * groups == sx[3], fn, ": kernel must be (KH, KW, C/groups=",
                 sx[3] / groups, ", F) for x of shape ", shape_str(x), " and groups=", groups,
                 ", received ", shape_str(kernel));
    auto p = fastdl::conv2d_params(sx[0], sx[1], sx[2], sx[3], sk[0], sk[1], sk[3], sh, sw, dh,
                                   dw, groups, same, fn);
    FASTDL_CHECK(p.oh >= 1 && p.ow >= 1, fn, ": output size (", p.oh, ", ", p.ow,
                 ") is less than 1 for input size (", p.h, ", ", p.w, "), kernel size (", p.kh,
                 ", ", p.kw, "), strides (", sh, ", ", sw, "), dilation_rate (", dh, ", ", dw,
                 ") and padding '", padding, "'");
    fastdl::checked_product({p.n, p.oh, p.ow, p.f}, fn);          // y and dy
    fastdl::checked_product({p.ow, p.kh, p.kw, sk[2]}, fn);       // one im2col row of pixels
    return p;
}

// None, or an array of exactly T that is C-contiguous (no conversion) with the given shape.
template <typename T>
const T* optional_array(const py::object& obj, Array<T>& holder,
                        std::initializer_list<index_t> shape, const char* fn, const char* arg) {
    if (obj.is_none()) return nullptr;
    if (!py::isinstance<Array<T>>(obj))
        throw py::type_error(fastdl::concat(fn, ": ", arg, " must be None or a C-contiguous ",
                                            py::str(py::dtype::of<T>()).cast<std::string>(),
                                            " array like x, received ",
                                            py::str(py::type::of(obj)).cast<std::string>()));
    holder = py::reinterpret_borrow<Array<T>>(obj);
    bool same = holder.ndim() == static_cast<py::ssize_t>(shape.size());
    size_t i = 0;
    for (index_t s : shape) same = same && holder.shape(i++) == s;
    if (!same) {
        std::string want = "(";
        i = 0;
        for (index_t s : shape) want += (i++ ? ", " : "") + std::to_string(s);
        want += shape.size() == 1 ? ",)" : ")";
        FASTDL_CHECK(false, fn, ": ", arg, " must have shape ", want, ", received ",
                     shape_str(holder));
    }
    check_aligned(holder, fn, arg);
    return holder.data();
}

template <typename T>
Array<T> conv2d_forward(const Array<T>& x, const Array<T>& kernel, const py::object& bias,
                        index_t sh, index_t sw, const std::string& padding, index_t dh,
                        index_t dw, index_t groups, bool relu) {
    const char* fn = "conv2d_forward";
    auto p = conv2d_check(x, kernel, sh, sw, padding, dh, dw, groups, fn);
    Array<T> bias_holder;
    const T* bp = optional_array<T>(bias, bias_holder, {p.f}, fn, "bias");
    auto y = new_array<T>({p.n, p.oh, p.ow, p.f}, fn);
    const T *xp = x.data(), *kp = kernel.data();
    T* yp = y.mutable_data();
    {
        py::gil_scoped_release nogil;
        fastdl::conv2d_forward(yp, xp, kp, bp, p, relu);
    }
    return y;
}

template <typename T>
py::tuple conv2d_max_pool_forward(const Array<T>& x, const Array<T>& kernel,
                                  const py::object& bias, index_t sh, index_t sw,
                                  const std::string& padding, index_t dh, index_t dw,
                                  index_t groups, bool relu, index_t pool_h, index_t pool_w,
                                  bool training) {
    const char* fn = "conv2d_max_pool_forward";
    auto p = conv2d_check(x, kernel, sh, sw, padding, dh, dw, groups, fn);
    check_positive_pair(pool_h, pool_w, fn, "pool_size");
    FASTDL_CHECK(p.oh >= pool_h && p.ow >= pool_w, fn, ": pool size (", pool_h, ", ", pool_w,
                 ") is larger than the convolution's output (", p.oh, ", ", p.ow, ")");
    Array<T> bias_holder;
    const T* bp = optional_array<T>(bias, bias_holder, {p.f}, fn, "bias");
    const index_t ph = p.oh / pool_h, pw = p.ow / pool_w;
    auto pooled = new_array<T>({p.n, ph, pw, p.f}, fn);
    py::object y = py::none(), argmax = py::none();
    T* yp = nullptr;
    std::int64_t* ap = nullptr;
    if (training) {
        auto ya = new_array<T>({p.n, p.oh, p.ow, p.f}, fn);
        auto aa = new_array<std::int64_t>({p.n, ph, pw, p.f}, fn);
        yp = ya.mutable_data();
        ap = aa.mutable_data();
        y = ya;
        argmax = aa;
    }
    const T *xp = x.data(), *kp = kernel.data();
    const fastdl::MaxPoolOutput<T> pool{pool_h, pool_w, pooled.mutable_data(), ap};
    {
        py::gil_scoped_release nogil;
        fastdl::conv2d_forward(yp, xp, kp, bp, p, relu, &pool);
    }
    return py::make_tuple(pooled, y, argmax);
}

template <typename T>
py::tuple conv2d_backward(const Array<T>& dy, const Array<T>& x, const Array<T>& kernel,
                          index_t sh, index_t sw, const std::string& padding, index_t dh,
                          index_t dw, index_t groups, bool need_dx, bool need_dkernel,
                          bool need_dbias, const py::object& relu_output) {
    const char* fn = "conv2d_backward";
    auto p = conv2d_check(x, kernel, sh, sw, padding, dh, dw, groups, fn);
    auto sd = shape_of<4>(dy, fn, "dy");
    FASTDL_CHECK(sd[0] == p.n && sd[1] == p.oh && sd[2] == p.ow && sd[3] == p.f, fn,
                 ": dy must have the output shape (", p.n, ", ", p.oh, ", ", p.ow, ", ", p.f,
                 ") of x ", shape_str(x), " and kernel ", shape_str(kernel), ", received ",
                 shape_str(dy));
    Array<T> relu_holder;
    const T* rp = optional_array<T>(relu_output, relu_holder, {p.n, p.oh, p.ow, p.f}, fn,
                                    "relu_output");
    py::object dx = py::none(), dk = py::none(), db = py::none();
    T *dxp = nullptr, *dkp = nullptr, *dbp = nullptr;
    if (need_dx) {
        auto a = new_array<T>({p.n, p.h, p.w, p.c}, fn);
        dxp = a.mutable_data();
        dx = a;
    }
    if (need_dkernel) {
        auto a = new_array<T>({p.kh, p.kw, p.c / p.groups, p.f}, fn);
        dkp = a.mutable_data();
        dk = a;
    }
    if (need_dbias) {
        auto a = new_array<T>({p.f}, fn);
        dbp = a.mutable_data();
        db = a;
    }
    const T *dyp = dy.data(), *xp = x.data(), *kp = kernel.data();
    {
        py::gil_scoped_release nogil;
        fastdl::conv2d_backward(dxp, dkp, dbp, dyp, xp, kp, rp, p);
    }
    return py::make_tuple(dx, dk, db);
}

template <typename T>
void bind_conv2d(py::module_& m) {
    m.def("conv2d_forward", &conv2d_forward<T>, py::arg("x").noconvert(),
          py::arg("kernel").noconvert(), py::arg("bias"), py::arg("stride_h"),
          py::arg("stride_w"), py::arg("padding"), py::arg("dilation_h"), py::arg("dilation_w"),
          py::arg("groups"), py::arg("relu"),
          "y = [relu](conv2d(x, kernel) + bias): x (N,H,W,C), kernel (KH,KW,C/groups,F), "
          "bias (F,) or None -> y (N,OH,OW,F).");
    m.def("conv2d_max_pool_forward", &conv2d_max_pool_forward<T>, py::arg("x").noconvert(),
          py::arg("kernel").noconvert(), py::arg("bias"), py::arg("stride_h"),
          py::arg("stride_w"), py::arg("padding"), py::arg("dilation_h"), py::arg("dilation_w"),
          py::arg("groups"), py::arg("relu"), py::arg("pool_h"), py::arg("pool_w"),
          py::arg("training"),
          "(pooled, y, argmax): y = conv2d_forward(...), pooled, argmax = its max pooling with "
          "pool_h x pool_w windows = strides and no padding (max_pool2d_forward's results, "
          "bitwise), each conv tile pooled while in cache. training=False: y and argmax are "
          "None and the convolution's output is never written.");
    m.def("conv2d_backward", &conv2d_backward<T>, py::arg("dy").noconvert(),
          py::arg("x").noconvert(), py::arg("kernel").noconvert(), py::arg("stride_h"),
          py::arg("stride_w"), py::arg("padding"), py::arg("dilation_h"), py::arg("dilation_w"),
          py::arg("groups"), py::arg("need_dx"), py::arg("need_dkernel"), py::arg("need_dbias"),
          py::arg("relu_output"),
          "(dx, dkernel, dbias) of conv2d_forward, None where not needed; relu_output: the "
          "forward's output when it was fused with ReLU, else None.");
}

// ---- pool2d
// Shared by the pooling entry points: positive window, strides and input sizes, padding,
// output size >= 1 and overflow-checked element counts of x and y.
fastdl::Pool2dParams pool2d_check(index_t n, index_t h, index_t w, index_t c,
                                  const std::string& x_desc, index_t ph, index_t pw, index_t sh,
                                  index_t sw, const std::string& padding, const char* fn) {
    check_positive_pair(ph, pw, fn, "pool_size");
    check_positive_pair(sh, sw, fn, "strides");
    const bool same = parse_padding(padding, fn);
    FASTDL_CHECK(h >= 1 && w >= 1 && c >= 1, fn,
                 ": x must be (N, H, W, C) with positive H, W and C, received ", x_desc);
    fastdl::checked_product({n, h, w, c}, fn);
    auto p = fastdl::pool2d_params(n, h, w, c, ph, pw, sh, sw, same, fn);
    FASTDL_CHECK(p.oh >= 1 && p.ow >= 1, fn, ": output size (", p.oh, ", ", p.ow,
                 ") is less than 1 for input size (", h, ", ", w, "), pool_size (", ph, ", ", pw,
                 "), strides (", sh, ", ", sw, ") and padding '", padding, "'");
    fastdl::checked_product({n, p.oh, p.ow, c}, fn);
    return p;
}

fastdl::Pool2dParams pool2d_check_x(const py::array& x, index_t ph, index_t pw, index_t sh,
                                    index_t sw, const std::string& padding, const char* fn) {
    auto s = shape_of<4>(x, fn, "x");
    return pool2d_check(s[0], s[1], s[2], s[3], "shape " + shape_str(x), ph, pw, sh, sw,
                        padding, fn);
}

// For the backward passes: x is (N, input_h, input_w, C) with N and C from dy.
fastdl::Pool2dParams pool2d_check_dy(const py::array& dy, index_t input_h, index_t input_w,
                                     index_t ph, index_t pw, index_t sh, index_t sw,
                                     const std::string& padding, const char* fn) {
    auto s = shape_of<4>(dy, fn, "dy");
    auto p = pool2d_check(s[0], input_h, input_w, s[3],
                          fastdl::concat("input size (", input_h, ", ", input_w, ")"), ph, pw,
                          sh, sw, padding, fn);
    FASTDL_CHECK(s[1] == p.oh && s[2] == p.ow, fn, ": dy must have the output shape (", p.n,
                 ", ", p.oh, ", ", p.ow, ", ", p.c, ") of an input of size (", input_h, ", ",
                 input_w, "), received ", shape_str(dy));
    return p;
}

template <typename T>
py::tuple max_pool2d_forward(const Array<T>& x, index_t ph, index_t pw, index_t sh, index_t sw,
                             const std::string& padding, bool need_argmax) {
    const char* fn = "max_pool2d_forward";
    auto p = pool2d_check_x(x, ph, pw, sh, sw, padding, fn);
    auto y = new_array<T>({p.n, p.oh, p.ow, p.c}, fn);
    py::object am = py::none();
    std::int64_t* ap = nullptr;
    if (need_argmax) {
        auto a = new_array<std::int64_t>({p.n, p.oh, p.ow, p.c}, fn);
        ap = a.mutable_data();
        am = a;
    }
    T* yp = y.mutable_data();
    const T* xp = x.data();
    {
        py::gil_scoped_release nogil;
        fastdl::max_pool2d_forward(yp, ap, xp, p);
    }
    return py::make_tuple(y, am);
}

template <typename T>
Array<T> max_pool2d_backward(const Array<T>& dy, const Array<std::int64_t>& argmax,
                             index_t input_h, index_t input_w, index_t ph, index_t pw,
                             index_t sh, index_t sw, const std::string& padding) {
    const char* fn = "max_pool2d_backward";
    auto p = pool2d_check_dy(dy, input_h, input_w, ph, pw, sh, sw, padding, fn);
    auto sa = shape_of<4>(argmax, fn, "argmax");
    FASTDL_CHECK(sa[0] == p.n && sa[1] == p.oh && sa[2] == p.ow && sa[3] == p.c, fn,
                 ": argmax must have the shape of dy ", shape_str(dy), ", received ",
                 shape_str(argmax));
    const std::int64_t* ap = argmax.data();
    const char* bad_argmax = ": argmax must hold the flat indices into x that max_pool2d_forward "
                             "returned (each inside its own window and image)";
    // Overlapping windows scatter at argmax: validate first. Disjoint windows only compare with
    // argmax; the kernel counts the consistent entries instead (one pass, checked after).
    const bool disjoint = fastdl::max_pool2d_windows_disjoint(p);
    FASTDL_CHECK(disjoint || fastdl::max_pool2d_argmax_valid(ap, p), fn, bad_argmax);
    auto dx = new_array<T>({p.n, p.h, p.w, p.c}, fn);
    T* dxp = dx.mutable_data();
    const T* dyp = dy.data();
    index_t routed;
    {
        py::gil_scoped_release nogil;
        routed = fastdl::max_pool2d_backward(dxp, dyp, ap, p);
    }
    FASTDL_CHECK(routed == p.n * p.oh * p.ow * p.c, fn, bad_argmax);
    return dx;
}

template <typename T>
Array<T> avg_pool2d_forward(const Array<T>& x, index_t ph, index_t pw, index_t sh, index_t sw,
                            const std::string& padding) {
    const char* fn = "avg_pool2d_forward";
    auto p = pool2d_check_x(x, ph, pw, sh, sw, padding, fn);
    auto y = new_array<T>({p.n, p.oh, p.ow, p.c}, fn);
    T* yp = y.mutable_data();
    const T* xp = x.data();
    {
        py::gil_scoped_release nogil;
        fastdl::avg_pool2d_forward(yp, xp, p);
    }
    return y;
}

template <typename T>
Array<T> avg_pool2d_backward(const Array<T>& dy, index_t input_h, index_t input_w, index_t ph,
                             index_t pw, index_t sh, index_t sw, const std::string& padding) {
    const char* fn = "avg_pool2d_backward";
    auto p = pool2d_check_dy(dy, input_h, input_w, ph, pw, sh, sw, padding, fn);
    auto dx = new_array<T>({p.n, p.h, p.w, p.c}, fn);
    T* dxp = dx.mutable_data();
    const T* dyp = dy.data();
    {
        py::gil_scoped_release nogil;
        fastdl::avg_pool2d_backward(dxp, dyp, p);
    }
    return dx;
}

template <typename T>
void bind_pool2d(py::module_& m) {
    m.def("max_pool2d_forward", &max_pool2d_forward<T>, py::arg("x").noconvert(),
          py::arg("pool_h"), py::arg("pool_w"), py::arg("stride_h"), py::arg("stride_w"),
          py::arg("padding"), py::arg("need_argmax") = true,
          "(y, argmax): window maxima of x (N,H,W,C) and their flat indices (None when "
          "need_argmax is False: inference).");
    m.def("max_pool2d_backward", &max_pool2d_backward<T>, py::arg("dy").noconvert(),
          py::arg("argmax").noconvert(), py::arg("input_h"), py::arg("input_w"),
          py::arg("pool_h"), py::arg("pool_w"), py::arg("stride_h"), py::arg("stride_w"),
          py::arg("padding"), "dx of max pooling: dy scattered (added) at argmax.");
    m.def("avg_pool2d_forward", &avg_pool2d_forward<T>, py::arg("x").noconvert(),
          py::arg("pool_h"), py::arg("pool_w"), py::arg("stride_h"), py::arg("stride_w"),
          py::arg("padding"), "Window means of x (N,H,W,C); padding is not counted.");
    m.def("avg_pool2d_backward", &avg_pool2d_backward<T>, py::arg("dy").noconvert(),
          py::arg("input_h"), py::arg("input_w"), py::arg("pool_h"), py::arg("pool_w"),
          py::arg("stride_h"), py::arg("stride_w"), py::arg("padding"),
          "dx of average pooling.");
}

void set_conv2d_chunk_bytes(index_t bytes) {
    FASTDL_CHECK(bytes >= 1, "conv2d_set_chunk_bytes: bytes must be positive, received ", bytes);
    fastdl::set_conv2d_chunk_bytes(bytes);
}
void set_conv2d_algorithm(const std::string& name) {
    using A = fastdl::Conv2dAlgorithm;
    if (name == "auto") return fastdl::set_conv2d_algorithm(A::kAuto);
    if (name == "im2col") return fastdl::set_conv2d_algorithm(A::kIm2col);
    if (name == "winograd") return fastdl::set_conv2d_algorithm(A::kWinograd);
    throw std::invalid_argument(fastdl::concat(
        "conv2d_set_algorithm: algorithm must be 'auto', 'im2col' or 'winograd', received '",
        name, "'"));
}
std::string conv2d_algorithm() {
    switch (fastdl::conv2d_algorithm()) {
        case fastdl::Conv2dAlgorithm::kIm2col: return "im2col";
        case fastdl::Conv2dAlgorithm::kWinograd: return "winograd";
        default: return "auto";
    }
}
// ---- end conv2d / pool2d

// ---- rnn
// SimpleRNN / LSTM / GRU. rnn_check is shared by every forward and backward: ranks, positive
// sizes, kernel/recurrent/bias/initial-state/mask shapes against x, overflow-checked sizes.
fastdl::RnnActivation rnn_activation(const std::string& name, const char* fn) {
    if (name == "tanh") return fastdl::RnnActivation::tanh;
    if (name == "relu") return fastdl::RnnActivation::relu;
    if (name == "linear") return fastdl::RnnActivation::linear;
    if (name == "sigmoid") return fastdl::RnnActivation::sigmoid;
    throw std::invalid_argument(fastdl::concat(
        fn, ": activation must be one of 'tanh', 'relu', 'linear', 'sigmoid', received '", name,
        "'"));
}

std::string rnn_dims_str(const std::vector<index_t>& dims) {
    std::string s = "(";
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + (dims.size() == 1 ? ",)" : ")");
}

// An array argument that must have exactly this shape.
void rnn_expect_shape(const py::array& a, const std::vector<index_t>& dims, const char* fn,
                      const char* arg) {
    bool same = a.ndim() == static_cast<py::ssize_t>(dims.size());
    for (size_t i = 0; same && i < dims.size(); ++i) same = a.shape(i) == dims[i];
    FASTDL_CHECK(same, fn, ": ", arg, " must have shape ", rnn_dims_str(dims), ", received ",
                 shape_str(a));
}

// None, or a C-contiguous array of exactly T with the given shape (the caller keeps obj alive).
template <typename T>
const T* rnn_optional(const py::object& obj, const std::vector<index_t>& dims, const char* fn,
                      const char* arg) {
    if (obj.is_none()) return nullptr;
    if (!py::isinstance<Array<T>>(obj))
        throw py::type_error(fastdl::concat(
            fn, ": ", arg, " must be None or a C-contiguous ",
            py::str(py::dtype::of<T>()).cast<std::string>(), " array, received ",
            py::str(py::type::handle_of(obj)).cast<std::string>(),
            py::isinstance<py::array>(obj)
                ? " of dtype " + py::str(obj.attr("dtype")).cast<std::string>()
                : std::string()));
    auto a = py::reinterpret_borrow<py::array>(obj);
    rnn_expect_shape(a, dims, fn, arg);
    check_aligned(a, fn, arg);
    return static_cast<const T*>(a.data());
}

fastdl::RnnParams rnn_check(const char* fn, fastdl::RnnCell cell, const py::array& x,
                            const py::array& kernel, const py::array& recurrent, bool use_bias,
                            const std::string& activation, bool reset_after,
                            bool return_sequences, bool go_backwards, bool zero_output_for_mask) {
    auto sx = shape_of<3>(x, fn, "x");
    auto sk = shape_of<2>(kernel, fn, "kernel");
    auto sr = shape_of<2>(recurrent, fn, "recurrent_kernel");
    FASTDL_CHECK(sx[1] >= 1 && sx[2] >= 1, fn,
                 ": x must be (batch, timesteps, features) with timesteps >= 1 and features >= 1,"
                 " received shape ", shape_str(x));
    const index_t gates = cell == fastdl::RnnCell::lstm ? 4 : cell == fastdl::RnnCell::gru ? 3 : 1;
    const index_t u = sr[0];
    FASTDL_CHECK(u >= 1, fn, ": recurrent_kernel must be (units, ", gates,
                 " * units) with units >= 1, received shape ", shape_str(recurrent));
    const index_t gu = fastdl::checked_mul(gates, u, fn);
    FASTDL_CHECK(sr[1] == gu, fn, ": recurrent_kernel must be (units, ", gates, " * units) = (",
                 u, ", ", gu, "), received shape ", shape_str(recurrent));
    FASTDL_CHECK(sk[0] == sx[2] && sk[1] == gu, fn, ": kernel must be (features, ", gates,
                 " * units) = (", sx[2], ", ", gu, ") for x of shape ", shape_str(x),
                 " and recurrent_kernel of shape ", shape_str(recurrent), ", received shape ",
                 shape_str(kernel));
    fastdl::RnnParams p{cell,     sx[0],       sx[1],    sx[2],
                        u,        rnn_activation(activation, fn), reset_after, use_bias,
                        return_sequences, go_backwards, zero_output_for_mask};
    const auto s = fastdl::rnn_sizes(p);
    for (index_t width : {s.cache_width, s.gate_width, u, sx[2]})
        fastdl::checked_product({sx[0], sx[1], width}, fn);
    return p;
}

std::vector<index_t> rnn_bias_shape(const fastdl::RnnSizes& s) {
    if (s.bias_rows == 2) return {2, s.gate_width};
    return {s.gate_width};
}

// -> (y, h_last, c_last | None, cache | None)
template <typename T>
py::tuple rnn_forward(fastdl::RnnCell cell, const char* fn, const Array<T>& x,
                      const Array<T>& kernel, const Array<T>& recurrent, const py::object& bias,
                      const py::object& h0, const py::object& c0, const py::object& mask,
                      const std::string& activation, bool reset_after, bool return_sequences,
                      bool go_backwards, bool zero_output_for_mask, bool training) {
    const auto p = rnn_check(fn, cell, x, kernel, recurrent, !bias.is_none(), activation,
                             reset_after, return_sequences, go_backwards, zero_output_for_mask);
    const auto s = fastdl::rnn_sizes(p);
    const index_t n = p.batch, t = p.steps, u = p.units;
    const bool lstm = cell == fastdl::RnnCell::lstm;
    const T* bp = rnn_optional<T>(bias, rnn_bias_shape(s), fn, "bias");
    const T* h0p = rnn_optional<T>(h0, {n, u}, fn, "initial state h0");
    const T* c0p = lstm ? rnn_optional<T>(c0, {n, u}, fn, "initial state c0") : nullptr;
    FASTDL_CHECK(lstm || c0.is_none(), fn, ": only LSTM has a cell state; c0 must be None");
    const bool* mp = rnn_optional<bool>(mask, {n, t}, fn, "mask");

    auto y = return_sequences ? new_array<T>({n, t, u}, fn) : new_array<T>({n, u}, fn);
    auto h = new_array<T>({n, u}, fn);
    py::object c = py::none(), cache = py::none();
    T* cp = nullptr;
    T* cachep = nullptr;
    if (lstm) {
        auto ca = new_array<T>({n, u}, fn);
        cp = ca.mutable_data();
        c = ca;
    }
    if (training) {
        auto ka = new_array<T>({t, n, s.cache_width}, fn);
        cachep = ka.mutable_data();
        cache = ka;
    }
    T* yp = y.mutable_data();
    T* hp = h.mutable_data();
    const T *xp = x.data(), *kp = kernel.data(), *rp = recurrent.data();
    {
        py::gil_scoped_release nogil;
        fastdl::rnn_forward<T>(yp, hp, cp, cachep, xp, kp, rp, bp, h0p, c0p, mp, p);
    }
    return py::make_tuple(y, h, c, cache);
}

// -> (dx, dkernel, drecurrent, dbias | None, dh0, dc0 | None)
template <typename T>
py::tuple rnn_backward(fastdl::RnnCell cell, const char* fn, const Array<T>& dy,
                       const py::object& dh, const py::object& dc, const Array<T>& x,
                       const Array<T>& kernel, const Array<T>& recurrent,
                       const py::object& mask, const Array<T>& cache,
                       const std::string& activation, bool use_bias, bool reset_after,
                       bool return_sequences, bool go_backwards, bool zero_output_for_mask) {
    const auto p = rnn_check(fn, cell, x, kernel, recurrent, use_bias, activation, reset_after,
                             return_sequences, go_backwards, zero_output_for_mask);
    const auto s = fastdl::rnn_sizes(p);
    const index_t n = p.batch, t = p.steps, u = p.units, in = p.input, gu = s.gate_width;
    const bool lstm = cell == fastdl::RnnCell::lstm;
    if (return_sequences)
        rnn_expect_shape(dy, {n, t, u}, fn, "dy");
    else
        rnn_expect_shape(dy, {n, u}, fn, "dy");
    const T* dhp = rnn_optional<T>(dh, {n, u}, fn, "dh (gradient of the final state h)");
    const T* dcp = lstm ? rnn_optional<T>(dc, {n, u}, fn, "dc (gradient of the final state c)")
                        : nullptr;
    FASTDL_CHECK(lstm || dc.is_none(), fn, ": only LSTM has a cell state; dc must be None");
    const bool* mp = rnn_optional<bool>(mask, {n, t}, fn, "mask");
    rnn_expect_shape(cache, {t, n, s.cache_width}, fn, "cache");

    auto dx = new_array<T>({n, t, in}, fn);
    auto dk = new_array<T>({in, gu}, fn);
    auto dr = new_array<T>({u, gu}, fn);
    auto dh0 = new_array<T>({n, u}, fn);
    py::object db = py::none(), dc0 = py::none();
    T* dbp = nullptr;
    T* dc0p = nullptr;
    if (use_bias) {
        auto dims = rnn_bias_shape(s);
        auto a = dims.size() == 1 ? new_array<T>({dims[0]}, fn) : new_array<T>({dims[0], dims[1]}, fn);
        dbp = a.mutable_data();
        db = a;
    }
    if (lstm) {
        auto a = new_array<T>({n, u}, fn);
        dc0p = a.mutable_data();
        dc0 = a;
    }
    T *dxp = dx.mutable_data(), *dkp = dk.mutable_data(), *drp = dr.mutable_data();
    T* dh0p = dh0.mutable_data();
    const T *dyp = dy.data(), *xp = x.data(), *kp = kernel.data(), *rp = recurrent.data();
    const T* cachep = cache.data();
    {
        py::gil_scoped_release nogil;
        fastdl::rnn_backward<T>(dxp, dkp, drp, dbp, dh0p, dc0p, dyp, dhp, dcp, xp, kp, rp, mp,
                                cachep, p);
    }
    return py::make_tuple(dx, dk, dr, db, dh0, dc0);
}

template <typename T>
void bind_rnn(py::module_& m) {
    using fastdl::RnnCell;
    m.def(
        "simple_rnn_forward",
        [](const Array<T>& x, const Array<T>& kernel, const Array<T>& recurrent,
           const py::object& bias, const py::object& h0, const py::object& mask,
           const std::string& activation, bool return_sequences, bool go_backwards,
           bool zero_output_for_mask, bool training) {
            return rnn_forward<T>(RnnCell::simple_rnn, "simple_rnn_forward", x, kernel,
                                  recurrent, bias, h0, py::none(), mask, activation, false,
                                  return_sequences, go_backwards, zero_output_for_mask,
                                  training);
        },
        py::arg("x").noconvert(), py::arg("kernel").noconvert(),
        py::arg("recurrent_kernel").noconvert(), py::arg("bias") = py::none(),
        py::arg("h0") = py::none(), py::arg("mask") = py::none(),
        py::arg("activation") = "tanh", py::arg("return_sequences") = false,
        py::arg("go_backwards") = false, py::arg("zero_output_for_mask") = false,
        py::arg("training") = false,
        "SimpleRNN over a sequence -> (y, h_last, None, cache | None).");
    m.def(
        "lstm_forward",
        [](const Array<T>& x, const Array<T>& kernel, const Array<T>& recurrent,
           const py::object& bias, const py::object& h0, const py::object& c0,
           const py::object& mask, bool return_sequences, bool go_backwards,
           bool zero_output_for_mask, bool training) {
            return rnn_forward<T>(RnnCell::lstm, "lstm_forward", x, kernel, recurrent, bias, h0,
                                  c0, mask, "tanh", false, return_sequences, go_backwards,
                                  zero_output_for_mask, training);
        },
        py::arg("x").noconvert(), py::arg("kernel").noconvert(),
        py::arg("recurrent_kernel").noconvert(), py::arg("bias") = py::none(),
        py::arg("h0") = py::none(), py::arg("c0") = py::none(), py::arg("mask") = py::none(),
        py::arg("return_sequences") = false, py::arg("go_backwards") = false,
        py::arg("zero_output_for_mask") = false, py::arg("training") = false,
        "LSTM over a sequence -> (y, h_last, c_last, cache | None).");
    m.def(
        "gru_forward",
        [](const Array<T>& x, const Array<T>& kernel, const Array<T>& recurrent,
           const py::object& bias, const py::object& h0, const py::object& mask,
           bool reset_after, bool return_sequences, bool go_backwards,
           bool zero_output_for_mask, bool training) {
            return rnn_forward<T>(RnnCell::gru, "gru_forward", x, kernel, recurrent, bias, h0,
                                  py::none(), mask, "tanh", reset_after, return_sequences,
                                  go_backwards, zero_output_for_mask, training);
        },
        py::arg("x").noconvert(), py::arg("kernel").noconvert(),
        py::arg("recurrent_kernel").noconvert(), py::arg("bias") = py::none(),
        py::arg("h0") = py::none(), py::arg("mask") = py::none(),
        py::arg("reset_after") = true, py::arg("return_sequences") = false,
        py::arg("go_backwards") = false, py::arg("zero_output_for_mask") = false,
        py::arg("training") = false, "GRU over a sequence -> (y, h_last, None, cache | None).");
    m.def(
        "simple_rnn_backward",
        [](const Array<T>& dy, const py::object& dh, const Array<T>& x, const Array<T>& kernel,
           const Array<T>& recurrent, const py::object& mask, const Array<T>& cache,
           const std::string& activation, bool use_bias, bool return_sequences,
           bool go_backwards, bool zero_output_for_mask) {
            return rnn_backward<T>(RnnCell::simple_rnn, "simple_rnn_backward", dy, dh,
                                   py::none(), x, kernel, recurrent, mask, cache, activation,
                                   use_bias, false, return_sequences, go_backwards,
                                   zero_output_for_mask);
        },
        py::arg("dy").noconvert(), py::arg("dh"), py::arg("x").noconvert(),
        py::arg("kernel").noconvert(), py::arg("recurrent_kernel").noconvert(),
        py::arg("mask"), py::arg("cache").noconvert(), py::arg("activation") = "tanh",
        py::arg("use_bias") = true, py::arg("return_sequences") = false,
        py::arg("go_backwards") = false, py::arg("zero_output_for_mask") = false,
        "SimpleRNN BPTT -> (dx, dkernel, drecurrent, dbias | None, dh0, None).");
    m.def(
        "lstm_backward",
        [](const Array<T>& dy, const py::object& dh, const py::object& dc, const Array<T>& x,
           const Array<T>& kernel, const Array<T>& recurrent, const py::object& mask,
           const Array<T>& cache, bool use_bias, bool return_sequences, bool go_backwards,
           bool zero_output_for_mask) {
            return rnn_backward<T>(RnnCell::lstm, "lstm_backward", dy, dh, dc, x, kernel,
                                   recurrent, mask, cache, "tanh", use_bias, false,
                                   return_sequences, go_backwards, zero_output_for_mask);
        },
        py::arg("dy").noconvert(), py::arg("dh"), py::arg("dc"), py::arg("x").noconvert(),
        py::arg("kernel").noconvert(), py::arg("recurrent_kernel").noconvert(),
        py::arg("mask"), py::arg("cache").noconvert(), py::arg("use_bias") = true,
        py::arg("return_sequences") = false, py::arg("go_backwards") = false,
        py::arg("zero_output_for_mask") = false,
        "LSTM BPTT -> (dx, dkernel, drecurrent, dbias | None, dh0, dc0).");
    m.def(
        "gru_backward",
        [](const Array<T>& dy, const py::object& dh, const Array<T>& x, const Array<T>& kernel,
           const Array<T>& recurrent, const py::object& mask, const Array<T>& cache,
           bool use_bias, bool reset_after, bool return_sequences, bool go_backwards,
           bool zero_output_for_mask) {
            return rnn_backward<T>(RnnCell::gru, "gru_backward", dy, dh, py::none(), x, kernel,
                                   recurrent, mask, cache, "tanh", use_bias, reset_after,
                                   return_sequences, go_backwards, zero_output_for_mask);
        },
        py::arg("dy").noconvert(), py::arg("dh"), py::arg("x").noconvert(),
        py::arg("kernel").noconvert(), py::arg("recurrent_kernel").noconvert(),
        py::arg("mask"), py::arg("cache").noconvert(), py::arg("use_bias") = true,
        py::arg("reset_after") = true, py::arg("return_sequences") = false,
        py::arg("go_backwards") = false, py::arg("zero_output_for_mask") = false,
        "GRU BPTT -> (dx, dkernel, drecurrent, dbias | None, dh0, None).");
}

// ---- embedding
// ids of any shape (int32/int64, validated against [0, input_dim) before any read).
std::string embedding_position(const py::array& ids, index_t flat) {
    std::vector<index_t> idx(static_cast<size_t>(ids.ndim()));
    for (py::ssize_t a = ids.ndim() - 1; a >= 0; --a) {
        const index_t dim = static_cast<index_t>(ids.shape(a));
        idx[static_cast<size_t>(a)] = dim ? flat % dim : 0;
        flat = dim ? flat / dim : 0;
    }
    return rnn_dims_str(idx);
}

template <typename I>
void embedding_check_ids(const py::array_t<I, py::array::c_style>& ids, index_t input_dim,
                         const char* fn) {
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
Array<T> embedding_forward(const Array<T>& table, const py::array_t<I, py::array::c_style>& ids) {
    const char* fn = "embedding_forward";
    auto st = shape_of<2>(table, fn, "embeddings");
    FASTDL_CHECK(st[0] >= 1 && st[1] >= 1, fn,
                 ": embeddings must be (input_dim, output_dim) with positive sizes, received ",
                 shape_str(table));
    embedding_check_ids<I>(ids, st[0], fn);
    std::vector<py::ssize_t> shape(ids.shape(), ids.shape() + ids.ndim());
    shape.push_back(static_cast<py::ssize_t>(st[1]));
    const index_t m = static_cast<index_t>(ids.size());
    fastdl::checked_mul(m, st[1], fn);
    Array<T> y(shape);
    T* yp = y.mutable_data();
    const T* tp = table.data();
    const I* ip = ids.data();
    {
        py::gil_scoped_release nogil;
        fastdl::embedding_forward<T, I>(yp, tp, ip, m, st[1]);
    }
    return y;
}

template <typename T, typename I>
Array<T> embedding_backward(const Array<T>& dy, const py::array_t<I, py::array::c_style>& ids,
                            index_t input_dim) {
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
void bind_embedding(py::module_& m) {
    m.def("embedding_forward", &embedding_forward<T, I>, py::arg("embeddings").noconvert(),
          py::arg("ids").noconvert(), "embeddings[ids]: ids.shape + (output_dim,).");
    m.def("embedding_backward", &embedding_backward<T, I>, py::arg("dy").noconvert(),
          py::arg("ids").noconvert(), py::arg("input_dim"),
          "Scatter-add of dy into a zero (input_dim, output_dim) gradient.");
}
// ---- end rnn / embedding

// ---- optimizers
// The flat state buffers one update rule works on: 1-D, one dtype, one length, C-contiguous,
// aligned, writeable and pairwise disjoint (each is read and written in the same pass).
template <typename T>
struct FlatBuffers {
    explicit FlatBuffers(const char* name) : fn(name) {}
    const char* fn;
    index_t n = -1;
    std::vector<Array<T>> held;
    std::vector<std::pair<const char*, const char*>> spans;  // byte ranges, for the overlap check

    T* take(const py::object& obj, const char* arg, bool optional) {
        if (optional && obj.is_none()) return nullptr;
        if (!py::isinstance<Array<T>>(obj))
            throw py::type_error(fastdl::concat(
                fn, ": ", arg, " must be a C-contiguous ",
                py::str(py::dtype::of<T>()).cast<std::string>(), " array like g",
                optional ? " or None" : "", ", received ",
                py::str(py::type::of(obj)).cast<std::string>(),
                py::isinstance<py::array>(obj)
                    ? " of dtype " + py::str(obj.attr("dtype")).cast<std::string>()
                    : std::string()));
        Array<T> a = py::reinterpret_borrow<Array<T>>(obj);
        const auto s = shape_of<1>(a, fn, arg);
        FASTDL_CHECK(n < 0 || s[0] == n, fn, ": ", arg, " has ", s[0],
                     " elements, g has ", n);
        n = s[0];
        FASTDL_CHECK(a.writeable(), fn, ": ", arg, " is read-only; the update writes it in place");
        const char* lo = reinterpret_cast<const char*>(a.data());
        const char* hi = lo + n * static_cast<index_t>(sizeof(T));
        for (const auto& [plo, phi] : spans)
            FASTDL_CHECK(n == 0 || hi <= plo || phi <= lo, fn, ": ", arg,
                         " shares memory with another buffer of the update");
        spans.emplace_back(lo, hi);
        held.push_back(a);
        return held.back().mutable_data();
    }
};

template <typename T>
void adam_update_t(const py::object& g, const py::object& m, const py::object& v,
                   const py::object& vhat, double alpha, double c1, double c2, double eps) {
    FlatBuffers<T> b("adam_update");
    T* gp = b.take(g, "g", false);
    T* mp = b.take(m, "m", false);
    T* vp = b.take(v, "v", false);
    T* hp = b.take(vhat, "vhat", true);
    const index_t n = b.n;
    py::gil_scoped_release nogil;
    fastdl::adam_update<T>(gp, mp, vp, hp, n, static_cast<T>(alpha), static_cast<T>(c1),
                           static_cast<T>(c2), static_cast<T>(eps));
}

template <typename T>
void rmsprop_update_t(const py::object& g, const py::object& v, const py::object& avg,
                      const py::object& mom, double lr, double rho, double c, double momentum,
                      double eps) {
    FlatBuffers<T> b("rmsprop_update");
    T* gp = b.take(g, "g", false);
    T* vp = b.take(v, "v", false);
    T* ap = b.take(avg, "average_gradient", true);
    T* mp = b.take(mom, "momentum_buffer", true);
    const index_t n = b.n;
    py::gil_scoped_release nogil;
    fastdl::rmsprop_update<T>(gp, vp, ap, mp, n, static_cast<T>(lr), static_cast<T>(rho),
                              static_cast<T>(c), static_cast<T>(momentum), static_cast<T>(eps));
}

// g's dtype picks the kernel; every other buffer must match it (checked by FlatBuffers).
bool is_float64(const py::object& g, const char* fn) {
    const bool f32 = py::isinstance<py::array_t<float>>(g);
    const bool f64 = py::isinstance<py::array_t<double>>(g);
    if (!py::isinstance<py::array>(g) || !(f32 || f64))
        throw py::type_error(fastdl::concat(
            fn, ": g must be a float32 or float64 array, received ",
            py::isinstance<py::array>(g)
                ? "dtype " + py::str(g.attr("dtype")).cast<std::string>()
                : py::str(py::type::of(g)).cast<std::string>()));
    return f64;
}

void adam_update(const py::object& g, const py::object& m, const py::object& v,
                 const py::object& vhat, double alpha, double c1, double c2, double eps) {
    if (is_float64(g, "adam_update"))
        adam_update_t<double>(g, m, v, vhat, alpha, c1, c2, eps);
    else
        adam_update_t<float>(g, m, v, vhat, alpha, c1, c2, eps);
}

void rmsprop_update(const py::object& g, const py::object& v, const py::object& avg,
                    const py::object& mom, double lr, double rho, double c, double momentum,
                    double eps) {
    if (is_float64(g, "rmsprop_update"))
        rmsprop_update_t<double>(g, v, avg, mom, lr, rho, c, momentum, eps);
    else
        rmsprop_update_t<float>(g, v, avg, mom, lr, rho, c, momentum, eps);
}

void bind_optimizers(py::module_& m) {
    m.def("adam_update", &adam_update, py::arg("g"), py::arg("m"), py::arg("v"),
          py::arg("vhat").none(true), py::arg("alpha"), py::arg("c1"), py::arg("c2"),
          py::arg("eps"),
          "Adam/AMSGrad in place on flat buffers: updates m, v (and vhat); g becomes the step.");
    m.def("rmsprop_update", &rmsprop_update, py::arg("g"), py::arg("v"),
          py::arg("average_gradient").none(true), py::arg("momentum_buffer").none(true),
          py::arg("lr"), py::arg("rho"), py::arg("c"), py::arg("momentum"), py::arg("eps"),
          "RMSprop in place on flat buffers: updates the slots; g becomes the increment.");
}
// ---- end optimizers

// ---- sanitizer canary
// Compiled into the sanitizer build only (FASTDL_SANITIZE): tests/test_sanitizer_canary.py calls
// it to prove the sanitizers are active. Kind "address" reads one element past a heap buffer
// (AddressSanitizer must abort the process); kind "undefined" overflows a signed int (UBSan must
// report it). The production module has no such function.
#ifdef FASTDL_SANITIZED_BUILD
bool sanitizer_canary(const std::string& kind) {
    FASTDL_CHECK(kind == "address" || kind == "undefined",
                 "_sanitizer_canary: kind must be 'address' or 'undefined', received '", kind, "'");
    volatile index_t past_end = 4;
    volatile int sink = 0;
    if (kind == "address") {
        int* buf = new int[past_end]();  // size unknown at compile time: ASan, not UBSan, reports
        sink = buf[past_end];            // heap-buffer-overflow: one element past the end
        delete[] buf;
    } else {
        volatile int big = std::numeric_limits<int>::max();
        sink = big + static_cast<int>(past_end);  // signed integer overflow
    }
    return sink == 0x7fffffff;
}
#endif
// ---- end sanitizer canary

// ---------------------------------------------------------------- threads and build info
// The most threads fastdl runs: 4 per core, at least 64. More only adds stacks and switching,
// and a count beyond what the process can create is fatal: libgomp ends the process ("Thread
// creation failed") rather than report it.
int max_threads() { return std::max(64, 4 * omp_get_num_procs()); }

// How many threads (the caller plus n - 1 new ones) can exist at once now. The probe threads
// have the default stack size, as libgomp's do unless OMP_STACKSIZE is set; all n - 1 stay
// mapped until joined, so the probe asks for as much memory as the team will.
int creatable_threads(int n) {
    std::vector<std::thread> probe;
    probe.reserve(static_cast<std::size_t>(n - 1));
    try {
        for (int i = 1; i < n; ++i) probe.emplace_back([] {});
    } catch (const std::system_error&) {
    }
    const int made = static_cast<int>(probe.size()) + 1;
    for (auto& t : probe) t.join();
    return made;
}

void set_threads(int n) {
    FASTDL_CHECK(n >= 1, "set_num_threads: n must be a positive integer, received ", n);
    FASTDL_CHECK(n <= max_threads(), "set_num_threads: n must be at most ", max_threads(),
                 " (4 per core, at least 64), received ", n);
    const int made = creatable_threads(n);
    if (made < n)
        throw std::runtime_error(fastdl::concat(
            "set_num_threads: only ", made, " of ", n, " threads could be created (a memory or "
            "process limit); the thread count stays ", fastdl::num_threads()));
    fastdl::set_num_threads(n);
}

// At import: OMP_NUM_THREADS is libgomp's, read when it loaded; a count above max_threads() or
// more than the process can create is lowered, with a RuntimeWarning.
void clamp_initial_threads() {
    const int requested = omp_get_max_threads();  // libgomp wraps huge values: may be < 1
    int n = requested < 1 ? max_threads() : std::min(requested, max_threads());
    if (n > omp_get_num_procs()) n = creatable_threads(n);
    if (n == requested) return;
    fastdl::set_num_threads(n);
    const std::string asked = requested < 1 ? "an out-of-range count of" : std::to_string(requested);
    const std::string message = fastdl::concat(
        "fastdl: OMP_NUM_THREADS asks for ", asked, " threads; using ", n, " (at most ",
        max_threads(), ", 4 per core, and no more than the process can create)");
    if (PyErr_WarnEx(PyExc_RuntimeWarning, message.c_str(), 1) != 0) throw py::error_already_set();
}

py::dict build_info() {
    py::dict d;
    d["eigen_version"] = std::to_string(EIGEN_WORLD_VERSION) + "." +
                         std::to_string(EIGEN_MAJOR_VERSION) + "." +
                         std::to_string(EIGEN_MINOR_VERSION);
    d["simd"] = std::string(Eigen::SimdInstructionSetsInUse());
    d["openmp"] = static_cast<int>(_OPENMP);
    // The x86-64 level this module was compiled for ("v2", "v3", "v4"; "native" for a
    // -march=native or sanitizer build) and the float32 GEMM it runs.
    d["isa"] = std::string(FASTDL_ISA_LEVEL);
    d["gemm"] = std::string(fastdl::gemm_backend());
#ifdef FASTDL_SANITIZED_BUILD
    d["sanitizer"] = std::string("address,undefined");
#else
    d["sanitizer"] = py::none();
#endif
    d["gemm"] = std::string(fastdl::gemm_backend());  // float32 GEMM: "avx512", "avx2" or "eigen"
    return d;
}

}  // namespace

// CMakeLists.txt compiles this file once per x86-64 level, as fastdl._core_v2, _core_v3, ...
PYBIND11_MODULE(FASTDL_MODULE_NAME, m) {
    m.doc() = "fastdl's C++ kernels (Eigen + OpenMP). Internal: use fastdl.ops and the layers.";
    bind_gemm<float>(m);
    bind_gemm<double>(m);
    bind_conv2d<float>(m);  // ---- conv2d
    bind_conv2d<double>(m);
    m.def("conv2d_set_chunk_bytes", &set_conv2d_chunk_bytes, py::arg("bytes"));
    m.def("conv2d_chunk_bytes", &fastdl::conv2d_chunk_bytes);
    m.def("conv2d_set_algorithm", &set_conv2d_algorithm, py::arg("algorithm"),
          "Algorithm of 3x3 stride-1 undilated ungrouped convolutions: 'auto' (Winograd "
          "F(2x2,3x3) when C and F are >= 16), 'im2col' or 'winograd' (forced; tests, benchmarks).");
    m.def("conv2d_algorithm", &conv2d_algorithm);
    bind_pool2d<float>(m);  // ---- pool2d
    bind_pool2d<double>(m);
    bind_rnn<float>(m);  // ---- rnn
    bind_rnn<double>(m);
    bind_embedding<float, std::int32_t>(m);  // ---- embedding
    bind_embedding<float, std::int64_t>(m);
    bind_embedding<double, std::int32_t>(m);
    bind_embedding<double, std::int64_t>(m);
    bind_optimizers(m);  // ---- optimizers
    bind_image(m);  // ---- image
    clamp_initial_threads();
    m.def("set_num_threads", &set_threads, py::arg("n"));
    m.def("max_threads", &max_threads);
    m.def("get_num_threads", &fastdl::num_threads);
    m.def("build_info", &build_info);
#ifdef FASTDL_SANITIZED_BUILD  // ---- sanitizer canary
    m.def("_sanitizer_canary", &sanitizer_canary, py::arg("kind") = "address");
#endif  // ---- end sanitizer canary
}
