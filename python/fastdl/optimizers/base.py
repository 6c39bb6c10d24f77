"""The optimizer base class: Keras 3 semantics on plain NumPy arrays updated in place.

Layout of the state. Variables are grouped by dtype; each group owns one flat scratch buffer for the
gradients (and a second one, ``tmp``, where the update rule needs it) and one flat buffer per slot
("momentum", "velocity", ...). Every variable gets shaped views into those buffers, so one training
step costs per variable only a copy of its gradient into the flat buffer and the final ``w -= d``
(plus two calls when weight decay is on); the update rule itself runs once per group on the flat
buffers, in cache-sized chunks. The slot views are what ``variables`` / ``get_state`` expose, in
Keras's order.

``use_ema`` keeps a moving average of every variable (``ema_overwrite_frequency``: copied into
the variables every that many updates; ``finalize_variable_values`` copies it at the end of
training); ``gradient_accumulation_steps`` sums the gradients of that many ``apply`` calls and
updates with their mean on the last one. Both as Keras 3: their arrays come before the slots in
``variables``, and ``iterations`` counts updates, not calls.
"""
import math
import operator
import warnings

import numpy as np

from fastdl.optimizers import schedules as _schedules
from fastdl.tensor.tensor import Tensor as _Tensor

_CHUNK = 1 << 14  # elements per chunk of the flat update: every buffer of a chunk stays in L2
_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_FUSED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # the C++ updates' dtypes


# ----------------------------------------------------------------------------------------------
# argument validation (shared by the subclasses)

def _is_real(value):
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


def check_number(name, value, low=None, high=None, low_open=False, high_open=False,
                 allow_none=False):
    """Validate one numeric hyperparameter; returns it as a Python float (or None)."""
    if value is None and allow_none:
        return None
    if not _is_real(value):
        raise ValueError(f"Argument `{name}` must be a number. Received: {name}={value!r} "
                         f"(of type {type(value).__name__})")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"Argument `{name}` must be finite. Received: {name}={value!r}")
    bad = ((low is not None and (v < low or (low_open and v == low)))
           or (high is not None and (v > high or (high_open and v == high))))
    if bad:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        rng = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ValueError(f"Argument `{name}` must be in {rng}. Received: {name}={value!r}")
    return v


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"Argument `{name}` must be a bool. Received: {name}={value!r} "
                         f"(of type {type(value).__name__})")
    return bool(value)


def _lr_arity(fn):
    """0 when a learning-rate callable takes no argument, 1 when it takes the step."""
    import inspect
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0
    for p in params:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL):
            return 1
    return 0


def _check_count(name, value, low):
    """An optional integer setting (None or an int >= low)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low} or None. Received: "
                         f"{name}={value!r}")
    return int(value)


class _Group:
    """Flat buffers of the variables of one dtype."""
    __slots__ = ("dtype", "size", "g", "tmp", "tmp2", "slots", "slot_list")

    def __init__(self, dtype, size, slot_names, slot_inits, n_tmp):
        self.dtype = dtype
        self.size = size
        self.g = np.zeros(size, dtype)
        self.tmp = np.zeros(size, dtype) if n_tmp >= 1 else None
        self.tmp2 = np.zeros(size, dtype) if n_tmp >= 2 else None
        self.slots = {}
        for name in slot_names:
            buf = np.empty(size, dtype)
            buf.fill(slot_inits.get(name, 0.0))
            self.slots[name] = buf
        self.slot_list = [self.slots[name] for name in slot_names]


class Optimizer:
    """Base class of fastdl's optimizers (Keras 3 ``keras.optimizers.Optimizer`` semantics).

    Subclasses define ``_slot_blocks`` (slot names per block, Keras's variable order: the
    variables of a block are listed per model variable, names interleaved), ``_n_tmp``,
    ``_d_source`` / ``_d_add`` (which buffer holds the final update ``d`` and whether ``w += d``
    or ``w -= d``; ``_d_assign``: ``w = d``), ``_coefficients(lr, step)`` and
    ``_kernel(g, tmp, tmp2, slots, coeffs)``. A rule that reads the variables themselves (Ftrl)
    sets ``_needs_variables``: ``tmp2`` then holds their values when the kernel runs. Scalars
    Keras keeps after the slots (Nadam's ``u_product``) come from ``_tail_arrays`` and are
    restored by ``_set_tail``.
    """

    _slot_blocks = ()
    _slot_inits = {}
    _n_tmp = 0
    _d_source = "g"
    _d_add = False
    _d_assign = False
    _needs_variables = False
    _scale_updates = None   # or a method (updates, variables, lr) scaling each update in place
    _default_name = "optimizer"

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.",
                          stacklevel=3)
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if name is None:
            name = self._default_name
        if not isinstance(name, str):
            raise ValueError(f"Argument `name` must be a string. Received: name={name!r}")
        self.name = name
        self.built = False
        self._exclude_ids = set()
        self.weight_decay = weight_decay
        self.clipnorm = check_number("clipnorm", clipnorm, low=0.0, allow_none=True)
        self.clipvalue = check_number("clipvalue", clipvalue, low=0.0, allow_none=True)
        self.global_clipnorm = check_number("global_clipnorm", global_clipnorm, low=0.0,
                                            allow_none=True)
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                f"global_clipnorm={global_clipnorm}")
        self.use_ema = check_bool("use_ema", use_ema)
        self.ema_momentum = check_number("ema_momentum", ema_momentum, 0.0, 1.0)
        self.ema_overwrite_frequency = _check_count("ema_overwrite_frequency",
                                                    ema_overwrite_frequency, 1)
        self.loss_scale_factor = check_number("loss_scale_factor", loss_scale_factor, low=0.0,
                                              low_open=True, allow_none=True)
        self.gradient_accumulation_steps = _check_count("gradient_accumulation_steps",
                                                        gradient_accumulation_steps, 2)
        self._averages = []        # use_ema: the moving average of every variable
        self._accumulators = []    # gradient_accumulation_steps: the summed gradients

        self._iterations = 0
        self._lr_value = None   # float32-rounded Python float when the learning rate is a number
        self._lr_fn = None      # schedule or callable otherwise
        self._lr_fn_arity = 0
        self._set_learning_rate(learning_rate)
        self._vars = []

    # ------------------------------------------------------------------ learning rate, counters
    def _set_learning_rate(self, learning_rate):
        if isinstance(learning_rate, _schedules.LearningRateSchedule):
            self._lr_fn, self._lr_fn_arity, self._lr_value = learning_rate, 1, None
        elif callable(learning_rate) and not _is_real(learning_rate):
            self._lr_fn, self._lr_fn_arity, self._lr_value = (
                learning_rate, _lr_arity(learning_rate), None)
        else:
            if not _is_real(learning_rate):
                raise ValueError(
                    "Argument `learning_rate` should be a float, a LearningRateSchedule or a "
                    f"callable. Received: learning_rate={learning_rate!r}")
            v = check_number("learning_rate", learning_rate, low=0.0)
            # Keras keeps the learning rate in a float32 variable: use exactly that value, so a
            # saved and restored optimizer continues bitwise like an uninterrupted one.
            self._lr_value = float(np.float32(v))
            self._lr_fn = None

    def _current_lr(self):
        if self._lr_fn is None:
            return self._lr_value
        fn = self._lr_fn
        value = fn(self._iterations) if self._lr_fn_arity else fn()
        return float(value)

    @property
    def learning_rate(self):
        """The current learning rate as a float (a schedule is evaluated at `iterations`)."""
        return self._current_lr()

    @learning_rate.setter
    def learning_rate(self, value):
        if (isinstance(self._lr_fn, _schedules.LearningRateSchedule)
                and not callable(value)):
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its "
                "`learning_rate` constructor argument, hence its learning rate is not settable. "
                "If you need the learning rate to be settable, you should instantiate the "
                "optimizer with a float `learning_rate` argument.")
        self._set_learning_rate(value)

    @property
    def weight_decay(self):
        """Decoupled weight decay (`w -= w * weight_decay * lr` before each update), or None."""
        return self._weight_decay

    @weight_decay.setter
    def weight_decay(self, value):
        self._weight_decay = check_number("weight_decay", value, low=0.0, allow_none=True)
        if self.built:
            self._update_decay_list()

    @property
    def iterations(self):
        """Number of updates so far (a Python int): the `apply` calls, divided by
        `gradient_accumulation_steps` when gradients are accumulated (as in Keras)."""
        steps = self.gradient_accumulation_steps
        return self._iterations // steps if steps else self._iterations

    @iterations.setter
    def iterations(self, value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
                or value < 0:
            raise ValueError(f"`iterations` must be an int >= 0. Received: {value!r}")
        self._iterations = int(value) * (self.gradient_accumulation_steps or 1)

    # ------------------------------------------------------------------ build
    def _slot_names(self):
        return [n for block in self._slot_blocks for n in block]

    def build(self, variables):
        """Create the slots (zeros like each variable; Adagrad: its initial value)."""
        if self.built:
            return
        variables = [v._value if isinstance(v, _Tensor) else v for v in variables]
        seen = set()
        for i, v in enumerate(variables):
            if not isinstance(v, np.ndarray):
                raise ValueError(f"{type(self).__name__}.build: variable {i} must be a NumPy "
                                 f"array. Received: {type(v).__name__}")
            if v.dtype not in _FLOAT_DTYPES:
                raise ValueError(f"{type(self).__name__}.build: variable {i} must have a float "
                                 f"dtype. Received: dtype={v.dtype}")
            if not v.flags.writeable:
                raise ValueError(f"{type(self).__name__}.build: variable {i} is read-only; "
                                 "the optimizer updates variables in place")
            if id(v) in seen:
                raise ValueError(f"{type(self).__name__}.build: variable {i} appears twice "
                                 "in the list")
            seen.add(id(v))

        names = self._slot_names()
        self._names = names
        sizes = {}
        for v in variables:
            sizes[v.dtype] = sizes.get(v.dtype, 0) + v.size
        groups = {dt: _Group(dt, n, names, self._slot_inits, self._n_tmp)
                  for dt, n in sizes.items()}
        fill = dict.fromkeys(sizes, 0)
        self._var_group, self._var_span = [], []
        self._gviews, self._tviews = [], []
        self._slot_views = {n: [] for n in names}
        for v in variables:
            grp = groups[v.dtype]
            off = fill[v.dtype]
            fill[v.dtype] = off + v.size
            self._var_group.append(grp)
            self._var_span.append((off, off + v.size))
            self._gviews.append(grp.g[off:off + v.size].reshape(v.shape))
            self._tviews.append(None if grp.tmp is None
                                else grp.tmp[off:off + v.size].reshape(v.shape))
            for n in names:
                self._slot_views[n].append(grp.slots[n][off:off + v.size].reshape(v.shape))
        self._groups = list(groups.values())
        self._vars = variables
        self._index = {id(v): i for i, v in enumerate(variables)}
        self._dviews = (self._gviews if self._d_source == "g"
                        else self._slot_views[self._d_source])
        self._update_decay_list()
        self._averages = [np.zeros_like(v) for v in variables] if self.use_ema else []
        self._accumulators = ([np.zeros_like(v) for v in variables]
                              if self.gradient_accumulation_steps else [])
        self.built = True

    def _update_decay_list(self):
        """(variable, scratch view) pairs that get decoupled weight decay."""
        self._decay_pairs = []
        if self._weight_decay:
            if any(grp.tmp is None for grp in self._groups):   # weight decay needs scratch
                for grp in self._groups:
                    if grp.tmp is None:
                        grp.tmp = np.zeros(grp.size, grp.dtype)
                self._tviews = [self._var_group[i].tmp[a:b].reshape(v.shape)
                                for i, (v, (a, b)) in enumerate(zip(self._vars, self._var_span))]
            self._decay_pairs = [(v, t) for v, t in zip(self._vars, self._tviews)
                                 if id(v) not in self._exclude_ids]

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Exclude variables (given as the arrays themselves) from weight decay."""
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before the "
                             "optimizer is built.")
        if var_names:
            raise NotImplementedError(
                "fastdl variables are plain NumPy arrays without names: pass the arrays with "
                f"`var_list=` instead. Received: var_names={var_names!r}")
        self._exclude_ids = {id(v._value if isinstance(v, _Tensor) else v)
                             for v in (var_list or ())}

    # ------------------------------------------------------------------ loss scaling
    def scale_loss(self, loss):
        """``loss * loss_scale_factor`` (``loss`` when it is None), as Keras: differentiate
        this in a custom training loop; `apply` divides the gradients by the same factor."""
        scale = self._loss_scale()
        return loss if scale is None else loss * scale

    def _loss_scale(self):
        """The factor `scale_loss` multiplies by, or None."""
        return self.loss_scale_factor

    def _scale_gradients(self, grads):
        """The gradients of ``scale_loss(loss)`` from those of ``loss`` (fit's step computes
        the latter; by linearity they differ by the factor, exactly for a power of two), so
        that `apply`'s unscaling gives fit the loss's own gradients, as in Keras."""
        scale = self._loss_scale()
        if scale is None:
            return grads
        return [g * g.dtype.type(scale) for g in grads]

    # ------------------------------------------------------------------ apply
    def apply_gradients(self, grads_and_vars):
        """Keras's `apply_gradients([(g, w), ...])`; returns `iterations`."""
        pairs = list(grads_and_vars)
        if not pairs:
            return self._iterations
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"{type(self).__name__}.apply_gradients: expected (gradient, "
                                 f"variable) pairs, received {type(pair).__name__} at position "
                                 f"{i}; use apply_gradients(zip(grads, variables))")
        grads, variables = zip(*pairs)
        self.apply(list(grads), list(variables))
        return self._iterations

    def apply(self, grads, variables=None):
        """Update `variables` in place from `grads` (Keras 3 order: grads first).

        Builds the optimizer on first use; clips, applies decoupled weight decay, runs the
        update rule and increments `iterations`.
        """
        if not isinstance(grads, (list, tuple)):
            grads = list(grads)
        n = len(grads)
        if n == 0:
            return
        if variables is not None and not isinstance(variables, (list, tuple)):
            variables = list(variables)
        # fastdl.Variable / Tensor (from GradientTape): their arrays, updated in place
        if any(isinstance(g, _Tensor) for g in grads):
            grads = [g._value if isinstance(g, _Tensor) else g for g in grads]
        if variables is not None and any(isinstance(v, _Tensor) for v in variables):
            variables = [v._value if isinstance(v, _Tensor) else v for v in variables]
        if variables is None:
            if not self.built:
                raise ValueError("When passing `grads` without `variables`, the optimizer must "
                                 "already be built on a list of variables. Call "
                                 "`optimizer.build(trainable_variables)` first.")
            variables = self._vars
        elif not self.built:
            self.build(variables)
        known = self._vars
        if (len(variables) != len(known) or n != len(known)
                or any(map(operator.is_not, variables, known))):
            return self._apply_subset(grads, variables)

        # Gather the gradients into the flat buffers (validates every shape before any state
        # changes: a failure leaves weights, slots and counters untouched).
        gviews = self._gviews
        try:
            for i in range(n):
                g = grads[i]
                gv = gviews[i]
                if g.shape != gv.shape:
                    raise ValueError(
                        f"{type(self).__name__}.apply: gradient {i} has shape {g.shape} but "
                        f"its variable has shape {gv.shape}")
                np.copyto(gv, g)
        except AttributeError:   # a None gradient or a non-array: the general path
            return self._apply_subset(grads, variables)

        self._update(list(range(n)), self._groups)

    def _apply_subset(self, grads, variables):
        """General path: any subset of the built variables, None gradients, array-likes."""
        if len(grads) != len(variables):
            raise ValueError(f"{type(self).__name__}.apply: received {len(grads)} gradients "
                             f"for {len(variables)} variables")
        picked, missing = [], []
        for i, (g, v) in enumerate(zip(grads, variables)):
            idx = self._index.get(id(v))
            if idx is None:
                raise ValueError(
                    f"Unknown variable {i} (shape {getattr(v, 'shape', None)}). This optimizer "
                    "can only be called for the variables it was originally built with. When "
                    "working with a new set of variables, you should recreate a new optimizer "
                    "instance.")
            if g is None:
                missing.append(i)
                continue
            g = np.asarray(g)
            if g.shape != v.shape:
                raise ValueError(f"{type(self).__name__}.apply: gradient {i} has shape {g.shape} "
                                 f"but its variable has shape {v.shape}")
            if not (np.issubdtype(g.dtype, np.floating) or np.issubdtype(g.dtype, np.integer)):
                raise ValueError(f"{type(self).__name__}.apply: gradient {i} must be a real "
                                 f"number array. Received: dtype={g.dtype}")
            picked.append((idx, g))
        if not picked:
            raise ValueError("No gradients provided for any variable.")
        if len({idx for idx, _ in picked}) != len(picked):
            raise ValueError(f"{type(self).__name__}.apply: a variable appears twice")
        if missing:
            warnings.warn(f"Gradients do not exist for variables {missing} when minimizing the "
                          "loss.", stacklevel=3)
        for idx, g in picked:
            np.copyto(self._gviews[idx], g)
        self._update([idx for idx, _ in picked], None)

    def _update(self, idxs, groups):
        """Clip, weight-decay, run the update rule, write the variables, count the step.

        `groups` is the list of whole groups (fast path: every variable of every group) or None
        (subset: the rule runs on each variable's span).
        """
        gviews = self._gviews
        # loss scaling, accumulation and clipping act on the gathered gradients
        if self.loss_scale_factor is not None:
            for i in idxs:
                np.divide(gviews[i], self.loss_scale_factor, out=gviews[i])
        steps = self.gradient_accumulation_steps
        if steps:
            acc = self._accumulators
            if (self._iterations + 1) % steps:          # not an update step: sum, count
                for i in idxs:
                    acc[i] += gviews[i]
                self._end_step()
                return
            for i in idxs:                              # update with the mean gradient
                g = gviews[i]
                g += acc[i]
                g /= steps
                acc[i].fill(0)
        if self.clipnorm:
            c = self.clipnorm
            for i in idxs:
                gf = gviews[i].reshape(-1)
                s = float(np.dot(gf, gf))
                if not s <= c * c:     # also NaN/Inf: they propagate like in Keras
                    gf *= c / math.sqrt(s)
        elif self.global_clipnorm:
            c = self.global_clipnorm
            if groups is not None:
                s = sum(float(np.dot(grp.g, grp.g)) for grp in groups)
            else:
                s = 0.0
                for i in idxs:
                    gf = gviews[i].reshape(-1)
                    s += float(np.dot(gf, gf))
            norm = math.sqrt(s)
            if not norm <= c:
                scale = c / norm if math.isfinite(norm) else math.nan
                for i in idxs:
                    gviews[i] *= scale
        elif self.clipvalue:
            c = self.clipvalue
            if groups is not None:
                for grp in groups:
                    np.clip(grp.g, -c, c, out=grp.g)
            else:
                for i in idxs:
                    np.clip(gviews[i], -c, c, out=gviews[i])

        lr = self._current_lr()
        if self._decay_pairs:
            c = self.weight_decay * lr
            if c:
                if groups is not None:
                    for w, t in self._decay_pairs:
                        np.multiply(w, c, out=t)
                        w -= t
                else:
                    for i in idxs:
                        w = self._vars[i]
                        if id(w) not in self._exclude_ids:
                            t = self._tviews[i]
                            np.multiply(w, c, out=t)
                            w -= t

        if self._needs_variables:
            for i in idxs:
                a, b = self._var_span[i]
                self._var_group[i].tmp2[a:b] = self._vars[i].reshape(-1)
        coeffs = self._coefficients(lr, self.iterations + 1)
        kernel = self._kernel
        fused = self._fused
        if groups is not None:
            for grp in groups:
                slots = grp.slot_list
                size = grp.size
                if fused(grp.g, slots, coeffs):
                    continue
                if size <= _CHUNK:
                    kernel(grp.g, grp.tmp, grp.tmp2, slots, coeffs)
                else:
                    g, t, t2 = grp.g, grp.tmp, grp.tmp2
                    for a in range(0, size, _CHUNK):
                        b = a + _CHUNK
                        kernel(g[a:b], None if t is None else t[a:b],
                               None if t2 is None else t2[a:b], [s[a:b] for s in slots], coeffs)
        else:
            for i in idxs:
                grp = self._var_group[i]
                a, b = self._var_span[i]
                g, slots = grp.g[a:b], [grp.slots[nm][a:b] for nm in self._names]
                if not fused(g, slots, coeffs):
                    kernel(g, None if grp.tmp is None else grp.tmp[a:b],
                           None if grp.tmp2 is None else grp.tmp2[a:b], slots, coeffs)

        variables, dviews = self._vars, self._dviews
        if self._scale_updates is not None:     # per-variable scaling of the update (Lamb)
            self._scale_updates([dviews[i] for i in idxs], [variables[i] for i in idxs], lr)
        if self._d_assign:
            for i in idxs:
                np.copyto(variables[i], dviews[i])
        elif self._d_add:
            for i in idxs:
                w = variables[i]
                np.add(w, dviews[i], out=w)
        else:
            for i in idxs:
                w = variables[i]
                np.subtract(w, dviews[i], out=w)
        self._end_step()

    def _end_step(self):
        """After every `apply`: the moving averages (use_ema), the periodic overwrite of the
        variables with them (ema_overwrite_frequency), then the step counter, as in Keras."""
        if self.use_ema:
            first = self.iterations == 0
            for w, avg in zip(self._vars, self._averages):
                dt = w.dtype.type
                m = dt(0) if first else dt(self.ema_momentum)
                avg *= m
                avg += (dt(1) - m) * w        # average = m * average + (1 - m) * w
            freq = self.ema_overwrite_frequency
            if freq and (self.iterations + 1) % freq == 0:
                for w, avg in zip(self._vars, self._averages):
                    np.copyto(w, avg)
        self._iterations += 1

    def finalize_variable_values(self, var_list):
        """With `use_ema`, overwrite the given variables (built ones) with their moving
        averages; Keras calls this at the end of `fit`."""
        if not self.use_ema or not self.built:
            return
        for v in var_list:
            v = v._value if isinstance(v, _Tensor) else v
            idx = self._index.get(id(v))
            if idx is None:
                raise ValueError(f"{type(self).__name__}.finalize_variable_values: unknown "
                                 f"variable of shape {getattr(v, 'shape', None)}")
            np.copyto(v, self._averages[idx])

    # ------------------------------------------------------------------ the update rule
    def _coefficients(self, lr, step):
        raise NotImplementedError

    def _kernel(self, g, tmp, tmp2, slots, coeffs):
        raise NotImplementedError

    def _fused(self, g, slots, coeffs):
        """The rule as one C++ pass over whole flat buffers, where the optimizer has one for
        g's dtype (it then returns True); else False and `_kernel` runs chunk by chunk."""
        return False

    # ------------------------------------------------------------------ state
    def _state_arrays(self):
        out = [np.array(self._iterations, dtype=np.int64)]
        if self._lr_fn is None:
            out.append(np.array(self._lr_value, dtype=np.float32))
        return out

    def _slot_list(self):
        if not self.built:
            return []
        out = self._averages + self._accumulators     # Keras's order: before the slots
        n = len(self._vars)
        for block in self._slot_blocks:
            for i in range(n):
                for name in block:
                    out.append(self._slot_views[name][i])
        return out

    def _tail_arrays(self):
        """Scalar state Keras lists after the slots of a built optimizer (none by default)."""
        return []

    def _set_tail(self, arrays):
        """Restore `_tail_arrays` from the (validated, scalar) arrays."""

    @property
    def variables(self):
        """Keras's order: iterations (int64 scalar), learning rate (float32 scalar, only when
        it is a number and not a schedule), the slots of every model variable, then any
        optimizer-wide scalars (Nadam's `u_product`)."""
        tail = self._tail_arrays() if self.built else []
        return self._state_arrays() + self._slot_list() + tail

    def get_state(self):
        """Copies of `variables` (what save writes)."""
        return [np.array(a, copy=True) for a in self.variables]

    def set_state(self, state):
        """Restore what `get_state` returned (exactly, bitwise). Validates everything first."""
        state = list(state)
        slots = self._slot_list()
        n_tail = len(self._tail_arrays()) if self.built else 0
        head = 2 if self._lr_fn is None else 1
        per_variable = (self._slot_names() or self.use_ema
                        or self.gradient_accumulation_steps)
        if not self.built and per_variable and len(state) > head:
            raise ValueError(f"{type(self).__name__}.set_state: the optimizer is not built yet; "
                             "call `optimizer.build(trainable_variables)` first")
        if len(state) != head + len(slots) + n_tail:
            tail = f" and {n_tail} scalars" if n_tail else ""
            raise ValueError(f"{type(self).__name__}.set_state: expected "
                             f"{head + len(slots) + n_tail} arrays ({head} counters, "
                             f"{len(slots)} slots{tail}), received {len(state)}")
        arrays = [np.asarray(a) for a in state]
        tail = arrays[len(arrays) - n_tail:] if n_tail else []
        arrays = arrays[:len(arrays) - n_tail]
        for k, a in enumerate(tail):
            if a.shape != () or not np.issubdtype(a.dtype, np.number) \
                    or not math.isfinite(float(a)):
                raise ValueError(f"{type(self).__name__}.set_state: optimizer scalar {k} must "
                                 f"be a finite real scalar. Received: {a!r}")
        it = arrays[0]
        if it.shape != () or not (np.issubdtype(it.dtype, np.integer)
                                  or (np.issubdtype(it.dtype, np.floating)
                                      and float(it) == math.floor(float(it)))):
            raise ValueError(f"{type(self).__name__}.set_state: the iteration count must be an "
                             f"integer scalar. Received: {it!r}")
        if int(it) < 0:
            raise ValueError(f"{type(self).__name__}.set_state: negative iteration count "
                             f"{int(it)}")
        if head == 2:
            lr = arrays[1]
            if lr.shape != () or not np.issubdtype(lr.dtype, np.number) \
                    or not math.isfinite(float(lr)) or float(lr) < 0:
                raise ValueError(f"{type(self).__name__}.set_state: the learning rate must be a "
                                 f"finite scalar >= 0. Received: {lr!r}")
        for k, (dst, src) in enumerate(zip(slots, arrays[head:])):
            if dst.shape != src.shape:
                raise ValueError(f"{type(self).__name__}.set_state: slot {k} has shape "
                                 f"{dst.shape}, received {src.shape}")
            if not (np.issubdtype(src.dtype, np.floating) or np.issubdtype(src.dtype,
                                                                           np.integer)):
                raise ValueError(f"{type(self).__name__}.set_state: slot {k} must be a real "
                                 f"number array. Received: dtype={src.dtype}")
        # everything valid: write
        self._iterations = int(it)
        if head == 2:
            self._lr_value = float(np.float32(arrays[1]))
        for dst, src in zip(slots, arrays[head:]):
            np.copyto(dst, src, casting="unsafe")
        if n_tail:
            self._set_tail(tail)

    def save_own_variables(self, store):
        """Keras's saving hook: `store[str(i)] = variable`."""
        for i, v in enumerate(self.variables):
            store[str(i)] = np.array(v, copy=True)

    def load_own_variables(self, store):
        """Keras's loading hook (the inverse of `save_own_variables`)."""
        self.set_state([store[str(i)] for i in range(len(store.keys()))])

    # ------------------------------------------------------------------ config
    def get_config(self):
        if isinstance(self._lr_fn, _schedules.LearningRateSchedule):
            lr = _schedules.serialize(self._lr_fn)
        elif self._lr_fn is not None:
            lr = self._lr_fn
        else:
            lr = self._lr_value
        return {
            "name": self.name,
            "learning_rate": lr,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        if not isinstance(config, dict):
            raise ValueError(f"{cls.__name__}.from_config expects a dict. Received: "
                             f"{type(config).__name__}")
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = _schedules.deserialize(config["learning_rate"],
                                                             custom_objects=custom_objects)
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self.learning_rate:g}>"
