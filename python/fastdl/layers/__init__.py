"""Keras-compatible layers. Families load on first use to keep ``import fastdl`` fast."""
import importlib

from fastdl.layers.base import Input, InputLayer, InputSpec, Layer

_FAMILIES = {
    "fastdl.layers.core": ("Dense", "Activation", "Flatten", "Dropout"),
    "fastdl.layers.convolutional": ("Conv1D", "Conv2D", "Convolution1D", "Convolution2D",
                                    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
                                    "SeparableConv2D", "SeparableConvolution1D",
                                    "SeparableConvolution2D"),
    "fastdl.layers.conv_transpose": ("Conv1DTranspose", "Conv2DTranspose",
                                     "Convolution1DTranspose", "Convolution2DTranspose"),
    "fastdl.layers.pooling": ("MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D",
                              "GlobalMaxPooling1D", "MaxPool1D", "AvgPool1D",
                              "GlobalAvgPool1D", "GlobalMaxPool1D",
                              "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
                              "GlobalMaxPooling2D", "MaxPool2D", "AvgPool2D",
                              "GlobalAvgPool2D", "GlobalMaxPool2D"),
    "fastdl.layers.normalization": ("BatchNormalization", "LayerNormalization",
                                    "UnitNormalization", "GroupNormalization"),
    "fastdl.layers.reshaping": ("ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D",
                                "UpSampling1D", "UpSampling2D", "RepeatVector", "Reshape"),
    "fastdl.layers.activation": ("ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax"),
    "fastdl.layers.embedding": ("Embedding",),
    "fastdl.layers.sequence": ("TimeDistributed", "Masking"),
    "fastdl.layers.pipeline": ("Pipeline",),
    "fastdl.layers.rnn_cells": ("SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells", "RNN"),
    "fastdl.layers.recurrent": ("SimpleRNN", "LSTM", "GRU", "Bidirectional"),
    "fastdl.layers.conv_lstm": ("ConvLSTM1D", "ConvLSTM2D"),
    "fastdl.layers.merging": ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
                              "Concatenate", "Dot", "add", "subtract", "multiply", "average",
                              "maximum", "minimum", "concatenate", "dot"),
    "fastdl.layers.lambda_layer": ("Lambda",),
    "fastdl.layers.noise": ("GaussianNoise", "GaussianDropout", "AlphaDropout",
                            "SpatialDropout1D", "SpatialDropout2D", "ActivityRegularization",
                            "Permute", "Identity"),
    "fastdl.layers.attention": ("MultiHeadAttention", "Attention", "AdditiveAttention"),
    "fastdl.layers.preprocessing.rescaling": ("Rescaling",),
    "fastdl.layers.preprocessing.normalization": ("Normalization",),
    "fastdl.layers.preprocessing.resizing": ("Resizing",),
    "fastdl.layers.preprocessing.center_crop": ("CenterCrop",),
    "fastdl.layers.preprocessing.text_vectorization": ("TextVectorization",),
    "fastdl.layers.preprocessing.index_lookup": ("StringLookup", "IntegerLookup"),
    "fastdl.layers.preprocessing.category_encoding": ("CategoryEncoding",),
    "fastdl.layers.preprocessing.discretization": ("Discretization",),
    "fastdl.layers.preprocessing.hashing": ("Hashing",),
    "fastdl.layers.preprocessing.hashed_crossing": ("HashedCrossing",),
    "fastdl.layers.preprocessing.random_flip": ("RandomFlip",),
    "fastdl.layers.preprocessing.affine": ("RandomRotation", "RandomZoom", "RandomTranslation"),
    "fastdl.layers.preprocessing.color": ("RandomContrast", "RandomBrightness"),
    "fastdl.layers.preprocessing.random_crop": ("RandomCrop",),
}
_WHERE = {name: module for module, names in _FAMILIES.items() for name in names}


def __getattr__(name):
    module = _WHERE.get(name)
    if module is None:
        from fastdl._missing import not_provided
        raise not_provided(__name__, name)
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(set(_WHERE) | {"Input", "InputLayer", "InputSpec", "Layer"})


def get_layer_class(class_name):
    """The registered layer class called ``class_name`` (used by model loading), or None."""
    if class_name in ("InputLayer",):
        return InputLayer
    module = _WHERE.get(class_name)
    if module is None:
        return None
    try:
        return getattr(importlib.import_module(module), class_name)
    except (ImportError, AttributeError):
        return None
