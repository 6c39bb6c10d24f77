"""GradientTape: reverse-mode differentiation over recorded primitives (TensorFlow semantics).

A primitive (one op, or one C++ forward kernel) calls :func:`record` after computing its
output. For each recording tape that tracks one of its inputs (a watched Tensor, a trainable
Variable, or the output of an earlier recorded primitive), the tape appends one entry
``(output, inputs, vjp, cache)``: ``vjp(cache, g)`` is a plain function returning one gradient
(or None) per input. ``gradient`` walks the flat entry list once in reverse, summing gradients
where a value fans out. With no tape recording, ``record`` is never reached (ops test
``_TAPES`` first), so inference costs nothing extra.
"""
import numpy as np

from fastdl.tensor import tensor as _tensor
from fastdl.tensor.tensor import Tensor, Variable

_TAPES = []  # the recording tapes, innermost last


def recording():
    """True while some GradientTape records."""
    return bool(_TAPES)


def record(out, inputs, vjp, cache):
    """Record one primitive ``out = f(*inputs)`` on every recording tape that tracks an input."""
    for tape in _TAPES:
        watched = tape._watched
        hit = False
        for x in inputs:
            if id(x) in watched:
                hit = True
            elif tape._auto and isinstance(x, Variable) and x.trainable and \
                    x._value.dtype.kind == "f":
                tape._watch_variable(x)
                hit = True
        if hit:
            tape._entries.append((out, inputs, vjp, cache))
            watched[id(out)] = out


def tracked(x):
    """True when a recording tape tracks ``x``: a primitive may skip the gradients of the
    inputs nobody tracks (they can never be asked for)."""
    return _is_tracked(x)


def _is_tracked(x):
    for tape in _TAPES:
        if id(x) in tape._watched or (tape._auto and isinstance(x, Variable) and x.trainable
                                      and x._value.dtype.kind == "f"):
            return True
    return False


_tensor._is_tracked = _is_tracked


def _is_float(dtype):
    return dtype.kind == "f"


def _flatten(structure, out):
    """Leaves of a nested list/tuple/dict structure, in order (dicts by sorted key, as tf.nest)."""
    if isinstance(structure, (list, tuple)):
        for s in structure:
            _flatten(s, out)
    elif isinstance(structure, dict):
        for k in sorted(structure):
            _flatten(structure[k], out)
    else:
        out.append(structure)
    return out


def _pack(structure, leaves):
    """Rebuild ``structure`` with the next items of the iterator ``leaves``."""
    if isinstance(structure, (list, tuple)):
        items = [_pack(s, leaves) for s in structure]
        return type(structure)(*items) if hasattr(structure, "_fields") else type(structure)(items)
    if isinstance(structure, dict):
        packed = {k: _pack(structure[k], leaves) for k in sorted(structure)}
        return type(structure)((k, packed[k]) for k in structure)
    return next(leaves)


class GradientTape:
    """Records the differentiable ops run inside ``with GradientTape() as tape:``.

    ``GradientTape(persistent=False, watch_accessed_variables=True)``: trainable Variables used
    inside the block are watched automatically; other Tensors need ``tape.watch(x)``.
    ``tape.gradient(target, sources)`` returns d(sum of target)/d(source) for each source, in the
    structure of ``sources`` (None for sources the target does not depend on, or for integer
    sources). A non-persistent tape answers one ``gradient`` call. Gradients are constants:
    a tape does not record the backward pass of another (no second-order gradients).
    """

    def __init__(self, persistent=False, watch_accessed_variables=True):
        if not isinstance(persistent, (bool, np.bool_)):
            raise TypeError(f"GradientTape: persistent must be a bool, received {persistent!r}")
        self._persistent = bool(persistent)
        self._auto = bool(watch_accessed_variables)
        self._entries = []
        self._watched = {}        # id -> tracked object (kept alive so ids stay unique)
        self._variables = []      # watched variables, in first-use order
        self._used = False

    # ------------------------------------------------------------------ recording
    def __enter__(self):
        if self in _TAPES:
            raise RuntimeError("GradientTape is already recording; a tape cannot be entered "
                               "twice at once")
        _TAPES.append(self)
        return self

    def __exit__(self, *exc_info):
        if self in _TAPES:
            _TAPES.remove(self)
        return False

    def _watch_variable(self, v):
        self._watched[id(v)] = v
        self._variables.append(v)

    def watch(self, tensor):
        """Track ``tensor`` (a Tensor, Variable, or a nested list/tuple/dict of them)."""
        for i, t in enumerate(_flatten(tensor, [])):
            if not isinstance(t, Tensor):
                raise TypeError(
                    "GradientTape.watch: expected a fastdl Tensor or Variable (use "
                    "fastdl.constant / fastdl.ops.convert_to_tensor on arrays), received "
                    f"{type(t).__name__} at position {i}")
            if _is_float(t._value.dtype) and id(t) not in self._watched:
                if isinstance(t, Variable):
                    self._watch_variable(t)
                else:
                    self._watched[id(t)] = t

    def watched_variables(self):
        """The Variables this tape watched, in first-use order."""
        return tuple(self._variables)

    class _StopRecording:
        __slots__ = ("tape", "was")

        def __init__(self, tape):
            self.tape = tape

        def __enter__(self):
            self.was = self.tape in _TAPES
            if self.was:
                _TAPES.remove(self.tape)

        def __exit__(self, *exc_info):
            if self.was:
                _TAPES.append(self.tape)
            return False

    def stop_recording(self):
        """Context manager: ops inside it are not recorded on this tape."""
        return GradientTape._StopRecording(self)

    def reset(self):
        """Forget everything recorded so far (the tape keeps recording if it was)."""
        self._entries = []
        self._watched = {}
        self._variables = []

    # ------------------------------------------------------------------ backward
    def _walk(self, grads, keep):
        """One reverse pass over the entries from the seed gradients ``grads`` (id -> array);
        returns the gradients of the ids in ``keep`` (and of the values not consumed)."""
        watched = self._watched
        if not grads:
            return grads
        for out, inputs, vjp, cache in reversed(self._entries):
            key = id(out)
            g = grads.get(key)
            if g is None:
                continue
            if key not in keep:
                del grads[key]
            for x, gx in zip(inputs, vjp(cache, g)):
                if gx is not None and id(x) in watched:
                    prev = grads.get(id(x))
                    grads[id(x)] = gx if prev is None else prev + gx
        return grads

    @staticmethod
    def _result(source, grads, mode):
        v = source._value
        g = grads.get(id(source)) if _is_float(v.dtype) else None
        if g is None:
            return (Tensor(np.zeros(v.shape, v.dtype)) if mode == "zero" and _is_float(v.dtype)
                    else None)
        g = np.asarray(g)
        if g.dtype != v.dtype:
            g = g.astype(v.dtype)
        if g.shape != v.shape:
            g = np.broadcast_to(g, v.shape).copy()
        return Tensor(g)

    def _sources(self, sources, method):
        src = _flatten(sources, [])
        if any(isinstance(s, np.ndarray) or (isinstance(s, Variable) and id(s) not in
                                             self._watched) for s in src):
            # a layer's weight arrays (layer.trainable_weights), or other Variables over them
            # (model.trainable_variables): the Variables this tape recorded for that memory
            by_array = {id(v._value): v for v in self._variables}
            src = [by_array.get(id(s), s) if isinstance(s, np.ndarray) else
                   by_array.get(id(s._value), s) if isinstance(s, Variable) and
                   id(s) not in self._watched else s for s in src]
        for i, t in enumerate(src):
            if not isinstance(t, Tensor):
                raise TypeError(
                    f"GradientTape.{method}: every sources must be a fastdl Tensor or "
                    f"Variable, received {type(t).__name__} at position {i}"
                    + (" (a NumPy array is a constant: wrap it with fastdl.constant and "
                       "tape.watch it)" if isinstance(t, np.ndarray) else ""))
        return src

    def jacobian(self, target, sources, unconnected_gradients="none", parallel_iterations=None,
                 experimental_use_pfor=True):
        """d target[i...] / d source[j...] for each source: shape ``target.shape +
        source.shape``, in the structure of ``sources`` (one reverse pass per target element)."""
        if self._used and not self._persistent:
            raise RuntimeError("A non-persistent GradientTape can only be used to compute one "
                               "set of gradients; create it with persistent=True to call "
                               "jacobian more than once")
        mode = getattr(unconnected_gradients, "value", unconnected_gradients)
        if mode not in ("none", "zero"):
            raise ValueError("GradientTape.jacobian: unconnected_gradients must be 'none' or "
                             f"'zero', received {unconnected_gradients!r}")
        if not isinstance(target, Tensor):
            raise TypeError(f"GradientTape.jacobian: target must be a fastdl Tensor, received "
                            f"{type(target).__name__}")
        src = self._sources(sources, "jacobian")
        self._used = True
        v = target._value
        tracked = _is_float(v.dtype) and id(target) in self._watched
        keep = {id(s) for s in src}
        rows = [[] for _ in src]
        connected = [False] * len(src)
        for i in range(v.size if tracked else 0):
            seed = np.zeros(v.size, v.dtype)
            seed[i] = 1
            grads = self._walk({id(target): seed.reshape(v.shape)}, keep)
            for j, s in enumerate(src):
                g = self._result(s, grads, "zero")
                connected[j] = connected[j] or id(s) in grads
                rows[j].append(None if g is None else g._value)
        if not self._persistent:
            self._entries = []
        result = []
        for j, s in enumerate(src):
            sv = s._value
            if not _is_float(sv.dtype) or (not connected[j] and mode == "none"):
                result.append(None)
            elif not rows[j]:
                result.append(Tensor(np.zeros(v.shape + sv.shape, sv.dtype)))
            else:
                result.append(Tensor(np.stack(rows[j]).reshape(v.shape + sv.shape)))
        return _pack(sources, iter(result))

    def gradient(self, target, sources, output_gradients=None, unconnected_gradients="none"):
        """Gradients of ``target`` (summed over its elements and over a nested structure of
        targets) with respect to ``sources``, in the structure of ``sources``.

        ``output_gradients``: upstream gradients, one per target (default: ones).
        ``unconnected_gradients``: ``"none"`` (default) gives None for a source the target does
        not depend on, ``"zero"`` gives zeros.
        """
        if self._used and not self._persistent:
            raise RuntimeError("A non-persistent GradientTape can only be used to compute one "
                               "set of gradients; create it with persistent=True to call "
                               "gradient more than once")
        mode = getattr(unconnected_gradients, "value", unconnected_gradients)
        if mode not in ("none", "zero"):
            raise ValueError("GradientTape.gradient: unconnected_gradients must be 'none' or "
                             f"'zero', received {unconnected_gradients!r}")
        targets = _flatten(target, [])
        for i, t in enumerate(targets):
            if not isinstance(t, Tensor):
                raise TypeError(f"GradientTape.gradient: every target must be a fastdl Tensor "
                                f"or Variable, received {type(t).__name__} at position {i}")
        src = self._sources(sources, "gradient")
        for tape in _TAPES:
            if tape is not self and any(id(s) in tape._watched for s in src):
                raise NotImplementedError(
                    "GradientTape.gradient was called while another tape records the same "
                    "sources: fastdl computes first-order gradients only (the backward pass is "
                    "not recorded), so a gradient of this gradient would be wrong")
        if output_gradients is None:
            ups = [None] * len(targets)
        else:
            ups = _flatten(output_gradients, [])
            if len(ups) != len(targets):
                raise ValueError(f"GradientTape.gradient: {len(targets)} targets but "
                                 f"{len(ups)} output_gradients")
        self._used = True
        seeds = {}
        for t, up in zip(targets, ups):
            v = t._value
            if not _is_float(v.dtype) or id(t) not in self._watched:
                continue
            if up is None:
                g = np.ones(v.shape, v.dtype)
            else:
                g = np.asarray(up._value if isinstance(up, Tensor) else up, dtype=v.dtype)
                if g.shape != v.shape:
                    raise ValueError(f"GradientTape.gradient: output_gradients of shape "
                                     f"{g.shape} for a target of shape {v.shape}")
            prev = seeds.get(id(t))
            seeds[id(t)] = g if prev is None else prev + g
        grads = self._walk(seeds, {id(s) for s in src})
        if not self._persistent:
            self._entries = []
        result = [self._result(s, grads, mode) for s in src]
        return _pack(sources, iter(result))
