"""DP-SGD for compiled Sequential and functional models: ``make_private(model, ...)`` then
``model.fit``.

Each step (Abadi et al. 2016, with Poisson sampling as the accountant assumes):

1. sample each training example independently with probability ``q = batch_size / n``
   (the batch may be empty: the noise is still added and the step counted);
2. compute every sampled example's gradient norm over all trainable weights
   (fastdl.privacy.per_example: one forward pass, one backward pass that only collects the
   layers' output gradients, per-example norms without per-example gradients where the layer
   allows);
3. run the ordinary backward pass once more with example i's loss gradient scaled by
   ``c_i = min(1, C / ||g_i||)``: it gives ``sum_i c_i g_i`` with no per-example tensor (layers
   whose norms formed their per-example gradients anyway, convolutions where that is cheaper
   than Gram matrices, sum those instead, and this pass stops above them; with an infinite
   ``C`` nothing is clipped and steps 2-3 are one ordinary backward pass);
4. add Gaussian noise of standard deviation ``noise_multiplier * C`` to that sum, divide by the
   expected batch size ``q n`` and let the model's own optimizer apply it.

Large batches run in physical chunks of ``max_physical_batch_size`` examples (their clipped
sums add up), so memory stays bounded. Weight regularizer gradients do not depend on the data
and are added after the noise. The model's ``fit`` calls this module through one hook
(``Model._train_strategy``): the strategy supplies the batches of each epoch and runs the step.
"""
import math

import numpy as np

from fastdl.callbacks import Callback
from fastdl.privacy import accountant as _acc
from fastdl.privacy.per_example import (Pass, PrivacyError, check_model, clipped_sum,
                                        example_scale, squared_norms)
from fastdl.utils.rng import get_rng

SAMPLINGS = ("poisson", "shuffle")


def _number(value, name, minimum, allow_inf=False, strict=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number. Received: {name}={value!r}")
    value = float(value)
    bad = math.isnan(value) or (value <= minimum if strict else value < minimum) \
        or (math.isinf(value) and not allow_inf)
    if bad:
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be {op} {minimum}"
                         f"{' (or inf)' if allow_inf else ' and finite'}. "
                         f"Received: {name}={value!r}")
    return value


def _optional_int(value, name):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int or None. Received: {name}={value!r}")
    return int(value)


def make_private(model, *, l2_norm_clip, noise_multiplier=None, target_epsilon=None,
                 target_delta=1e-5, epochs=None, batch_size=None, sampling="poisson",
                 accountant="rdp", max_physical_batch_size=256):
    """Make ``model.fit`` train ``model`` (a compiled Sequential or functional model) with DP-SGD.

    Give either ``noise_multiplier`` or ``target_epsilon`` (then also ``epochs`` and
    ``batch_size``: the noise multiplier is calibrated by the accountant at the first ``fit``,
    when the number of training examples is known). ``batch_size`` is the expected batch size
    ``q n``; ``fit`` must be called with this batch size (with none given here, the first fit's
    batch size is kept). ``sampling="poisson"`` (what the accountant assumes) or ``"shuffle"``
    (fixed-size shuffled batches: the reported epsilon is then the Poisson analysis applied to
    them, a common heuristic and not a proven bound). Afterwards ``model.privacy_spent()``
    returns (epsilon, delta) of the steps taken so far. Returns the model.

    Bad settings raise ValueError/TypeError/PrivacyError and leave the model unchanged.
    """
    if getattr(model, "_train_strategy", None) is not None:
        raise PrivacyError(f"model {getattr(model, 'name', model)!r} is already private: "
                           "make_private was called on it before")
    check_model(model)
    if getattr(model.optimizer, "distributed_fit", None) is not None:
        raise PrivacyError("make_private does not support fastdl.distributed optimizers yet")
    clip = _number(l2_norm_clip, "l2_norm_clip", 0.0, allow_inf=True, strict=True)
    if (noise_multiplier is None) == (target_epsilon is None):
        raise ValueError("give exactly one of noise_multiplier and target_epsilon. Received: "
                         f"noise_multiplier={noise_multiplier!r}, target_epsilon={target_epsilon!r}")
    if noise_multiplier is not None:
        noise_multiplier = _number(noise_multiplier, "noise_multiplier", 0.0)
    if math.isinf(clip) and (target_epsilon is not None or noise_multiplier):
        raise ValueError("l2_norm_clip=inf bounds no example's influence: the noise would have "
                         "to be infinite. An infinite clip goes with noise_multiplier=0 only "
                         "(no privacy; for checking against ordinary training)")
    epochs = _optional_int(epochs, "epochs")
    batch_size = _optional_int(batch_size, "batch_size")
    if target_epsilon is not None:
        target_epsilon = _number(target_epsilon, "target_epsilon", 0.0, strict=True)
        if epochs is None or batch_size is None:
            raise ValueError("target_epsilon needs epochs and batch_size to calibrate the noise. "
                             f"Received: epochs={epochs!r}, batch_size={batch_size!r}")
    delta = _number(target_delta, "target_delta", 0.0, strict=True)
    if delta >= 1:
        raise ValueError(f"target_delta must be in (0, 1). Received: target_delta={target_delta!r}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}. Received: sampling={sampling!r}")
    if accountant not in _acc.ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {_acc.ACCOUNTANTS}. "
                         f"Received: accountant={accountant!r}")
    physical = _optional_int(max_physical_batch_size, "max_physical_batch_size")
    strategy = DPSGD(clip, noise_multiplier, target_epsilon, delta, epochs, batch_size,
                     sampling, accountant, physical)
    model._train_strategy = strategy
    model.privacy_spent = strategy.privacy_spent
    return model


class _EpochPlan:
    """The batches of each epoch, in the form fit's loop reads (``steps``, ``epoch()``)."""

    def __init__(self, strategy, n):
        self.strategy, self.n = strategy, n
        b = strategy.batch_size
        self.steps = max(1, round(n / b)) if strategy.sampling == "poisson" else math.ceil(n / b)

    def epoch(self, shuffle):
        """(the examples of all batches in order, [(lo, hi)] of each batch in it)."""
        rng = get_rng()
        n, b = self.n, self.strategy.batch_size
        if self.strategy.sampling == "shuffle":
            order = rng.permutation(n) if shuffle else np.arange(n)
            return order, [(lo, min(n, lo + b)) for lo in range(0, n, b)]
        q = b / n
        batches = [np.flatnonzero(rng.random(n) < q) for _ in range(self.steps)]
        ends = np.cumsum([len(idx) for idx in batches])
        bounds = list(zip(np.r_[0, ends[:-1]].tolist(), ends.tolist()))
        return (np.concatenate(batches) if batches else np.zeros(0, np.int64)), bounds


class DPSGD:
    """The train-step strategy ``make_private`` installs: batch plan, DP step, accountant."""

    def __init__(self, clip, noise_multiplier, target_epsilon, delta, epochs, batch_size,
                 sampling, accountant, physical_batch_size):
        self.l2_norm_clip = clip
        self.noise_multiplier = noise_multiplier
        self.target_epsilon = target_epsilon
        self.delta = delta
        self.epochs = epochs
        self.batch_size = batch_size
        self.sampling = sampling
        self.accountant = accountant
        self.physical_batch_size = physical_batch_size
        self.n = None
        self.segments = []          # [[q, noise_multiplier, steps]], composed by the accountant

    # ---------------------------------------------------------------- fit's hooks
    def plan(self, model, n, batch_size):
        """Called by fit with the training set size and batch size, before any step."""
        if self.batch_size is not None and batch_size != self.batch_size:
            raise ValueError(f"fit(batch_size={batch_size}) differs from the batch size "
                             f"{self.batch_size} that make_private was given (the privacy "
                             f"accounting assumes it): call fit with batch_size={self.batch_size}")
        if batch_size > n:
            raise ValueError(f"batch_size={batch_size} exceeds the {n} training examples")
        sigma = self.noise_multiplier
        if sigma is None:     # target_epsilon: calibrated on the first fit (raises if unreachable)
            sigma = _acc.noise_multiplier_for(self.target_epsilon, self.delta, n, batch_size,
                                              self.epochs, self.accountant)
        _acc.warn_if_delta_large(self.delta, n)
        self.noise_multiplier, self.batch_size, self.n = sigma, batch_size, n
        return _EpochPlan(self, n)

    def train_step(self, model, x, y, sw, trainable, weights, nan_check):
        """One DP-SGD step on the sampled batch (x, y, sw); returns its mean loss."""
        from fastdl.models import _check_finite_gradients
        rules = self._rules(model, trainable)
        clip, expected = self.l2_norm_clip, float(self.batch_size)
        grads = None     # the first chunk's sums (arrays of its own), then their totals
        loss_sum = 0.0
        step = self.physical_batch_size or max(len(x), 1)
        for lo in range(0, len(x), step):
            xb, yb = x[lo:lo + step], y[lo:lo + step]
            swb = None if sw is None else sw[lo:lo + step]
            scale = example_scale(model, len(xb))
            passed = Pass(model, xb, yb, swb, trainable)
            if math.isinf(clip):   # nothing is clipped: the norms are not needed
                factor = np.full(len(xb), scale / expected)
            else:
                norms = np.sqrt(squared_norms(rules, passed.capture(), scale, len(xb)))
                with np.errstate(divide="ignore"):
                    factor = np.where(norms > clip, clip / norms, 1.0) * (scale / expected)
            chunk = clipped_sum(rules, passed, factor)
            loss, y_pred = passed.loss, passed.y_pred
            if grads is None:
                grads = chunk
            else:
                for acc, g in zip(grads, chunk):
                    acc += g
            loss_sum += loss * len(xb)
            model._update_metrics(yb, y_pred, swb)
        if grads is None:   # an empty batch
            grads = [np.zeros_like(w) for w in weights]
        sigma = self.noise_multiplier
        if sigma > 0:
            rng = get_rng()
            std = sigma * clip / expected
            for g in grads:   # drawn in the weight's dtype (float32: half the work)
                g += rng.standard_normal(g.shape, dtype=g.dtype) * g.dtype.type(std)
        entries = [w for layer in trainable for w in layer._weight_entries() if w.trainable]
        grads = [g + w.regularizer.gradient(w.value).astype(g.dtype, copy=False)
                 if w.regularizer else g for w, g in zip(entries, grads)]
        loss = loss_sum / len(x) if len(x) else 0.0
        loss += model._regularization_loss(model.__dict__.get("_penalty_layers"))
        if nan_check:
            _check_finite_gradients(loss, trainable, grads, model.optimizer.iterations)
        model.optimizer.apply(model.optimizer._scale_gradients(grads), weights)
        for layer in trainable:
            layer._apply_constraints()
        self._count_step()
        return loss

    # ---------------------------------------------------------------- accounting
    def _rules(self, model, trainable):
        key = tuple(map(id, trainable))
        if getattr(self, "_rules_key", None) != key:   # a callback may (un)freeze layers
            self._rules_key, self._rule_list = key, check_model(model)[1]
        return self._rule_list

    def _count_step(self):
        q, sigma = self.batch_size / self.n, self.noise_multiplier
        if self.segments and self.segments[-1][:2] == [q, sigma]:
            self.segments[-1][2] += 1
        else:
            self.segments.append([q, sigma, 1])

    def epsilon(self, extra_steps=0):
        """Epsilon after the steps taken (plus ``extra_steps`` more of the current setting)."""
        segments = [tuple(s) for s in self.segments]
        if extra_steps:
            if self.n is None:
                raise PrivacyError("no fit has run yet: the sampling rate is unknown")
            segments.append((self.batch_size / self.n, self.noise_multiplier, extra_steps))
        if not segments:
            return 0.0
        if self.accountant == "rdp":
            return self._rdp_epsilon(segments)
        merged = {}
        for q, s, k in segments:
            merged[(q, s)] = merged.get((q, s), 0) + k
        if len(merged) != 1:
            raise PrivacyError("the PLD accountant here composes one sampling rate and noise "
                               "multiplier; use accountant='rdp' to combine several")
        (q, s), k = next(iter(merged.items()))
        return _acc.epsilon_of_steps([(q, s, k)], self.delta, self.accountant)

    def _rdp_epsilon(self, segments):
        cache = self.__dict__.setdefault("_rdp_cache", {})   # RDP is linear in the steps
        orders = np.asarray(_acc.DEFAULT_ORDERS)
        rdp = np.zeros(len(orders))
        for q, s, k in segments:
            if (q, s) not in cache:
                cache[(q, s)] = _acc.compute_rdp(q, s, 1, orders)
            rdp += cache[(q, s)] * k
        return _acc.get_privacy_spent(orders, rdp, self.delta)[0]

    def privacy_spent(self):
        """(epsilon, delta) of the DP-SGD steps taken so far."""
        return self.epsilon(), self.delta

    # ---------------------------------------------------------------- saving
    def get_config(self):
        """The settings and the accounting so far, as JSON data (``model.save`` keeps them)."""
        return {"l2_norm_clip": "inf" if math.isinf(self.l2_norm_clip) else self.l2_norm_clip,
                "noise_multiplier": self.noise_multiplier,
                "target_epsilon": self.target_epsilon, "target_delta": self.delta,
                "epochs": self.epochs, "batch_size": self.batch_size, "sampling": self.sampling,
                "accountant": self.accountant,
                "max_physical_batch_size": self.physical_batch_size,
                "n": self.n, "segments": [list(s) for s in self.segments]}

    def resume(self, config):
        """Take the accounting of ``get_config()`` data written during this training (a
        BackupAndRestore backup) when it counts more steps than this strategy: a new process
        resuming the run starts from zero, while the interrupted process counted them already."""
        _, _, segments = _checked_config(config)
        if sum(s[2] for s in segments) > sum(s[2] for s in self.segments):
            self.segments = segments


_CONFIG_KEYS = {"l2_norm_clip", "noise_multiplier", "target_epsilon", "target_delta", "epochs",
                "batch_size", "sampling", "accountant", "max_physical_batch_size", "n",
                "segments"}


def _checked_config(config):
    """The settings of ``DPSGD.get_config()`` data read from a file, checked: (make_private's
    keyword arguments, n, segments); ValueError/TypeError saying what is wrong."""
    if not isinstance(config, dict) or set(config) != _CONFIG_KEYS:
        keys = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"the DP-SGD state must be an object with the keys "
                         f"{sorted(_CONFIG_KEYS)}; found {keys}")
    clip = math.inf if config["l2_norm_clip"] == "inf" else config["l2_norm_clip"]
    kwargs = {k: config[k] for k in ("target_delta", "epochs", "batch_size", "sampling",
                                     "accountant", "max_physical_batch_size")}
    kwargs["l2_norm_clip"] = clip
    sigma, target = config["noise_multiplier"], config["target_epsilon"]
    if sigma is None:
        kwargs["target_epsilon"] = target
    else:
        kwargs["noise_multiplier"] = sigma
        if target is not None:   # calibrated at the first fit: keep the target for the record
            _number(target, "target_epsilon", 0.0, strict=True)
    n = _optional_int(config["n"], "n")
    segments = config["segments"]
    if not isinstance(segments, list) or len(segments) > 1_000_000:
        raise ValueError(f"segments must be a list of [q, noise_multiplier, steps]; found "
                         f"{type(segments).__name__}")
    checked = []
    for seg in segments:
        if not isinstance(seg, list) or len(seg) != 3:
            raise ValueError(f"each segment must be [q, noise_multiplier, steps]; found "
                             f"{seg!r:.100}")
        q = _number(seg[0], "q", 0.0, strict=True)
        if q > 1:
            raise ValueError(f"a sampling rate q must be in (0, 1]; found {q!r}")
        steps = _optional_int(seg[2], "steps")
        if steps is None:
            raise ValueError("a segment's steps must be a positive int; found None")
        checked.append([q, _number(seg[1], "noise_multiplier", 0.0), steps])
    if checked and (n is None or kwargs["batch_size"] is None):
        raise ValueError("steps were taken but n or batch_size is missing")
    return kwargs, n, checked


def restore_private(model, config):
    """Make the (compiled) ``model`` private again from ``DPSGD.get_config()`` data, with its
    accounting: what ``load_model`` does for a model saved private. ValueError/TypeError/
    PrivacyError for data that is not such a state."""
    kwargs, n, segments = _checked_config(config)
    make_private(model, **kwargs)
    strategy = model._train_strategy
    if kwargs.get("noise_multiplier") is not None:
        strategy.target_epsilon = config["target_epsilon"]
    strategy.n, strategy.segments = n, segments
    return model


class PrivacyBudget(Callback):
    """Stops ``fit`` of a private model before its epsilon would exceed ``max_epsilon``: after
    each step it stops when one more step would exceed it (and refuses to start when the first
    would). Logs epsilon as ``logs["epsilon"]`` at each epoch end (so History records it), and
    keeps the per-epoch values in ``self.epsilons``."""

    def __init__(self, max_epsilon, verbose=0):
        super().__init__()
        self.max_epsilon = _number(max_epsilon, "max_epsilon", 0.0, strict=True)
        self.verbose = verbose
        self.epsilons = []

    def _strategy(self):
        strategy = getattr(self.model, "_train_strategy", None)
        if not isinstance(strategy, DPSGD):
            raise PrivacyError("PrivacyBudget needs a model made private with make_private")
        return strategy

    def on_train_begin(self, logs=None):
        strategy = self._strategy()
        if strategy.epsilon(extra_steps=1) > self.max_epsilon:
            raise PrivacyError(f"the privacy budget epsilon={self.max_epsilon} is spent: one "
                               f"more step would reach {strategy.epsilon(1):.4g}")

    def on_train_batch_end(self, batch, logs=None):
        if self._strategy().epsilon(extra_steps=1) > self.max_epsilon:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        eps = self._strategy().epsilon()
        self.epsilons.append(eps)
        if logs is not None:
            logs["epsilon"] = eps
        if self.verbose:
            print(f"epoch {epoch + 1}: epsilon = {eps:.4f} (delta = {self._strategy().delta})")
