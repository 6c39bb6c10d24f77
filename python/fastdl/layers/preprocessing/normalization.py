"""``Normalization``: ``(x - mean) / sqrt(variance)`` per feature, the statistics given or
learned by ``adapt(data)``. As in Keras, an adapted layer keeps them as three non-trainable
weights ``mean``, ``variance`` and ``count`` (saved with the model in both formats); given
ones live in the config."""
import numpy as np

from fastdl.layers.preprocessing.base import PreprocessingLayer, batches


def _epsilon():
    from fastdl.keras.backend import epsilon
    return epsilon()


class Normalization(PreprocessingLayer):
    """Feature-wise normalization. ``axis``: the axis (or axes) that keep their own statistics
    (-1: one mean per feature of the last axis; None: a single scalar mean and variance).
    ``invert=True`` computes ``mean + x * sqrt(variance)`` instead. The divisor is
    ``max(sqrt(variance), epsilon)``, as in Keras. Differentiable (linear in x)."""

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axis = ()
        elif isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
            axis = (int(axis),)
        elif isinstance(axis, (tuple, list)) and all(
                isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axis):
            axis = tuple(int(a) for a in axis)
        else:
            raise TypeError(f"axis must be an int, a tuple of ints or None. Received: axis={axis!r}")
        self.axis = axis
        if (mean is None) != (variance is None):
            raise ValueError("When setting values directly, both `mean` and `variance` must be "
                             f"set. Received: mean={mean!r} and variance={variance!r}")
        self.input_mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.input_variance = None if variance is None else np.asarray(variance, dtype=np.float64)
        if not isinstance(invert, bool):
            raise TypeError(f"invert must be a bool. Received: invert={invert!r}")
        self.invert = invert
        self.mean = self.variance = None

    def _keep_axes(self, ndim):
        keep = tuple(sorted(a + ndim if a < 0 else a for a in self.axis))
        if any(a < 0 or a >= ndim for a in keep):
            raise ValueError(f"All `axis` values must be in the range [-ndim, ndim). Received "
                             f"inputs with ndim={ndim}, while axis={self.axis}")
        return keep

    def build(self, input_shape):
        ndim = len(input_shape)
        keep = self._keep_axes(ndim)
        for a in keep:
            if input_shape[a] is None:
                raise ValueError(f"All `axis` values to be kept must have a known shape. "
                                 f"Received axis={self.axis}, inputs.shape={input_shape}")
        self._broadcast_shape = tuple(input_shape[d] if d in keep else 1 for d in range(ndim))
        stats_shape = tuple(input_shape[a] for a in keep)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(name="mean", shape=stats_shape,
                                              initializer="zeros", trainable=False)
            self.adapt_variance = self.add_weight(name="variance", shape=stats_shape,
                                                  initializer="ones", trainable=False)
            self.count = self.add_weight(name="count", shape=(), dtype="int64",
                                         initializer="zeros", trainable=False)
        super().build(input_shape)

    def _statistics(self, dtype):
        if self.input_mean is not None:
            mean, var = self.input_mean, self.input_variance
            if mean.ndim == 0:
                return (np.full(self._broadcast_shape, mean, dtype=dtype),
                        np.full(self._broadcast_shape, var, dtype=dtype))
            else:   # align the given statistics with the kept axes, from the right
                keep = self._keep_axes(len(self._broadcast_shape))
                shape = [1] * len(self._broadcast_shape)
                for a, n in zip(keep[::-1], mean.shape[::-1]):
                    shape[a] = n
            mean, var = mean.reshape(shape), var.reshape(shape)
        else:
            mean = self.adapt_mean.reshape(self._broadcast_shape)
            var = self.adapt_variance.reshape(self._broadcast_shape)
        return mean.astype(dtype), var.astype(dtype)

    def transform(self, x):
        mean, var = self._statistics(x.dtype)
        self._scale = np.maximum(np.sqrt(var), x.dtype.type(_epsilon()))
        return mean + x * self._scale if self.invert else (x - mean) / self._scale

    def backward(self, dy):
        self.grads = []
        dx = dy * self._scale if self.invert else dy / self._scale
        return dx if dx.shape == self._input_shape_seen else \
            np.broadcast_to(dx, self._input_shape_seen).copy()

    def adapt(self, data):
        """Compute the mean and (population) variance of ``data`` per kept axis: an array, or
        an iterable of batches. Replaces earlier statistics."""
        if self.input_mean is not None:
            raise ValueError(f"Normalization layer {self.name!r} was given mean and variance; "
                             "it cannot adapt")
        total = total_sq = None
        count = 0
        for batch in batches(data, self):
            batch = self.convert_input(batch).astype(np.float64)
            if not self.built:
                self._maybe_build((None,) + batch.shape[1:])
            keep = self._keep_axes(batch.ndim)
            reduce = tuple(d for d in range(batch.ndim) if d not in keep)
            n = int(np.prod([batch.shape[d] for d in reduce]))
            s, sq = batch.sum(axis=reduce), np.square(batch).sum(axis=reduce)
            total = s if total is None else total + s
            total_sq = sq if total_sq is None else total_sq + sq
            count += n
        if not count:
            raise ValueError("Normalization.adapt received an empty array")
        mean = total / count
        variance = np.maximum(total_sq / count - np.square(mean), 0.0)
        self.adapt_mean[...] = mean
        self.adapt_variance[...] = variance
        self.count[...] = count

    def get_config(self):
        config = super().get_config()
        config.update(axis=list(self.axis), invert=self.invert,
                      mean=None if self.input_mean is None else self.input_mean.tolist(),
                      variance=None if self.input_variance is None else self.input_variance.tolist())
        return config
