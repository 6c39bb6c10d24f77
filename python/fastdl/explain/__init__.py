"""Explain fastdl models: which inputs drive a prediction.

Gradient methods run the layers' own backward passes after an inference forward (no weight,
optimizer state, BatchNormalization moving statistic or ``layer.grads`` changes):

- :func:`input_gradients` - d output[target] / d input, batched;
- :func:`saliency` - its absolute value (Simonyan et al. 2013);
- :func:`integrated_gradients` - path integral from a baseline, with the completeness residual
  (Sundararajan et al. 2017);
- :func:`smoothgrad` - gradients averaged over noisy copies (Smilkov et al. 2017);
- :func:`grad_cam` - class activation maps at a convolutional layer (Selvaraju et al. 2017).

Perturbation methods need no gradients: :func:`occlusion` (Zeiler & Fergus 2014) and
:func:`permutation_importance` for tabular features. :func:`layer_outputs` returns activations
for visualisation, and :class:`fastdl.explain.callbacks.AttributionCallback` writes attribution
images during ``fit``. Plots are in :mod:`fastdl.plot` (needs ``pip install "fastdl[plot]"``).

The integer-id input of an ``Embedding`` has no gradient: gradient methods on such a model raise
``ValueError`` (occlusion, permutation importance and layer outputs still work).
"""
from fastdl.explain.attributions import (grad_cam, input_gradients, integrated_gradients,
                                         layer_outputs, occlusion, saliency, smoothgrad)
from fastdl.explain.importance import PermutationImportance, permutation_importance

__all__ = ["input_gradients", "saliency", "integrated_gradients", "smoothgrad", "occlusion",
           "grad_cam", "layer_outputs", "permutation_importance", "PermutationImportance",
           "callbacks"]


def __getattr__(name):
    if name == "callbacks":
        import importlib
        return importlib.import_module("fastdl.explain.callbacks")
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)
