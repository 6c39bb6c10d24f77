"""Differentially private training (DP-SGD) for fastdl models.

- :mod:`fastdl.privacy.accountant`: the RDP accountant (``compute_epsilon``,
  ``noise_multiplier_for``, ``compute_rdp``, ``get_privacy_spent``).
- :mod:`fastdl.privacy.per_example`: per-example gradients and their norms.
- :mod:`fastdl.privacy.training`: ``make_private(model, ...)``, ``PrivacyBudget``, ``validate``.
"""
from fastdl.privacy.accountant import (compute_epsilon, compute_rdp, get_privacy_spent,
                                       noise_multiplier_for)
from fastdl.privacy.per_example import (PrivacyError, per_example_gradients, per_example_norms,
                                        validate)
from fastdl.privacy.training import PrivacyBudget, make_private

__all__ = ["PrivacyBudget", "PrivacyError", "make_private", "compute_epsilon", "compute_rdp", "get_privacy_spent",
           "noise_multiplier_for", "per_example_gradients", "per_example_norms", "validate"]
