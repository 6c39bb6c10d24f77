"""Every test starts from the same random state, so a test's outcome never depends on the tests
that ran before it or on luck: weights drawn without a seed, dropout masks and shuffles are
fixed per test (fastdl's generator, NumPy's global one and Python's ``random``)."""
import pytest


@pytest.fixture(autouse=True)
def _seeded():
    from fastdl.utils import set_random_seed
    set_random_seed(20261203)
    yield
