import math

import numpy as np
import pytest

from fastdl import initializers
from fastdl.utils import set_random_seed


@pytest.mark.parametrize("name,shape,bound", [
    ("glorot_uniform", (300, 200), math.sqrt(6 / 500)),
    ("he_uniform", (300, 200), math.sqrt(6 / 300)),
    ("lecun_uniform", (300, 200), math.sqrt(3 / 300)),
    ("glorot_uniform", (3, 3, 16, 32), math.sqrt(6 / (9 * 16 + 9 * 32))),
])
def test_uniform_variance_scaling_bounds(name, shape, bound):
    w = initializers.get(name)(shape)
    assert w.dtype == np.float32 and w.shape == shape
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.95 * bound  # fills the range
    np.testing.assert_allclose(w.std(), bound / math.sqrt(3), rtol=0.05)


@pytest.mark.parametrize("name,fan_scale", [("glorot_normal", 2 / 500), ("he_normal", 2 / 300),
                                            ("lecun_normal", 1 / 300)])
def test_truncated_normal_variance_scaling_keeps_the_variance(name, fan_scale):
    w = initializers.get(name)((300, 200), dtype="float64")
    assert w.dtype == np.float64
    np.testing.assert_allclose(w.var(), fan_scale, rtol=0.05)
    assert np.abs(w).max() <= 2 * math.sqrt(fan_scale) / 0.87962566103423978 + 1e-12


def test_orthogonal_is_orthogonal():
    for shape in [(64, 64), (32, 128), (128, 32), (3, 4, 8)]:
        w = initializers.Orthogonal(gain=1.0)(shape, dtype="float64").reshape(-1, shape[-1])
        small = min(w.shape)
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        np.testing.assert_allclose(gram, np.eye(small), atol=1e-10)


def test_constant_zeros_ones_and_random_defaults():
    assert np.all(initializers.get("zeros")((2, 3)) == 0)
    assert np.all(initializers.get("ones")((2,)) == 1)
    assert np.all(initializers.Constant(0.5)((4,)) == 0.5)
    u = initializers.get("uniform")((1000,))
    assert -0.05 <= u.min() and u.max() <= 0.05
    n = initializers.get("random_normal")((20000,), dtype="float64")
    np.testing.assert_allclose(n.std(), 0.05, rtol=0.05)
    t = initializers.get("truncated_normal")((20000,), dtype="float64")
    assert np.abs(t).max() <= 0.1


def test_seeding_makes_initializers_reproducible():
    set_random_seed(3)
    a = initializers.get("glorot_uniform")((5, 5))
    set_random_seed(3)
    b = initializers.get("glorot_uniform")((5, 5))
    np.testing.assert_array_equal(a, b)
    c = initializers.GlorotUniform(seed=7)((5, 5))
    d = initializers.GlorotUniform(seed=7)((5, 5))
    np.testing.assert_array_equal(c, d)


def test_serialize_round_trip():
    for name in sorted(initializers.ALIASES):
        init = initializers.get(name)
        back = initializers.deserialize(initializers.serialize(init))
        assert type(back) is type(init) and back.get_config() == init.get_config()


def test_bad_identifiers_list_valid_names():
    with pytest.raises(ValueError, match="Unknown initializer 'glorot'.*glorot_uniform"):
        initializers.get("glorot")
    with pytest.raises(TypeError, match="Could not interpret initializer"):
        initializers.get(3)
    with pytest.raises(ValueError, match="Unknown initializer class"):
        initializers.deserialize({"class_name": "os.system", "config": {}})
    with pytest.raises(ValueError, match="stddev must be > 0"):
        initializers.RandomNormal(stddev=0)
    with pytest.raises(TypeError, match="seed must be an int"):
        initializers.GlorotUniform(seed=True)
