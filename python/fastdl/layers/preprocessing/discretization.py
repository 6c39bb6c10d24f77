"""``Discretization``: numbers to bucket ids by boundaries, given or learned as quantiles.

``adapt`` follows Keras's approximate quantile sketch, so the learned boundaries are Keras's:
each batch is summarised by every ``step``-th sorted value (step = max(n * epsilon, 1)), each
weighing ``step``; summaries merge by sorting and are compressed to the 1/epsilon quantiles of
their cumulative weight (linear interpolation); the boundaries are the k/num_bins quantiles of
the final summary (k = 1 .. num_bins - 1). For up to 1/epsilon values (100 by default) they
are the exact interpolated quantiles of the data.
"""
import numpy as np

from fastdl.layers.base import check_choice, check_positive_int
from fastdl.layers.preprocessing.base import (PreprocessingLayer, array_input, batches,
                                              check_output_dtype, is_text)
from fastdl.layers.preprocessing.category_encoding import ENCODINGS, encode, encoded_shape


def _summarize(values, epsilon):
    values = np.sort(values.ravel())
    step = max(values.size * epsilon, 1)
    points = values[int(step - 1)::int(step)]
    return np.stack([points, np.full(points.shape, step, dtype=np.float32)])


def _compress(summary, epsilon):
    """The summary re-sampled at cumulative-weight fractions epsilon, 2 epsilon, ..., 1."""
    if summary.shape[1] * epsilon < 1:
        return summary
    fractions = epsilon + np.arange(0.0, 1.0, epsilon)
    cum = summary[1].cumsum()
    points = np.interp(fractions, cum / cum[-1], summary[0])
    cum_at = np.interp(fractions, cum / cum[-1], cum)
    return np.stack([points, np.diff(cum_at, prepend=0.0)]).astype(np.float32)


class Discretization(PreprocessingLayer):
    """Bucket ids by ``bin_boundaries`` (id i for boundaries[i-1] <= x < boundaries[i]), or by
    ``num_bins`` quantile boundaries learned with ``adapt``. ``output_mode``: ``"int"`` (int64
    ids), ``"one_hot"``, ``"multi_hot"``, ``"count"`` (float32 vectors of num_bins)."""

    def __init__(self, bin_boundaries=None, num_bins=None, epsilon=0.01, output_mode="int",
                 sparse=False, dtype=None, **kwargs):
        super().__init__(**kwargs)
        if (bin_boundaries is None) == (num_bins is None):
            raise ValueError("Exactly one of `num_bins` or `bin_boundaries` should be set. "
                             f"Received: num_bins={num_bins!r} and "
                             f"bin_boundaries={bin_boundaries!r}")
        if bin_boundaries is not None:
            b = np.asarray(bin_boundaries, dtype=np.float64)
            if b.ndim != 1 or np.any(np.diff(b) < 0) or not np.all(np.isfinite(b)):
                raise ValueError("bin_boundaries must be a sorted list of finite numbers. "
                                 f"Received: bin_boundaries={bin_boundaries!r}")
            bin_boundaries = b.tolist()
        if num_bins is not None:
            num_bins = check_positive_int(num_bins, "num_bins")
        if not 0 < epsilon < 1:
            raise ValueError(f"epsilon must be in (0, 1). Received: epsilon={epsilon!r}")
        self.bin_boundaries, self.num_bins, self.epsilon = bin_boundaries, num_bins, epsilon
        self.output_mode = check_choice(output_mode, ("int",) + ENCODINGS, "output_mode")
        if sparse:
            raise ValueError("fastdl has no sparse tensors. Received: sparse=True")
        self.output_dtype = check_output_dtype(
            dtype, "int64" if self.output_mode == "int" else "float32",
            ("int32", "int64", "float32", "float64"))
        self._summary = None

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("bin_boundaries") is not None and config.get("num_bins") is not None:
            boundaries = config.pop("bin_boundaries")   # an adapted layer (as Keras saves it)
            layer = cls(**config)
            layer.bin_boundaries = Discretization(bin_boundaries=boundaries).bin_boundaries
            return layer
        return cls(**config)

    def convert_input(self, x):
        a = array_input(x, self)
        if is_text(a) or a.dtype.kind not in "biuf":
            raise TypeError(f"Discretization layer {self.name!r} expects numbers, received an "
                            f"array of dtype {a.dtype}")
        return a

    def adapt(self, data, steps=None):
        """Learn ``num_bins`` quantile boundaries from ``data`` (an array or batches)."""
        if self.num_bins is None:
            raise ValueError("Cannot adapt a Discretization layer that has been initialized "
                             "with `bin_boundaries`, use `num_bins` instead.")
        summary = np.zeros((2, 0), dtype=np.float32)
        for i, batch in enumerate(batches(data, self)):
            if steps is not None and i >= steps:
                break
            values = self.convert_input(batch).astype(np.float32)
            merged = np.concatenate([_summarize(values, self.epsilon), summary], axis=1)
            summary = _compress(merged[:, np.argsort(merged[0], kind="stable")], self.epsilon)
        if summary.shape[1] == 0:
            raise ValueError("Discretization.adapt received no data")
        self.bin_boundaries = _compress(summary, 1.0 / self.num_bins)[0, :-1].tolist()

    def transform(self, x):
        if self.bin_boundaries is None:
            raise ValueError("You need to either pass the `bin_boundaries` argument at "
                             "construction time or call `adapt(dataset)` before you can start "
                             "using the `Discretization` layer.")
        ids = np.digitize(x, np.asarray(self.bin_boundaries, dtype=x.dtype if x.dtype.kind == "f"
                                        else np.float64))
        if self.output_mode == "int":
            return ids.astype(self.output_dtype)
        return encode(ids, self.output_mode, len(self.bin_boundaries) + 1, self.output_dtype)

    def compute_output_shape(self, input_shape):
        if self.output_mode == "int":
            return tuple(input_shape)
        depth = len(self.bin_boundaries) + 1 if self.bin_boundaries is not None else \
            self.num_bins
        return encoded_shape(input_shape, self.output_mode, depth)

    def get_config(self):
        config = super().get_config()
        config.pop("trainable")    # Keras's Discretization takes no `trainable`
        config.update(bin_boundaries=self.bin_boundaries, num_bins=self.num_bins,
                      epsilon=self.epsilon, output_mode=self.output_mode, sparse=False,
                      dtype=self.output_dtype)
        return config
