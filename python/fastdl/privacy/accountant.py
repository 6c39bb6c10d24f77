"""Privacy accounting for DP-SGD: the Renyi-DP (RDP) accountant of the sampled Gaussian mechanism.

One DP-SGD step samples each example with probability ``q`` (Poisson sampling), clips each
per-example gradient to L2 norm ``C`` and adds Gaussian noise of standard deviation
``noise_multiplier * C`` to their sum: the sampled Gaussian mechanism. Its RDP at order alpha is
computed as in Mironov, Talwar and Zhang, "Renyi Differential Privacy of the Sampled Gaussian
Mechanism" (2019): a finite binomial sum for integer orders, two converging series for fractional
orders, all in log space so that nothing overflows. RDP composes by addition over steps.

Two RDP -> (epsilon, delta) conversions (the smallest epsilon over the orders is reported):

- ``"improved"`` (the default; Balle et al. 2020, Canonne-Kamath-Steinke 2020, used by current
  Opacus and TensorFlow Privacy)::

      eps = rdp - (log(delta) + log(alpha)) / (alpha - 1) + log((alpha - 1) / alpha)

- ``"classic"`` (Mironov 2017, used by older Opacus and TensorFlow Privacy)::

      eps = rdp - log(delta) / (alpha - 1)

The improved bound is never larger for alpha > 1 and both are valid upper bounds.

``accountant="prv"`` (or ``"pld"``) computes epsilon with the privacy-loss-distribution accountant
of Google's ``dp_accounting`` package (``pip install dp-accounting``), a tighter numerical bound;
it is optional and imported only when asked for.
"""
import math
import warnings

import numpy as np

DEFAULT_ORDERS = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)))
CONVERSIONS = ("improved", "classic")
ACCOUNTANTS = ("rdp", "prv", "pld")


def _log_add(a, b):
    """log(exp(a) + exp(b))."""
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    hi, lo = max(a, b), min(a, b)
    return hi + math.log1p(math.exp(lo - hi))


def _log_sub(a, b):
    """log(exp(a) - exp(b)) for a >= b (-inf when they are equal)."""
    if b == -math.inf:
        return a
    if a == b:
        return -math.inf
    if a < b:
        raise ValueError("the log-space difference is negative")
    return a + math.log(-math.expm1(b - a))


def _log_erfc(x):
    """log(erfc(x)), finite where erfc underflows (x > ~26: its asymptotic series)."""
    value = math.erfc(x)
    if value > 1e-300:
        return math.log(value)
    r = 1.0 / (x * x)
    return -x * x - math.log(x) - 0.5 * math.log(math.pi) + math.log1p(-0.5 * r + 0.75 * r * r)


def _log_a_int(q, sigma, alpha):
    """log A_alpha for an integer order: log sum_i C(alpha, i) q^i (1-q)^(alpha-i)
    exp((i^2 - i) / (2 sigma^2))."""
    log_a = -math.inf
    log_q, log_1q = math.log(q), math.log1p(-q)
    for i in range(alpha + 1):
        log_coef = math.lgamma(alpha + 1) - math.lgamma(i + 1) - math.lgamma(alpha - i + 1)
        term = log_coef + i * log_q + (alpha - i) * log_1q + (i * i - i) / (2 * sigma ** 2)
        log_a = _log_add(log_a, term)
    return log_a


def _log_a_frac(q, sigma, alpha):
    """log A_alpha for a fractional order: the two series of Mironov et al. (2019), Section 3.3,
    summed until their terms fall below exp(-30) of the total."""
    log_a0 = log_a1 = -math.inf
    z0 = sigma ** 2 * math.log(1 / q - 1) + 0.5
    log_q, log_1q = math.log(q), math.log1p(-q)
    i = 0
    coef_sign, log_coef = 1.0, 0.0   # the generalized binomial C(alpha, i): sign, log magnitude
    while True:
        if i:
            factor = (alpha - i + 1) / i
            coef_sign *= math.copysign(1.0, factor)
            log_coef += math.log(abs(factor))
        j = alpha - i
        log_t0 = log_coef + i * log_q + j * log_1q
        log_t1 = log_coef + j * log_q + i * log_1q
        log_e0 = math.log(0.5) + _log_erfc((i - z0) / (math.sqrt(2) * sigma))
        log_e1 = math.log(0.5) + _log_erfc((z0 - j) / (math.sqrt(2) * sigma))
        log_s0 = log_t0 + (i * i - i) / (2 * sigma ** 2) + log_e0
        log_s1 = log_t1 + (j * j - j) / (2 * sigma ** 2) + log_e1
        if coef_sign > 0:
            log_a0 = _log_add(log_a0, log_s0)
            log_a1 = _log_add(log_a1, log_s1)
        else:
            log_a0 = _log_sub(log_a0, log_s0)
            log_a1 = _log_sub(log_a1, log_s1)
        i += 1
        if max(log_s0, log_s1) < _log_add(log_a0, log_a1) - 30 or i > 100000:
            break
    return _log_add(log_a0, log_a1)


def _rdp_one_step(q, sigma, alpha):
    if q == 0:
        return 0.0
    if sigma == 0:
        return math.inf
    if q == 1.0:
        return alpha / (2 * sigma ** 2)
    if math.isinf(alpha):
        return math.inf
    if float(alpha).is_integer():
        log_a = _log_a_int(q, sigma, int(alpha))
    else:
        log_a = _log_a_frac(q, sigma, float(alpha))
    return log_a / (alpha - 1)


def _check_orders(orders):
    orders = np.atleast_1d(np.asarray(DEFAULT_ORDERS if orders is None else orders, dtype=float))
    if orders.ndim != 1 or orders.size == 0 or not np.all(orders > 1):
        raise ValueError(f"orders must be a non-empty list of RDP orders > 1. Received: "
                         f"orders={orders.tolist()!r}")
    return orders


def _check_number(value, name, low, high, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number. Received: {name}={value!r}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if math.isnan(value) or too_low or too_high:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name} must be in {lo}{low}, {high}{hi}. Received: {name}={value!r}")
    return value


def compute_rdp(q, noise_multiplier, steps, orders=None):
    """RDP of ``steps`` compositions of the sampled Gaussian mechanism with sampling rate ``q``
    and noise multiplier ``noise_multiplier``, one value per order (a NumPy array)."""
    q = _check_number(q, "q", 0.0, 1.0)
    sigma = _check_number(noise_multiplier, "noise_multiplier", 0.0, math.inf)
    steps = _check_number(steps, "steps", 0.0, math.inf)
    orders = _check_orders(orders)
    return np.array([_rdp_one_step(q, sigma, a) for a in orders]) * steps


def get_privacy_spent(orders, rdp, delta, conversion="improved"):
    """(epsilon, the order that gives it) for the RDP values ``rdp`` at ``orders`` and the
    target ``delta``; ``conversion`` "improved" or "classic" (see the module docstring)."""
    orders = _check_orders(orders)
    rdp = np.atleast_1d(np.asarray(rdp, dtype=float))
    if rdp.shape != orders.shape:
        raise ValueError(f"rdp and orders must have the same length. Received {rdp.size} RDP "
                         f"values for {orders.size} orders")
    if np.any(rdp < 0) or np.any(np.isnan(rdp)):
        raise ValueError("RDP values must be >= 0")
    delta = _check_number(delta, "delta", 0.0, 1.0, low_open=True, high_open=True)
    if conversion == "improved":
        eps = (rdp - (math.log(delta) + np.log(orders)) / (orders - 1)
               + np.log((orders - 1) / orders))
    elif conversion == "classic":
        eps = rdp - math.log(delta) / (orders - 1)
    else:
        raise ValueError(f"conversion must be one of {CONVERSIONS}. Received: "
                         f"conversion={conversion!r}")
    eps = np.where(np.isnan(eps), math.inf, eps)
    best = int(np.argmin(eps))
    return max(0.0, float(eps[best])), float(orders[best])


def _steps(n, batch_size, epochs):
    n = int(_check_number(n, "n", 1, math.inf))
    batch_size = _check_number(batch_size, "batch_size", 1, n)
    epochs = _check_number(epochs, "epochs", 0, math.inf)
    q = batch_size / n
    return q, int(math.ceil(epochs / q))


def _pld_epsilon(q, sigma, steps, delta):
    try:
        import dp_accounting
    except ImportError:
        raise ImportError("accountant='prv' needs Google's dp_accounting package: "
                          "pip install dp-accounting") from None
    if sigma == 0:
        return math.inf
    accountant = dp_accounting.pld.PLDAccountant()
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    accountant.compose(event)
    return float(accountant.get_epsilon(delta))


def epsilon_of_steps(segments, delta, accountant="rdp", orders=None, conversion="improved"):
    """Epsilon after the training segments ``[(q, noise_multiplier, steps), ...]`` (RDP adds up
    over segments; the PLD accountant composes them)."""
    if accountant == "rdp":
        orders = _check_orders(orders)
        rdp = sum((compute_rdp(q, s, k, orders) for q, s, k in segments), np.zeros(len(orders)))
        return get_privacy_spent(orders, rdp, delta, conversion)[0]
    if accountant in ("prv", "pld"):
        if len(segments) != 1:
            raise ValueError("the PLD accountant here composes one (q, noise_multiplier, steps) "
                             f"segment; received {len(segments)}")
        return _pld_epsilon(*segments[0], delta)
    raise ValueError(f"accountant must be one of {ACCOUNTANTS}. Received: accountant={accountant!r}")


def compute_epsilon(n, batch_size, noise_multiplier, epochs, delta, accountant="rdp",
                    orders=None, conversion="improved"):
    """Epsilon of DP-SGD on ``n`` examples with Poisson sampling rate ``batch_size / n``,
    ``ceil(epochs * n / batch_size)`` steps, noise multiplier ``noise_multiplier``, at ``delta``."""
    q, steps = _steps(n, batch_size, epochs)
    sigma = _check_number(noise_multiplier, "noise_multiplier", 0.0, math.inf)
    delta = _check_number(delta, "delta", 0.0, 1.0, low_open=True, high_open=True)
    return epsilon_of_steps([(q, sigma, steps)], delta, accountant, orders, conversion)


def noise_multiplier_for(target_epsilon, delta, n, batch_size, epochs, accountant="rdp",
                         orders=None, conversion="improved", tolerance=1e-4):
    """The smallest noise multiplier (to ``tolerance``) whose epsilon is at most
    ``target_epsilon`` (bisection; epsilon decreases with the noise)."""
    target = _check_number(target_epsilon, "target_epsilon", 0.0, math.inf, low_open=True)
    delta = _check_number(delta, "delta", 0.0, 1.0, low_open=True, high_open=True)

    def eps(sigma):
        return compute_epsilon(n, batch_size, sigma, epochs, delta, accountant, orders, conversion)

    low, high = 0.0, 1.0
    while eps(high) > target:
        low, high = high, 2 * high
        if high > 1e4:
            raise ValueError(f"target_epsilon={target_epsilon} cannot be reached with delta="
                             f"{delta}, n={n}, batch_size={batch_size}, epochs={epochs}: even "
                             f"noise_multiplier=1e4 gives epsilon {eps(high):.4g}")
    while high - low > tolerance:
        mid = (low + high) / 2
        if eps(mid) > target:
            low = mid
        else:
            high = mid
    return high


def warn_if_delta_large(delta, n):
    """delta >= 1/n allows a mechanism that publishes one whole example: warn."""
    if delta >= 1.0 / n:
        warnings.warn(f"delta={delta} is not below 1/n = {1.0 / n:.3g} for n={n} examples: such a "
                      "delta allows releasing some examples outright; use delta well below 1/n "
                      "(e.g. 1e-5 or 1/n^1.1)", UserWarning, stacklevel=3)
