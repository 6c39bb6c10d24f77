"""``RandomFlip``: each image flipped with probability 1/2."""
import numpy as np

from fastdl.layers.base import check_choice
from fastdl.layers.preprocessing.base import RandomLayer
from fastdl.layers.preprocessing.resizing import check_data_format

_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


class RandomFlip(RandomLayer):
    """Flips each image left-right (``"horizontal"``), upside down (``"vertical"``) or both
    (``"horizontal_and_vertical"``: one draw per image decides both flips, as in Keras) with
    probability 1/2, in training only."""

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.mode = check_choice(mode, _MODES, "mode")
        self.data_format = check_data_format(data_format)

    def sample(self, x):
        return self._rng.random(x.shape[0]) <= 0.5

    def apply(self, x, flips):
        y = x.copy()
        axes = {"horizontal": (2,), "vertical": (1,), "horizontal_and_vertical": (1, 2)}[self.mode]
        y[flips] = np.flip(x[flips], axis=axes)
        return y

    def apply_backward(self, dy, flips):
        return self.apply(dy, flips)   # a flip is its own inverse and adjoint

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode, data_format=self.data_format)
        return config
