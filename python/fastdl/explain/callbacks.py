"""Callbacks that explain the model while it trains."""
import os

import numpy as np

from fastdl.callbacks import Callback

__all__ = ["AttributionCallback"]

_METHODS = ("saliency", "input_gradients", "integrated_gradients", "smoothgrad", "grad_cam")


class AttributionCallback(Callback):
    """Write attribution images for fixed inputs ``x`` every ``every_n_epochs`` epochs.

    Each chosen epoch writes ``{out_dir}/{prefix}_epoch_{epoch:04d}.png`` (epochs counted from 1)
    with :func:`fastdl.plot.attributions`, and appends the path to ``self.paths``. Explaining
    never changes the model (weights, optimizer state, BatchNormalization statistics and
    ``layer.grads`` are left as training had them), so the training run is the same with or
    without this callback.

    Args:
        x: the inputs to explain (a few samples).
        target: class index(es) or None (each sample's top class at that epoch).
        method: ``"saliency"``, ``"input_gradients"``, ``"integrated_gradients"``,
            ``"smoothgrad"`` or ``"grad_cam"``.
        method_kwargs: extra arguments for the method (e.g. ``{"steps": 20}``).
        feature_names: for tabular inputs (bar charts).
    """

    def __init__(self, x, target=None, every_n_epochs=1, out_dir="attributions",
                 method="saliency", method_kwargs=None, feature_names=None, prefix=None):
        super().__init__()
        if method not in _METHODS:
            raise ValueError(f"AttributionCallback: method must be one of {list(_METHODS)}. "
                             f"Received: method={method!r}")
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, (int, np.integer)):
            raise TypeError("AttributionCallback: every_n_epochs must be an int. "
                            f"Received: every_n_epochs={every_n_epochs!r}")
        if every_n_epochs < 1:
            raise ValueError("AttributionCallback: every_n_epochs must be >= 1. "
                             f"Received: every_n_epochs={every_n_epochs!r}")
        if not isinstance(out_dir, (str, os.PathLike)):
            raise TypeError("AttributionCallback: out_dir must be a path. "
                            f"Received: {type(out_dir).__name__}")
        if method_kwargs is not None and not isinstance(method_kwargs, dict):
            raise TypeError("AttributionCallback: method_kwargs must be a dict. "
                            f"Received: {type(method_kwargs).__name__}")
        try:  # fail before training, not at the end of the first epoch
            import matplotlib  # noqa: F401
        except ImportError as e:
            from fastdl.plot import _INSTALL_HINT
            raise ImportError("AttributionCallback writes PNG files; " + _INSTALL_HINT) from e
        self.x = x
        self.target = target
        self.every_n_epochs = int(every_n_epochs)
        self.out_dir = os.fspath(out_dir)
        self.method = method
        self.method_kwargs = dict(method_kwargs or {})
        self.feature_names = feature_names
        self.prefix = prefix or method
        self.paths = []

    def explain(self):
        """The attributions of ``x`` under the current weights."""
        from fastdl import explain
        fn = getattr(explain, self.method)
        return fn(self.model, self.x, target=self.target, **self.method_kwargs)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        from fastdl import plot
        attr = self.explain()
        os.makedirs(self.out_dir, exist_ok=True)
        path = os.path.join(self.out_dir, f"{self.prefix}_epoch_{epoch + 1:04d}.png")
        plot.attributions(np.asarray(self.x), {f"{self.method}, epoch {epoch + 1}": attr},
                          feature_names=self.feature_names, path=path)
        self.paths.append(path)
