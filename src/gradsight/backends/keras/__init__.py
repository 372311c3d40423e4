"""Keras 3 / TensorFlow backend (imported only when a keras.Model arrives).

Importing this package imports TensorFlow and Keras; ``import gradsight`` does not.
"""

from .backend import KerasBackend
from .models import load_model
from .ops import KerasOps
from .rules import ACTIVATION_OPS, apply_rule

__all__ = ["KerasBackend", "KerasOps", "load_model", "apply_rule", "ACTIVATION_OPS"]
