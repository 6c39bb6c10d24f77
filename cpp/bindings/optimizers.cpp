// Bindings of the fused optimizer updates (optimizers.h): Adam/AMSGrad and RMSprop in place on
// flat buffers.
#include <utility>

#include "checks.h"
#include "optimizers.h"

using namespace fastdl::bindings;
using fastdl::index_t;

namespace {

// The flat state buffers one update rule works on: 1-D, one dtype, one length, C-contiguous,
// aligned, writeable and pairwise disjoint (each is read and written in the same pass).
template <typename T>
struct FlatBuffers {
    explicit FlatBuffers(const char* name) : fn(name) {}
    const char* fn;
    index_t n = -1;
    std::vector<std::pair<const char*, const char*>> spans;  // byte ranges, for the overlap check

    // The buffer's data, or null for None when optional. obj (the caller's argument) keeps it.
    T* take(const py::object& obj, const char* arg, bool optional) {
        if (optional && obj.is_none()) return nullptr;
        Array<T> a = exact_array<T>(obj, fn, arg, optional, " like g");
        const auto s = shape_of<1>(a, fn, arg);
        FASTDL_CHECK(n < 0 || s[0] == n, fn, ": ", arg, " has ", s[0], " elements, g has ", n);
        n = s[0];
        FASTDL_CHECK(a.writeable(), fn, ": ", arg, " is read-only; the update writes it in place");
        const char* lo = reinterpret_cast<const char*>(a.data());
        const char* hi = lo + n * static_cast<index_t>(sizeof(T));
        for (const auto& [plo, phi] : spans)
            FASTDL_CHECK(n == 0 || hi <= plo || phi <= lo, fn, ": ", arg,
                         " shares memory with another buffer of the update");
        spans.emplace_back(lo, hi);
        return a.mutable_data();
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

}  // namespace

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
