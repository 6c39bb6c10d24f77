"""Keras's preprocessing and augmentation layers on NumPy (see ``base`` for what they share)."""
