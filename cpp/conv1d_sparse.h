// Backward of a 1-D convolution for a sparse upstream gradient (e.g. after global max pooling).
#pragma once

#include <pybind11/pybind11.h>

void bind_conv1d_sparse(pybind11::module_& m);
