"""Keras's ``keras.preprocessing`` names that tutorials still import (``sequence.pad_sequences``)."""
