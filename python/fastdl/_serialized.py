"""Keras's serialized form of small configurable objects (regularizers, constraints): one
``serialize``/``deserialize``/``get`` shared by the modules that define them."""


class Family:
    """The objects of one Keras module (``keras.regularizers``...): ``base`` is their class,
    ``by_name`` maps class names and Keras's aliases to classes, ``hint`` ends the error for an
    identifier that is none of them (say why a plain function does not do)."""

    def __init__(self, kind, module, base, by_name, hint):
        self.kind, self.module, self.base = kind, module, base
        self.by_name, self.hint = by_name, hint

    def serialize(self, obj):
        """``{"module": ..., "class_name": ..., "config": ..., "registered_name": None}``;
        None stays None."""
        if obj is None:
            return None
        if not isinstance(obj, self.base):
            raise TypeError(f"Cannot serialize the {self.kind} {obj!r}: not a fastdl "
                            f"{self.base.__name__}")
        return {"module": self.module, "class_name": type(obj).__name__,
                "config": obj.get_config(), "registered_name": None}

    def deserialize(self, config, custom_objects=None):
        if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
            raise ValueError(f"Could not interpret {self.kind} config: {config!r}")
        name = config["class_name"]
        cls = (custom_objects or {}).get(name) or self.by_name.get(name)
        if cls is None:
            raise ValueError(f"Unknown {self.kind}: {name!r}. fastdl has "
                             f"{', '.join(sorted(n for n in self.by_name if n[0].isupper()))}")
        inner = config.get("config") or {}
        if not isinstance(inner, dict):
            raise ValueError(f"Could not interpret {self.kind} config: {config!r}")
        try:
            return cls.from_config(inner)
        except TypeError as e:
            raise ValueError(f"Could not interpret {self.kind} config {config!r}: {e}") from None

    def get(self, identifier):
        """None, an instance, a class, its name or alias, or its serialized dict -> an
        instance (or None)."""
        if identifier is None:
            return None
        if isinstance(identifier, dict):
            return self.deserialize(identifier)
        if isinstance(identifier, str):
            cls = self.by_name.get(identifier)
            if cls is None:
                raise ValueError(f"Could not interpret {self.kind} identifier: {identifier!r}. "
                                 f"Known names: {sorted(self.by_name)}")
            return cls()
        if isinstance(identifier, type) and issubclass(identifier, self.base):
            return identifier()
        if isinstance(identifier, self.base):
            return identifier
        raise ValueError(f"Could not interpret {self.kind} identifier: {identifier!r}. "
                         f"{self.hint}")
