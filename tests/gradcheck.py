"""Central-difference gradient checks in float64: the one numerical-gradient helper of the tests."""
import numpy as np

STEP = 1e-6


def numerical_gradient(f, x, step=STEP):
    """d f() / d x by central differences; f reads x (perturbed in place) and returns a float."""
    if not x.flags.c_contiguous or not x.flags.writeable:
        raise ValueError("numerical_gradient perturbs x in place: it must be a writeable "
                         "C-contiguous array")
    grad = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + step
        plus = f()
        flat[i] = old - step
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * step)
    return grad


def check_layer_gradients(layer, x, training=True, rtol=1e-4, atol=1e-6, seed=0, **call_kwargs):
    """Compare layer.backward with central differences for the input and every trainable weight.

    The scalar checked is sum(y * r) for a fixed random r, so every output element counts.
    """
    x = np.array(x, dtype=np.float64)
    y = layer(x, training=training, **call_kwargs)
    r = np.random.default_rng(seed).standard_normal(y.shape)

    def loss():
        return float(np.sum(layer(x, training=training, **call_kwargs) * r))

    layer(x, training=training, **call_kwargs)
    dx = layer.backward(r.copy())
    grads = [g.copy() for g in layer.grads]
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=rtol, atol=atol,
                               err_msg=f"{layer.name}: input gradient")
    weights = layer.trainable_weights
    assert len(grads) == len(weights), f"{layer.name}: {len(grads)} grads for {len(weights)} weights"
    for i, (w, g) in enumerate(zip(weights, grads)):
        assert g.shape == w.shape, f"{layer.name}: grad {i} shape {g.shape} != weight {w.shape}"
        np.testing.assert_allclose(g, numerical_gradient(loss, w), rtol=rtol, atol=atol,
                                   err_msg=f"{layer.name}: gradient of weight {i}")
