"""Every exception and warning gradsight raises on bad input.

Each error says what was wrong and what to do; where a name was mistyped it lists
the closest valid names.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import sys
import warnings
from collections.abc import Iterable
from types import FrameType

__all__ = [
    "GradsightError",
    "UnknownMethodError",
    "UnknownOptionError",
    "LayerNotFoundError",
    "LayerNotCalledError",
    "TargetError",
    "InputError",
    "ModelError",
    "NotDifferentiableError",
    "RuleNotAppliedError",
    "GradsightWarning",
    "ZeroGradientWarning",
    "UnsupportedActivationWarning",
    "SaturationWarning",
    "EagerFallbackWarning",
    "OutputChosenWarning",
    "TokenGridError",
    "close_matches",
    "warn",
]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_CONTEXTLIB = contextlib.__file__


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` pointing at the user's line: the first frame outside gradsight."""
    level = 2
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and (
        frame.f_code.co_filename.startswith(_PACKAGE_DIR) or frame.f_code.co_filename == _CONTEXTLIB  # a with-exit
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def close_matches(word: str, choices: Iterable[str], n: int = 5) -> str:
    """Return ``" Did you mean: a, b?"`` for the nearest of ``choices``, or ``""``."""
    found = difflib.get_close_matches(str(word), list(choices), n=n, cutoff=0.5)
    if not found:
        # Substring hits help with long dotted names ("conv3" in "block5_conv3").
        found = [c for c in choices if str(word) and str(word) in c][:n]
    return f" Did you mean: {', '.join(repr(f) for f in found)}?" if found else ""


class GradsightError(Exception):
    """Base class of every error gradsight raises on bad input."""


class UnknownMethodError(GradsightError, ValueError):
    """The method name is not one gradsight knows."""


class UnknownOptionError(GradsightError, TypeError):
    """An option was passed that the method does not take."""


class LayerNotFoundError(GradsightError, KeyError):
    """The layer name or object does not belong to the model."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class LayerNotCalledError(GradsightError, RuntimeError):
    """The layer exists but the forward pass never called it."""


class TargetError(GradsightError, ValueError):
    """The target is out of range, of the wrong length, or of the wrong kind."""


class InputError(GradsightError, ValueError):
    """The input batch has the wrong type, rank, dtype or layout."""


class ModelError(GradsightError, ValueError):
    """The model (or model file) cannot be used as given."""


class NotDifferentiableError(GradsightError, RuntimeError):
    """The target score does not depend differentiably on what was asked for."""


class RuleNotAppliedError(GradsightError, RuntimeError):
    """A backward rule was requested but no activation in the model was overridden."""


class GradsightWarning(UserWarning):
    """Base class of gradsight's warnings."""


class ZeroGradientWarning(GradsightWarning):
    """A sample's gradient is exactly zero (often a saturated softmax)."""


class UnsupportedActivationWarning(GradsightWarning):
    """Activations were met that a backward rule does not cover; they kept their plain gradient."""


class SaturationWarning(GradsightWarning):
    """The model outputs probabilities; their gradients saturate."""


class EagerFallbackWarning(GradsightWarning):
    """The gradient computation could not be compiled (traced) and runs eagerly, more slowly."""


class OutputChosenWarning(GradsightWarning):
    """A structured output (a Hugging Face ``ModelOutput``) had ``logits``, which were explained."""


class TokenGridError(GradsightError, ValueError):
    """A token layer's sequence length does not fit the prefix tokens and grid found or given."""
