// fastdl._core, the module: its functions are bound by op family in cpp/bindings/ (one file
// per family, each defining bind_<family>(m), over the shared checks of cpp/bindings/checks.h).
// A new family adds its file and one line here. python/fastdl/_core.pyi lists the API.
#include <pybind11/pybind11.h>

namespace py = pybind11;

void bind_gemm(py::module_& m);
void bind_conv(py::module_& m);
void bind_conv1d_sparse(py::module_& m);  // cpp/conv1d_sparse.cpp
void bind_attention(py::module_& m);
void bind_image(py::module_& m);
void bind_pool(py::module_& m);
void bind_rnn(py::module_& m);
void bind_embedding(py::module_& m);
void bind_optimizers(py::module_& m);
void bind_hashing(py::module_& m);  // Keras's Hashing layer
void bind_misc(py::module_& m);  // threads, build_info (and the sanitizer canary)

// CMakeLists.txt compiles the kernels and bindings once per x86-64 level, as fastdl._core_v2,
// _core_v3, ...
PYBIND11_MODULE(FASTDL_MODULE_NAME, m) {
    m.doc() = "fastdl's C++ kernels (Eigen + OpenMP). Internal: use fastdl.ops and the layers.";
    bind_gemm(m);
    bind_conv(m);  // ---- conv2d
    bind_conv1d_sparse(m);
    bind_attention(m);
    bind_image(m);
    bind_pool(m);  // ---- pool2d
    bind_rnn(m);  // ---- rnn
    bind_embedding(m);  // ---- embedding
    bind_optimizers(m);  // ---- optimizers
    bind_hashing(m);
    bind_misc(m);
}
