"""``Tensor`` (an immutable NumPy value the tape can track) and ``Variable`` (a trainable weight).

A Tensor wraps one NumPy array (or NumPy scalar, for 0-d results) in ``_value``; it never
copies on the way in or out. Arithmetic operators, ``[]`` and NumPy ufuncs on Tensors are the
differentiable ops of ``fastdl.ops`` (bound by that package when it loads, through
``OPERATORS``, ``UFUNCS`` and ``ARRAY_FUNCTIONS`` below).

A Variable is a Tensor whose array is updated in place by ``assign*`` and by the optimizers
(their fused C++ updates write into the array), so an optimizer's slots, keyed by the array,
stay the same across steps.
"""
import numpy as np

# Filled by fastdl.ops at import: name -> op (operators), ufunc -> op, NumPy function -> op.
OPERATORS = {}
UFUNCS = {}
ARRAY_FUNCTIONS = {}
# Set by fastdl.tensor.tape: is x tracked by a recording tape?
_is_tracked = None


class DType(str):
    """A dtype name (``"float32"``) that also compares equal to NumPy dtypes.

    ``x.dtype == "float32"``, ``x.dtype == fastdl.float32`` and ``x.dtype == np.float32`` all
    hold; ``np.dtype(x.dtype)`` works because a DType is a str.
    """
    __slots__ = ()

    def __eq__(self, other):
        if other is None:  # np.dtype(None) would be float64
            return False
        if isinstance(other, str):
            return str.__eq__(self, other) or str.__eq__(self, _dtype_name(other))
        try:
            return str.__eq__(self, np.dtype(other).name)
        except TypeError:
            return False

    def __ne__(self, other):
        return not self.__eq__(other)

    __hash__ = str.__hash__

    @property
    def name(self):
        return str(self)

    @property
    def as_numpy_dtype(self):
        return np.dtype(str(self)).type

    @property
    def is_floating(self):
        return str(self) != "string" and np.issubdtype(np.dtype(str(self)), np.floating)

    @property
    def is_integer(self):
        return str(self) != "string" and np.issubdtype(np.dtype(str(self)), np.integer)

    @property
    def is_bool(self):
        return str(self) == "bool"

    def __repr__(self):
        return f"fastdl.{self}"


def _dtype_name(d):
    try:
        return np.dtype(d).name
    except TypeError:
        return None


_DTYPES = {}


def as_dtype(dtype):
    """The DType of a dtype-like (``"float32"``, ``np.float32``, ``np.dtype``, a DType)."""
    try:
        return _DTYPES[dtype]
    except (KeyError, TypeError):
        pass
    try:
        # Keras's "string" (text inputs of TextVectorization/StringLookup) has no NumPy name
        name = "string" if dtype == "string" else np.dtype(dtype).name
    except TypeError:
        raise TypeError(f"Invalid dtype: {dtype!r}") from None
    d = _DTYPES.get(name)
    if d is None:
        d = _DTYPES[name] = DType(name)
    try:
        _DTYPES[dtype] = d
    except TypeError:
        pass
    return d


def _op(name):
    def method(self, *args):
        return OPERATORS[name](self, *args)
    method.__name__ = name
    return method


class Tensor:
    """An immutable value: a NumPy array plus identity for the tape.

    ``numpy()`` returns the array itself (no copy): treat it as read-only.
    """
    __slots__ = ("_value",)
    __array_priority__ = 1000  # ndarray <op> Tensor defers to the Tensor

    def __init__(self, value):
        self._value = value

    @property
    def shape(self):
        return self._value.shape

    @property
    def dtype(self):
        return as_dtype(self._value.dtype)

    @property
    def ndim(self):
        return self._value.ndim

    @property
    def size(self):
        return self._value.size

    def get_shape(self):
        """TensorFlow's name for ``shape``."""
        return self.shape

    def set_shape(self, shape):
        """TensorFlow's static-shape refinement: a fastdl Tensor's shape is always known, so this
        checks that ``shape`` (None for an unknown dim or rank) is compatible with it and raises
        ValueError otherwise, as TensorFlow does in eager mode."""
        if shape is None:
            return
        dims = list(shape)
        if len(dims) != self.ndim or any(d is not None and d != s
                                         for d, s in zip(dims, self.shape)):
            raise ValueError(f"Tensor's shape {self.shape} is not compatible with supplied "
                             f"shape {tuple(dims)}")

    def numpy(self):
        return self._value

    def __array__(self, dtype=None, copy=None):
        a = np.asarray(self._value)
        if dtype is not None and a.dtype != dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        op = UFUNCS.get(ufunc) if method == "__call__" and not kwargs else None
        if op is not None:
            return op(*inputs)
        return _numpy_fallback(f"numpy.{ufunc.__name__}", inputs, kwargs,
                               lambda i, k: getattr(ufunc, method)(*i, **k))

    def __array_function__(self, func, types, args, kwargs):
        op = ARRAY_FUNCTIONS.get(func)
        if op is not None:
            return op(*args, **kwargs)
        return _numpy_fallback(f"numpy.{func.__name__}", args, kwargs,
                               lambda a, k: func(*a, **k))

    def __len__(self):
        if self._value.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._value.shape[0]

    def __iter__(self):
        if self._value.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        getitem = OPERATORS["__getitem__"]
        for i in range(self._value.shape[0]):
            yield getitem(self, i)

    def __float__(self):
        return float(self._value)

    def __int__(self):
        return int(self._value)

    def __index__(self):
        if not np.issubdtype(self._value.dtype, np.integer):
            raise TypeError(f"only integer tensors can be used as an index, received dtype "
                            f"{self._value.dtype}")
        return int(self._value)

    def __bool__(self):
        return bool(self._value)

    def __hash__(self):
        return id(self)

    def __repr__(self):
        return (f"<fastdl.Tensor: shape={self.shape}, dtype={self.dtype.name}, "
                f"numpy={np.asarray(self._value)!r}>")

    __str__ = __repr__

    # arithmetic and comparisons: the differentiable ops (fastdl.ops.numpy)
    __add__ = _op("__add__")
    __radd__ = _op("__radd__")
    __sub__ = _op("__sub__")
    __rsub__ = _op("__rsub__")
    __mul__ = _op("__mul__")
    __rmul__ = _op("__rmul__")
    __truediv__ = _op("__truediv__")
    __rtruediv__ = _op("__rtruediv__")
    __floordiv__ = _op("__floordiv__")
    __rfloordiv__ = _op("__rfloordiv__")
    __mod__ = _op("__mod__")
    __rmod__ = _op("__rmod__")
    __pow__ = _op("__pow__")
    __rpow__ = _op("__rpow__")
    __matmul__ = _op("__matmul__")
    __rmatmul__ = _op("__rmatmul__")
    __neg__ = _op("__neg__")
    __pos__ = _op("__pos__")
    __abs__ = _op("__abs__")
    __invert__ = _op("__invert__")
    __and__ = _op("__and__")
    __rand__ = _op("__rand__")
    __or__ = _op("__or__")
    __ror__ = _op("__ror__")
    __xor__ = _op("__xor__")
    __rxor__ = _op("__rxor__")
    __eq__ = _op("__eq__")
    __ne__ = _op("__ne__")
    __lt__ = _op("__lt__")
    __le__ = _op("__le__")
    __gt__ = _op("__gt__")
    __ge__ = _op("__ge__")
    __getitem__ = _op("__getitem__")

    @property
    def T(self):
        return OPERATORS["transpose"](self)


def _numpy_fallback(name, args, kwargs, call):
    """A NumPy function fastdl has no op for: fine on untracked Tensors, an error on tracked ones
    (the tape could not see the computation and the gradient would silently be wrong)."""
    flat = []
    _flatten_tensors(args, flat)
    _flatten_tensors(kwargs, flat)
    for t in flat:
        if _is_tracked(t):
            raise TypeError(
                f"{name} received a fastdl Tensor of shape {t.shape} and dtype {t.dtype.name} "
                "that a GradientTape is recording: NumPy cannot record gradients. Use the "
                "fastdl.ops equivalent (fastdl.ops / keras.ops names), or wrap the value in "
                "fastdl.ops.stop_gradient first if no gradient should flow through it.")
    return call(_unwrap(args), _unwrap(kwargs))


def _flatten_tensors(obj, out):
    if isinstance(obj, Tensor):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            _flatten_tensors(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _flatten_tensors(o, out)


def _unwrap(obj):
    if isinstance(obj, Tensor):
        return np.asarray(obj._value)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


_variable_count = 0


class Variable(Tensor):
    """A trainable weight (``tf.Variable`` / ``keras.Variable``): a NumPy array updated in place.

    ``Variable(initial_value, trainable=True, name=None, dtype=None)``; ``initial_value`` may
    be an array-like or a Keras initializer / callable ``f(shape, dtype)`` together with
    ``shape=``. Python floats default to float32. Trainable Variables are watched by every
    recording GradientTape without ``tape.watch``.
    """
    __slots__ = ("trainable", "name")

    def __init__(self, initial_value=None, trainable=True, name=None, dtype=None, shape=None):
        global _variable_count
        if initial_value is None:
            raise ValueError("Variable: initial_value is required, received None")
        if callable(initial_value) and not isinstance(initial_value, Tensor):
            if shape is None:
                raise ValueError("Variable: a callable initial_value needs shape=, "
                                 f"received shape=None with {initial_value!r}")
            value = np.array(initial_value(tuple(shape), dtype or "float32"))
        else:
            value = np.array(initial_value._value if isinstance(initial_value, Tensor)
                             else initial_value)
            if dtype is None and value.dtype == np.float64 and not isinstance(
                    initial_value, (np.ndarray, np.generic, Tensor)):
                value = value.astype(np.float32)  # Python floats -> float32, as Keras
            elif dtype is None and value.dtype == np.int64 and not isinstance(
                    initial_value, (np.ndarray, np.generic, Tensor)):
                value = value.astype(np.int32)
        if dtype is not None:
            value = value.astype(np.dtype(dtype))
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise ValueError(f"Variable: initial value has shape {value.shape}, received "
                             f"shape={tuple(shape)}")
        if value.dtype.kind not in "biuf":
            raise TypeError(f"Variable: initial_value must be numeric (or a callable "
                            f"initializer with shape=), received {type(initial_value).__name__} "
                            f"{initial_value!r:.80}")
        if not isinstance(trainable, (bool, np.bool_)):
            raise TypeError(f"Variable: trainable must be a bool, received {trainable!r}")
        Tensor.__init__(self, value)
        self.trainable = bool(trainable)
        _variable_count += 1
        self.name = name if name is not None else f"Variable_{_variable_count}"

    @classmethod
    def _wrap(cls, array, name, trainable=True):
        """A Variable over ``array`` itself (no copy): a layer's weight seen by the tape."""
        v = cls.__new__(cls)
        Tensor.__init__(v, array)
        v.trainable = trainable
        v.name = name
        return v

    @property
    def value(self):
        """The variable itself, read as a tensor (ops on it are recorded like ops on the Variable)."""
        return self

    def numpy(self):
        return self._value.copy()

    def _checked(self, value, method):
        v = value._value if isinstance(value, Tensor) else np.asarray(value)
        if v.shape != self._value.shape:
            raise ValueError(f"Variable.{method}: {self.name} has shape {self._value.shape}, "
                             f"received a value of shape {v.shape}")
        return v

    def assign(self, value):
        self._value[...] = self._checked(value, "assign")
        return self

    def assign_add(self, delta):
        self._value += self._checked(delta, "assign_add")
        return self

    def assign_sub(self, delta):
        self._value -= self._checked(delta, "assign_sub")
        return self

    def __repr__(self):
        return (f"<fastdl.Variable '{self.name}' shape={self.shape} dtype={self.dtype.name}, "
                f"numpy={self._value!r}>")

    __str__ = __repr__
