// Bindings of the recurrent layers (rnn.h): SimpleRNN, LSTM and GRU over a whole sequence,
// forward and backpropagation through time.
#include "checks.h"
#include "rnn.h"

using namespace fastdl::bindings;
using fastdl::index_t;
using fastdl::RnnCell;

namespace {

// The options of one layer, as its forward and backward both take them.
struct RnnOptions {
    std::string activation = "tanh";  // SimpleRNN only
    bool use_bias = true;
    bool reset_after = false;  // GRU only
    bool return_sequences = false, go_backwards = false, zero_output_for_mask = false;
};

fastdl::RnnActivation rnn_activation(const std::string& name, const char* fn) {
    if (name == "tanh") return fastdl::RnnActivation::tanh;
    if (name == "relu") return fastdl::RnnActivation::relu;
    if (name == "linear") return fastdl::RnnActivation::linear;
    if (name == "sigmoid") return fastdl::RnnActivation::sigmoid;
    throw std::invalid_argument(fastdl::concat(
        fn, ": activation must be one of 'tanh', 'relu', 'linear', 'sigmoid', received '", name,
        "'"));
}

// Shared by every forward and backward: ranks, positive sizes, kernel/recurrent shapes against
// x, overflow-checked sizes of every (batch, steps, width) buffer.
fastdl::RnnParams rnn_check(const char* fn, RnnCell cell, const py::array& x,
                            const py::array& kernel, const py::array& recurrent,
                            const RnnOptions& o) {
    auto sx = shape_of<3>(x, fn, "x");
    auto sk = shape_of<2>(kernel, fn, "kernel");
    auto sr = shape_of<2>(recurrent, fn, "recurrent_kernel");
    FASTDL_CHECK(sx[1] >= 1 && sx[2] >= 1, fn,
                 ": x must be (batch, timesteps, features) with timesteps >= 1 and features >= 1,"
                 " received shape ", shape_str(x));
    const index_t gates = cell == RnnCell::lstm ? 4 : cell == RnnCell::gru ? 3 : 1;
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
    fastdl::RnnParams p{cell, sx[0], sx[1], sx[2], u, rnn_activation(o.activation, fn),
                        o.reset_after, o.use_bias, o.return_sequences, o.go_backwards,
                        o.zero_output_for_mask};
    const auto s = fastdl::rnn_sizes(p);
    for (index_t width : {s.cache_width, s.gate_width, u, sx[2]})
        fastdl::checked_product({sx[0], sx[1], width}, fn);
    return p;
}

Shape rnn_bias_shape(const fastdl::RnnSizes& s) {
    if (s.bias_rows == 2) return {2, s.gate_width};
    return {s.gate_width};
}

// -> (y, h_last, c_last | None, cache | None); o.use_bias is whether bias is given.
template <typename T>
py::tuple rnn_forward(RnnCell cell, const char* fn, const Array<T>& x, const Array<T>& kernel,
                      const Array<T>& recurrent, const py::object& bias, const py::object& h0,
                      const py::object& c0, const py::object& mask, RnnOptions o,
                      bool training, const py::object& recurrent_mask) {
    o.use_bias = !bias.is_none();
    const auto p = rnn_check(fn, cell, x, kernel, recurrent, o);
    const auto s = fastdl::rnn_sizes(p);
    const index_t n = p.batch, t = p.steps, u = p.units;
    const bool lstm = cell == RnnCell::lstm;
    const T* bp = optional_array<T>(bias, rnn_bias_shape(s), fn, "bias");
    const T* h0p = optional_array<T>(h0, {n, u}, fn, "initial state h0");
    const T* c0p = lstm ? optional_array<T>(c0, {n, u}, fn, "initial state c0") : nullptr;
    FASTDL_CHECK(lstm || c0.is_none(), fn, ": only LSTM has a cell state; c0 must be None");
    const bool* mp = optional_array<bool>(mask, {n, t}, fn, "mask");
    const T* rmp = optional_array<T>(recurrent_mask, {n, s.gates, u}, fn, "recurrent_mask");

    auto y = new_array<T>(o.return_sequences ? Shape{n, t, u} : Shape{n, u}, fn);
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
        fastdl::rnn_forward<T>(yp, hp, cp, cachep, xp, kp, rp, bp, h0p, c0p, mp, p, rmp);
    }
    return py::make_tuple(y, h, c, cache);
}

// -> (dx, dkernel, drecurrent, dbias | None, dh0, dc0 | None)
template <typename T>
py::tuple rnn_backward(RnnCell cell, const char* fn, const Array<T>& dy, const py::object& dh,
                       const py::object& dc, const Array<T>& x, const Array<T>& kernel,
                       const Array<T>& recurrent, const py::object& mask, const Array<T>& cache,
                       const RnnOptions& o, const py::object& recurrent_mask,
                       const py::object& gate_grads) {
    const auto p = rnn_check(fn, cell, x, kernel, recurrent, o);
    const auto s = fastdl::rnn_sizes(p);
    const index_t n = p.batch, t = p.steps, u = p.units, in = p.input, gu = s.gate_width;
    const bool lstm = cell == RnnCell::lstm;
    expect_shape(dy, o.return_sequences ? Shape{n, t, u} : Shape{n, u}, fn, "dy");
    const T* dhp = optional_array<T>(dh, {n, u}, fn, "dh (gradient of the final state h)");
    const T* dcp = lstm ? optional_array<T>(dc, {n, u}, fn, "dc (gradient of the final state c)")
                        : nullptr;
    FASTDL_CHECK(lstm || dc.is_none(), fn, ": only LSTM has a cell state; dc must be None");
    const bool* mp = optional_array<bool>(mask, {n, t}, fn, "mask");
    expect_shape(cache, {t, n, s.cache_width}, fn, "cache");
    const T* rmp = optional_array<T>(recurrent_mask, {n, s.gates, u}, fn, "recurrent_mask");
    T* ggp = nullptr;   // an output the caller allocated: (steps, batch, width) d(gates)
    if (!gate_grads.is_none()) {
        Array<T> a = exact_array<T>(gate_grads, fn, "gate_grads", true);
        const index_t width = (cell == RnnCell::gru && o.reset_after) ? 2 * gu : gu;
        expect_shape(a, {t, n, width}, fn, "gate_grads");
        FASTDL_CHECK(a.writeable(), fn, ": gate_grads must be a writable array");
        ggp = a.mutable_data();
    }

    auto dx = new_array<T>({n, t, in}, fn);
    auto dk = new_array<T>({in, gu}, fn);
    auto dr = new_array<T>({u, gu}, fn);
    auto dh0 = new_array<T>({n, u}, fn);
    py::object db = py::none(), dc0 = py::none();
    T* dbp = nullptr;
    T* dc0p = nullptr;
    if (o.use_bias) {
        auto a = new_array<T>(rnn_bias_shape(s), fn);
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
                                cachep, p, rmp, ggp);
    }
    return py::make_tuple(dx, dk, dr, db, dh0, dc0);
}

template <typename T>
void bind_rnn_t(py::module_& m) {
    m.def(
        "simple_rnn_forward",
        [](const Array<T>& x, const Array<T>& kernel, const Array<T>& recurrent,
           const py::object& bias, const py::object& h0, const py::object& mask,
           const std::string& activation, bool return_sequences, bool go_backwards,
           bool zero_output_for_mask, bool training, const py::object& recurrent_mask) {
            RnnOptions o{activation, true, false, return_sequences, go_backwards,
                         zero_output_for_mask};
            return rnn_forward<T>(RnnCell::simple_rnn, "simple_rnn_forward", x, kernel,
                                  recurrent, bias, h0, py::none(), mask, o, training, recurrent_mask);
        },
        py::arg("x").noconvert(), py::arg("kernel").noconvert(),
        py::arg("recurrent_kernel").noconvert(), py::arg("bias") = py::none(),
        py::arg("h0") = py::none(), py::arg("mask") = py::none(),
        py::arg("activation") = "tanh", py::arg("return_sequences") = false,
        py::arg("go_backwards") = false, py::arg("zero_output_for_mask") = false,
        py::arg("training") = false, py::arg("recurrent_mask") = py::none(),
        "SimpleRNN over a sequence -> (y, h_last, None, cache | None).");
    m.def(
        "lstm_forward",
        [](const Array<T>& x, const Array<T>& kernel, const Array<T>& recurrent,
           const py::object& bias, const py::object& h0, const py::object& c0,
           const py::object& mask, bool return_sequences, bool go_backwards,
           bool zero_output_for_mask, bool training, const py::object& recurrent_mask) {
            RnnOptions o{"tanh", true, false, return_sequences, go_backwards,
                         zero_output_for_mask};
            return rnn_forward<T>(RnnCell::lstm, "lstm_forward", x, kernel, recurrent, bias, h0,
                                  c0, mask, o, training, recurrent_mask);
        },
        py::arg("x").noconvert(), py::arg("kernel").noconvert(),
        py::arg("recurrent_kernel").noconvert(), py::arg("bias") = py::none(),
        py::arg("h0") = py::none(), py::arg("c0") = py::none(), py::arg("mask") = py::none(),
        py::arg("return_sequences") = false, py::arg("go_backwards") = false,
        py::arg("zero_output_for_mask") = false, py::arg("training") = false, py::arg("recurrent_mask") = py::none(),
        "LSTM over a sequence -> (y, h_last, c_last, cache | None).");
    m.def(
        "gru_forward",
        [](const Array<T>& x, const Array<T>& kernel, const Array<T>& recurrent,
           const py::object& bias, const py::object& h0, const py::object& mask,
           bool reset_after, bool return_sequences, bool go_backwards,
           bool zero_output_for_mask, bool training, const py::object& recurrent_mask) {
            RnnOptions o{"tanh", true, reset_after, return_sequences, go_backwards,
                         zero_output_for_mask};
            return rnn_forward<T>(RnnCell::gru, "gru_forward", x, kernel, recurrent, bias, h0,
                                  py::none(), mask, o, training, recurrent_mask);
        },
        py::arg("x").noconvert(), py::arg("kernel").noconvert(),
        py::arg("recurrent_kernel").noconvert(), py::arg("bias") = py::none(),
        py::arg("h0") = py::none(), py::arg("mask") = py::none(),
        py::arg("reset_after") = true, py::arg("return_sequences") = false,
        py::arg("go_backwards") = false, py::arg("zero_output_for_mask") = false,
        py::arg("training") = false, py::arg("recurrent_mask") = py::none(), "GRU over a sequence -> (y, h_last, None, cache | None).");
    m.def(
        "simple_rnn_backward",
        [](const Array<T>& dy, const py::object& dh, const Array<T>& x, const Array<T>& kernel,
           const Array<T>& recurrent, const py::object& mask, const Array<T>& cache,
           const std::string& activation, bool use_bias, bool return_sequences,
           bool go_backwards, bool zero_output_for_mask, const py::object& recurrent_mask,
           const py::object& gate_grads) {
            RnnOptions o{activation, use_bias, false, return_sequences, go_backwards,
                         zero_output_for_mask};
            return rnn_backward<T>(RnnCell::simple_rnn, "simple_rnn_backward", dy, dh,
                                   py::none(), x, kernel, recurrent, mask, cache, o, recurrent_mask,
                                   gate_grads);
        },
        py::arg("dy").noconvert(), py::arg("dh"), py::arg("x").noconvert(),
        py::arg("kernel").noconvert(), py::arg("recurrent_kernel").noconvert(),
        py::arg("mask"), py::arg("cache").noconvert(), py::arg("activation") = "tanh",
        py::arg("use_bias") = true, py::arg("return_sequences") = false,
        py::arg("go_backwards") = false, py::arg("zero_output_for_mask") = false, py::arg("recurrent_mask") = py::none(),
        py::arg("gate_grads") = py::none(),
        "SimpleRNN BPTT -> (dx, dkernel, drecurrent, dbias | None, dh0, None).");
    m.def(
        "lstm_backward",
        [](const Array<T>& dy, const py::object& dh, const py::object& dc, const Array<T>& x,
           const Array<T>& kernel, const Array<T>& recurrent, const py::object& mask,
           const Array<T>& cache, bool use_bias, bool return_sequences, bool go_backwards,
           bool zero_output_for_mask, const py::object& recurrent_mask,
           const py::object& gate_grads) {
            RnnOptions o{"tanh", use_bias, false, return_sequences, go_backwards,
                         zero_output_for_mask};
            return rnn_backward<T>(RnnCell::lstm, "lstm_backward", dy, dh, dc, x, kernel,
                                   recurrent, mask, cache, o, recurrent_mask, gate_grads);
        },
        py::arg("dy").noconvert(), py::arg("dh"), py::arg("dc"), py::arg("x").noconvert(),
        py::arg("kernel").noconvert(), py::arg("recurrent_kernel").noconvert(),
        py::arg("mask"), py::arg("cache").noconvert(), py::arg("use_bias") = true,
        py::arg("return_sequences") = false, py::arg("go_backwards") = false,
        py::arg("zero_output_for_mask") = false, py::arg("recurrent_mask") = py::none(),
        py::arg("gate_grads") = py::none(),
        "LSTM BPTT -> (dx, dkernel, drecurrent, dbias | None, dh0, dc0).");
    m.def(
        "gru_backward",
        [](const Array<T>& dy, const py::object& dh, const Array<T>& x, const Array<T>& kernel,
           const Array<T>& recurrent, const py::object& mask, const Array<T>& cache,
           bool use_bias, bool reset_after, bool return_sequences, bool go_backwards,
           bool zero_output_for_mask, const py::object& recurrent_mask,
           const py::object& gate_grads) {
            RnnOptions o{"tanh", use_bias, reset_after, return_sequences, go_backwards,
                         zero_output_for_mask};
            return rnn_backward<T>(RnnCell::gru, "gru_backward", dy, dh, py::none(), x, kernel,
                                   recurrent, mask, cache, o, recurrent_mask, gate_grads);
        },
        py::arg("dy").noconvert(), py::arg("dh"), py::arg("x").noconvert(),
        py::arg("kernel").noconvert(), py::arg("recurrent_kernel").noconvert(),
        py::arg("mask"), py::arg("cache").noconvert(), py::arg("use_bias") = true,
        py::arg("reset_after") = true, py::arg("return_sequences") = false,
        py::arg("go_backwards") = false, py::arg("zero_output_for_mask") = false, py::arg("recurrent_mask") = py::none(),
        py::arg("gate_grads") = py::none(),
        "GRU BPTT -> (dx, dkernel, drecurrent, dbias | None, dh0, None).");
}

}  // namespace

void bind_rnn(py::module_& m) {
    bind_rnn_t<float>(m);
    bind_rnn_t<double>(m);
}
