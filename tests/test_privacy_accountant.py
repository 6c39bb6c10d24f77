"""The RDP accountant of DP-SGD (fastdl.privacy.accountant) against the published figures of
Opacus's and TensorFlow Privacy's accountant tests, and the PLD accountant of dp_accounting."""
import math

import numpy as np
import pytest

from fastdl.privacy import accountant as acc
from fastdl.privacy import compute_epsilon, compute_rdp, get_privacy_spent, noise_multiplier_for

OPACUS_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
TFP_ORDERS = [1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5] + list(range(5, 64)) + [128, 256, 512]


def test_opacus_figure():
    # Opacus's accountant test: q=0.04, sigma=1.5, 2250 steps (n=25000, batch 1000, 90 epochs)
    rdp = compute_rdp(0.04, 1.5, 2250, OPACUS_ORDERS)
    eps, order = get_privacy_spent(OPACUS_ORDERS, rdp, 1e-5)
    assert eps == pytest.approx(7.32911, abs=1e-5)
    assert compute_epsilon(25000, 1000, 1.5, 90, 1e-5, orders=OPACUS_ORDERS) == eps


def test_tf_privacy_figures_use_the_improved_conversion():
    # TensorFlow Privacy's compute_dp_sgd_privacy test figures
    eps = compute_epsilon(60000, 150, 1.3, 15, 1e-5, orders=TFP_ORDERS)
    assert eps == pytest.approx(0.724223, abs=1e-6)
    eps = compute_epsilon(100000, 100, 1.0, 30, 1e-7, orders=TFP_ORDERS)
    assert eps == pytest.approx(1.415499, abs=1e-6)
    # the classic conversion (rdp - log(delta)/(alpha-1)) gives a larger bound, not these figures
    classic = compute_epsilon(60000, 150, 1.3, 15, 1e-5, orders=TFP_ORDERS, conversion="classic")
    assert classic > 0.724223 + 0.1


def test_conversions_follow_their_formulas():
    orders = np.array([1.5, 2.0, 8.0, 32.0])
    rdp = np.array([0.3, 0.5, 2.0, 9.0])
    delta = 1e-6
    improved = rdp - (math.log(delta) + np.log(orders)) / (orders - 1) + np.log((orders - 1) / orders)
    classic = rdp - math.log(delta) / (orders - 1)
    eps, order = get_privacy_spent(orders, rdp, delta)
    assert eps == pytest.approx(improved.min()) and order == orders[np.argmin(improved)]
    assert get_privacy_spent(orders, rdp, delta, "classic")[0] == pytest.approx(classic.min())


def test_rdp_special_cases_match_closed_forms():
    orders = [2, 3.5, 10]
    # q = 1: the plain Gaussian mechanism, alpha / (2 sigma^2) per step
    np.testing.assert_allclose(compute_rdp(1.0, 2.0, 3, orders), 3 * np.array(orders) / 8.0)
    assert np.all(compute_rdp(0.0, 1.0, 10, orders) == 0)
    assert np.all(np.isinf(compute_rdp(0.5, 0.0, 1, orders)))
    # order 2, integer sum: log((1-q)^2 + 2q(1-q) + q^2 e^(1/sigma^2))
    q, s = 0.1, 1.3
    expect = math.log((1 - q) ** 2 + 2 * q * (1 - q) + q * q * math.exp(1 / s ** 2))
    assert compute_rdp(q, s, 1, [2])[0] == pytest.approx(expect, rel=1e-12)


def test_fractional_orders_lie_between_their_integer_neighbours():
    # RDP is non-decreasing in the order
    r = compute_rdp(0.01, 1.1, 1, [2, 2.5, 3, 3.5, 4])
    assert np.all(np.diff(r) > 0)


def test_noise_multiplier_calibration():
    sigma = noise_multiplier_for(8, 1e-5, n=25000, batch_size=1000, epochs=90, orders=OPACUS_ORDERS)
    assert sigma == pytest.approx(1.416, abs=1e-3)
    assert compute_epsilon(25000, 1000, sigma, 90, 1e-5, orders=OPACUS_ORDERS) <= 8
    assert compute_epsilon(25000, 1000, sigma - 2e-4, 90, 1e-5, orders=OPACUS_ORDERS) > 8


@pytest.mark.parametrize("call, match", [
    (lambda: compute_rdp(1.5, 1.0, 1), "q must be in"),
    (lambda: compute_rdp(0.1, -1.0, 1), "noise_multiplier must be in"),
    (lambda: compute_rdp(0.1, 1.0, 1, [0.5, 2]), "orders must be"),
    (lambda: get_privacy_spent([2, 3], [1.0], 1e-5), "same length"),
    (lambda: get_privacy_spent([2], [1.0], 1.0), "delta must be in"),
    (lambda: get_privacy_spent([2], [1.0], 1e-5, "exact"), "conversion must be one of"),
    (lambda: compute_epsilon(100, 200, 1.0, 1, 1e-5), "batch_size must be in"),
    (lambda: compute_epsilon(100, 10, 1.0, 1, 1e-5, accountant="moments"), "accountant must be"),
    (lambda: noise_multiplier_for(1e-9, 1e-5, 100, 100, 1000), "cannot be reached"),
    (lambda: compute_rdp(True, 1.0, 1), "must be a number"),
])
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_rdp_bounds_the_pld_accountant():
    pytest.importorskip("dp_accounting", reason="the PLD cross-check needs dp-accounting")
    rdp = compute_epsilon(25000, 1000, 1.5, 90, 1e-5)
    pld = compute_epsilon(25000, 1000, 1.5, 90, 1e-5, accountant="prv")
    # the PLD accountant is tight up to its discretisation; RDP is an upper bound, known to be
    # loose by some 10% in this regime
    assert pld <= rdp < 1.15 * pld
