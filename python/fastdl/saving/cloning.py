"""Config-based model utilities: ``clone_model``, ``Model.to_json``, ``model_from_json`` and
``model_from_config`` (Keras's ``keras.models`` functions).

``to_json`` writes the model's description as Keras writes it (``{"module", "class_name",
"config", "registered_name"}``, Keras's dtype policies), so Keras's ``model_from_json`` reads it;
``model_from_json`` reads fastdl's and Keras's. A model made from a config has freshly
initialized weights, as in Keras.
"""
import json

from fastdl.saving import common


def to_json(model, **kwargs):
    """The model's description as JSON (``json.dumps`` keyword arguments pass through)."""
    from fastdl.saving import keras_format
    return json.dumps(keras_format.keras_description(model), **kwargs)


def model_from_config(config, custom_objects=None):
    """A model (new weights) from a description (``{"class_name", "config", ...}``)."""
    from fastdl.saving import keras_format
    if not isinstance(config, dict):
        raise TypeError(f"model_from_config expects a dict, received {type(config).__name__}")
    return common.build_model(keras_format._clean_object(config), custom_objects,
                              translate=keras_format.from_keras_entry, fresh=True)


def model_from_json(json_string, custom_objects=None):
    """A model (new weights) from :func:`to_json`'s (or Keras's ``to_json``) output. Classes
    come only from fastdl and ``custom_objects``/the registry; nothing is executed."""
    if not isinstance(json_string, (str, bytes, bytearray)):
        raise TypeError(f"model_from_json expects a JSON string, received "
                        f"{type(json_string).__name__}")
    if len(json_string) > common.MAX_CONFIG_BYTES:
        raise ValueError(f"the JSON is larger than MAX_CONFIG_BYTES = {common.MAX_CONFIG_BYTES}")
    return model_from_config(common.loads_strict(json_string, "the model JSON"), custom_objects)


def _default_clone(layer):
    from fastdl.functional import Functional
    from fastdl.models import Sequential
    if isinstance(layer, (Sequential, Functional)):
        return clone_model(layer)
    return type(layer).from_config(layer.get_config())


def clone_model(model, input_tensors=None, clone_function=None):
    """A new Sequential or functional model with the same architecture and new weights.

    ``clone_function(layer)`` makes each layer's copy (default: ``from_config(get_config())``,
    nested models cloned the same way); a layer shared by several calls is cloned once and
    stays shared. ``input_tensors``: ``keras.Input`` tensors to build the clone on (one per
    model input) instead of new ones.
    """
    from fastdl.functional import Functional, Input, KerasTensor, _flatten, _map, symbolic_op
    from fastdl.layers.base import Layer
    from fastdl.models import Model, Sequential
    if not isinstance(model, Model):
        raise TypeError(f"clone_model expects a fastdl model, received {type(model).__name__}")
    if not isinstance(model, (Sequential, Functional)):
        raise ValueError(f"clone_model clones Sequential and functional models; model "
                         f"{model.name!r} is a subclassed model ({type(model).__name__}): "
                         "create a new instance of its class instead")
    if clone_function is None:
        clone_function = _default_clone
    elif not callable(clone_function):
        raise TypeError(f"clone_function must be callable. Received: {clone_function!r}")
    clones = {}

    def clone(layer):
        new = clones.get(id(layer))
        if new is None:
            new = clone_function(layer)
            if not isinstance(new, Layer):
                raise TypeError(f"clone_function must return a fastdl layer; for layer "
                                f"{layer.name!r} it returned {type(new).__name__}")
            clones[id(layer)] = new
        return new

    given = None if input_tensors is None else _flatten(input_tensors)
    if given is not None and not all(isinstance(t, KerasTensor) for t in given):
        raise TypeError("input_tensors must be keras.Input tensors (fastdl.Input)")

    if isinstance(model, Sequential):
        layers = [clone(l) for l in model.layers]
        shape = model.input_shape
        if given is not None:
            if len(given) != 1:
                raise ValueError(f"a Sequential model has one input; input_tensors has "
                                 f"{len(given)}")
            head = [given[0]]
        else:
            head = [Input(batch_shape=shape)] if shape is not None else []
        return Sequential(head + layers, name=model.name, trainable=model.trainable)

    inputs = model._inputs_flat
    if given is not None and len(given) != len(inputs):
        raise ValueError(f"model {model.name!r} has {len(inputs)} inputs; input_tensors has "
                         f"{len(given)}")
    new = {}
    for i, t in enumerate(inputs):
        new[id(t)] = given[i] if given is not None else Input(
            batch_shape=t.shape, dtype=str(t.dtype), name=t._input_layer.name)

    def value(t):
        return new[id(t)] if isinstance(t, KerasTensor) else t

    for node in model._nodes:
        args, kwargs = _map(value, node.args), _map(value, node.kwargs)
        if node.layer is not None:
            out = clone(node.layer)(*args, **kwargs)
        else:
            out = symbolic_op(node.fn, tuple(args), node.name, kwargs, node.operator)
        for t, o in zip(node.outputs, _flatten(out)):
            new[id(t)] = o
    struct_in = _map(lambda t: new[id(t)], model._inputs_struct)
    struct_out = _map(lambda t: new[id(t)], model._outputs_struct)
    return Functional(struct_in, struct_out, name=model.name, trainable=model.trainable)
