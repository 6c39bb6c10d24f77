"""The Keras and TensorFlow names fastdl does not provide (yet), and the error that says so.

Each fastdl namespace module ends its ``__getattr__`` with ``raise not_provided(__name__, name)``,
so ``tf.keras.layers.Conv3D`` says that fastdl lacks ``keras.layers.Conv3D`` (and what to use
instead) rather than a bare "has no attribute". ``MISSING`` lists, per namespace, the public names
of Keras 3 (generated from ``dir()`` of Keras 3.15's modules, then reviewed) and the TensorFlow
names tutorials use most; any other unknown public name gets the same message with "(yet)".
Names starting with ``_`` keep Python's plain AttributeError: ``hasattr``, ``copy``, ``pickle``
and doctest probe those.
"""
import difflib
import importlib.util
import opcode
import sys

# fastdl module -> the Keras/TensorFlow namespace it stands for (``import fastdl as tf``)
NAMESPACES = {
    "fastdl": "tf",
    "fastdl.keras": "keras",
    "fastdl.layers": "keras.layers",
    "fastdl.losses": "keras.losses",
    "fastdl.metrics": "keras.metrics",
    "fastdl.optimizers": "keras.optimizers",
    "fastdl.optimizers.schedules": "keras.optimizers.schedules",
    "fastdl.callbacks": "keras.callbacks",
    "fastdl.datasets": "keras.datasets",
    "fastdl.utils": "keras.utils",
    "fastdl.models": "keras.models",
    "fastdl.initializers": "keras.initializers",
    "fastdl.regularizers": "keras.regularizers",
    "fastdl.constraints": "keras.constraints",
    "fastdl.activations": "keras.activations",
    "fastdl.keras.preprocessing": "keras.preprocessing",
    "fastdl.keras.preprocessing.sequence": "keras.preprocessing.sequence",
    "fastdl.keras.preprocessing.image": "keras.preprocessing.image",
    "fastdl.saving": "keras.saving",
    "fastdl.ops": "keras.ops",
    "fastdl.math": "tf.math",
    "fastdl.linalg": "tf.linalg",
    "fastdl.image": "tf.image",
    "fastdl.nn": "tf.nn",
    "fastdl.random": "tf.random",
    "fastdl.keras.backend": "keras.backend",
    "fastdl.keras.config": "keras.config",
    "fastdl.data": "tf.data",
}

MISSING = {namespace: frozenset(names.split()) for namespace, names in {
    # TensorFlow's own names (not Keras) that Keras tutorials use.
    "tf": """
        SparseTensor RaggedTensor device bfloat16 string dtypes signal io strings sparse ragged
        config test train summary saved_model lite distribute estimator compat debugging
        autograph feature_column audio bitwise experimental errors nest types sysconfig
    """,
    "keras": """
        DTypePolicy FloatDTypePolicy Function Operation Quantizer Regularizer RematScope
        StatelessScope SymbolicScope applications device distillation distribution
        dtype_policies export legacy mixed_precision name_scope quantizers remat tree version
        visualization wrappers
    """,
    "keras.layers": """
        AdaptiveAveragePooling1D AdaptiveAveragePooling2D
        AdaptiveAveragePooling3D AdaptiveMaxPooling1D AdaptiveMaxPooling2D AdaptiveMaxPooling3D
        AugMix AutoContrast AveragePooling3D AvgPool3D
        ContrastLimitedAdaptiveHistogramEqualization Conv3D Conv3DTranspose
        ConvLSTM3D Convolution3D Convolution3DTranspose Cropping3D CutMix
        EinsumDense Equalization FlaxLayer GlobalAveragePooling3D GlobalAvgPool3D
        GlobalMaxPool3D GlobalMaxPooling3D GroupQueryAttention JaxLayer
        MaxNumBoundingBoxes MaxPool3D MaxPooling3D MelSpectrogram MixUp
        RMSNormalization RandAugment RandomColorDegeneration RandomColorJitter
        RandomElasticTransform RandomErasing RandomGaussianBlur RandomGrayscale RandomHue
        RandomInvert RandomPerspective RandomPosterization RandomSaturation RandomSharpness
        RandomShear ReversibleEmbedding STFTSpectrogram Solarization SpatialDropout3D
        SpectralNormalization TFSMLayer TorchModuleWrapper UpSampling3D Wrapper ZeroPadding3D
        deserialize serialize
    """,
    "keras.losses": """
        CTC CategoricalGeneralizedCrossEntropy Circle categorical_generalized_cross_entropy
        circle ctc
    """,
    "keras.optimizers": """
        Adafactor MultiOptimizer Muon OptimizerMap ScheduleFreeAdamW
        legacy
    """,
    "keras.callbacks": "OrbaxCheckpoint",
    "keras.utils": """
        Config FeatureSpace
        audio_dataset_from_directory bounding_boxes
        disable_interactive_logging enable_interactive_logging
        is_interactive_logging_enabled legacy
    """,
    "keras.initializers": "STFT STFTInitializer stft",
    "keras.saving": "KerasFileEditor",
}.items()}

# Attributes of Keras 3's Layer and Model (not the torch backend's Module names) that fastdl's
# layers and models lack; ``Layer.__getattr__`` answers them through ``missing_attribute``.
LAYER_ATTRIBUTES = frozenset("""
    add_metric build_from_config get_build_config dtype_policy compute_output_spec
    stateless_call symbolic_call quantize quantized_build quantized_call quantization_mode
    save_own_variables load_own_variables metrics_variables rematerialized_call
""".split())
MODEL_ATTRIBUTES = frozenset("""
    make_train_function make_test_function make_predict_function get_compile_config
    compile_from_config export
    get_state_tree set_state_tree stateless_compute_loss steps_per_execution
    distribute_strategy
""".split())
ATTRIBUTE_ALTERNATIVES = {
    **{name: "fit, evaluate and predict call train_step, test_step and predict_step: "
             "override those" for name in ("make_train_function", "make_test_function",
                                           "make_predict_function")},
    "export": "model.save('m.keras') writes Keras 3's format",
}


class MissingAttribute(AttributeError):
    """An AttributeError whose message is composed only when shown: ``hasattr`` on a hot path
    pays for the exception object alone, not for ``dir()`` and the close-name search."""

    def __init__(self, obj, name):
        super().__init__(name)
        self.name, self.obj = name, obj

    def __str__(self):
        from fastdl.models import Model
        obj, name = self.obj, self.name
        message = f"{type(obj).__name__!r} object has no attribute {name!r}"
        if name in LAYER_ATTRIBUTES or (isinstance(obj, Model) and name in MODEL_ATTRIBUTES):
            owner = "keras.Model" if name in MODEL_ATTRIBUTES else "keras.layers.Layer"
            message += f": fastdl does not provide {owner}.{name} yet"
            if name in ATTRIBUTE_ALTERNATIVES:
                message += "; " + ATTRIBUTE_ALTERNATIVES[name]
        else:
            close = difflib.get_close_matches(
                name, [n for n in dir(obj) if not n.startswith("_")], n=3)
            if close:
                message += "; did you mean " + " or ".join(repr(c) for c in close) + "?"
        return message


# Full name -> what to use instead, where fastdl has something.
ALTERNATIVES = {
    # TensorFlow
    "tf.config": "fastdl.set_num_threads(n) sets the CPU threads; fastdl has no GPU support",
    "tf.device": "fastdl runs on the CPU only",
    "tf.distribute": "fastdl runs on one machine's CPU cores (fastdl.set_num_threads)",
    "tf.saved_model": "model.save('model.keras') writes Keras 3's format",
    "tf.lite": "model.save('model.keras') writes Keras 3's format",
    "tf.summary": "keras.callbacks.CSVLogger writes the per-epoch logs",
    "tf.string": "fastdl takes numeric arrays only",
    # keras
    "keras.mixed_precision": "fastdl computes in float32 (or float64 with dtype='float64')",
    "keras.version": "fastdl.__version__",
    # keras.layers
    "keras.layers.RMSNormalization": ("BatchNormalization, LayerNormalization, "
                                      "GroupNormalization and UnitNormalization are available"),
    "keras.layers.SpatialDropout3D": "SpatialDropout1D and SpatialDropout2D are available",
    # keras.optimizers
    **{f"keras.optimizers.{n}": ("SGD, Adam, AdamW, Nadam, Adamax, RMSprop, Adagrad, "
                                 "Adadelta, Ftrl, Lion and Lamb are available")
       for n in "Adafactor Muon".split()},
    "keras.optimizers.legacy": "keras.optimizers.SGD/Adam/RMSprop/Adagrad take the same arguments",
}


def not_provided(module, name):
    """The error for ``module.name`` that fastdl lacks: call it from the module's ``__getattr__``.

    An AttributeError (so ``hasattr`` and ``getattr(m, name, default)`` keep working), except
    under ``from module import name``: Python would replace an AttributeError there with a bare
    "cannot import name", so that statement gets an ImportError carrying the message itself.
    """
    if name.startswith("_"):
        return AttributeError(f"module {module!r} has no attribute {name!r}")
    namespace = NAMESPACES.get(module)
    known = name in MISSING.get(namespace, ())
    details = []
    if not known and _is_submodule(module, name):  # e.g. fastdl.saving.native, not imported yet
        details.append(f"{module}.{name} is a submodule: import {module}.{name}")
    else:
        if namespace is not None:
            full = f"{namespace}.{name}"
            what = f"TensorFlow's {full}" if namespace == "tf" else full
            details.append(f"fastdl does not provide {what} " + ("yet" if known else "(yet)"))
            if full in ALTERNATIVES:
                details.append(ALTERNATIVES[full])
        if not known:  # perhaps a typo of a name fastdl has
            provided = [n for n in dir(sys.modules[module]) if not n.startswith("_")]
            close = difflib.get_close_matches(name, provided, n=3)
            if close:
                details.append("did you mean " + " or ".join(repr(c) for c in close) + "?")
    detail = ": " + "; ".join(details) if details else ""
    # The caller of the module's __getattr__; an import statement executes IMPORT_FROM there.
    frame = sys._getframe(1).f_back
    if frame is not None and frame.f_code.co_code[frame.f_lasti] == opcode.opmap["IMPORT_FROM"]:
        return ImportError(f"cannot import name {name!r} from {module!r}{detail}", name=module)
    return AttributeError(f"module {module!r} has no attribute {name!r}{detail}")


def _is_submodule(module, name):
    return (name.isidentifier() and hasattr(sys.modules[module], "__path__")
            and importlib.util.find_spec(f"{module}.{name}") is not None)
