"""``tf.data`` for ``import fastdl as tf``: ``Dataset`` pipelines of NumPy arrays (see
:mod:`fastdl.data.dataset`), which ``fit``, ``evaluate`` and ``predict`` take as Keras does."""
from fastdl.data.dataset import (AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset,
                                 TensorSpec)


class experimental:  # noqa: N801  (tf.data.experimental's constants, where older code reads them)
    AUTOTUNE = AUTOTUNE
    INFINITE_CARDINALITY = INFINITE_CARDINALITY
    UNKNOWN_CARDINALITY = UNKNOWN_CARDINALITY

    @staticmethod
    def cardinality(dataset):
        return dataset.cardinality()


def __getattr__(name):
    from fastdl._missing import not_provided
    raise not_provided(__name__, name)


__all__ = ["AUTOTUNE", "INFINITE_CARDINALITY", "UNKNOWN_CARDINALITY", "Dataset", "TensorSpec",
           "experimental"]
