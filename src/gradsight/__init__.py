"""gradsight: see why a neural network made a decision.

>>> import gradsight as gs
>>> exp = gs.explain(model, x, method="gradcam")      # PyTorch or Keras model
>>> exp.save("out/", images)                          # overlays as PNG

Importing gradsight imports neither torch nor tensorflow; a backend loads when a
model of its kind arrives.
"""

from __future__ import annotations

import importlib
from typing import Any

from .api import (
    backward_rule,
    deconvnet,
    explain,
    gradcam,
    guided_backprop,
    guided_gradcam,
    predict,
    saliency,
    smoothgrad,
)
from .api_methods import (
    eigencam,
    gradcam_plus_plus,
    hirescam,
    input_x_gradient,
    integrated_gradients,
    layercam,
    scorecam,
    xgradcam,
)
from .api_transformers import attention_rollout
from .errors import (
    GradsightError,
    GradsightWarning,
    InputError,
    LayerNotCalledError,
    LayerNotFoundError,
    ModelError,
    NotDifferentiableError,
    RuleNotAppliedError,
    TargetError,
    UnknownMethodError,
    UnknownOptionError,
    UnsupportedActivationWarning,
    ZeroGradientWarning,
)
from .explanation import Explanation
from .methods import METHODS
from .methods._tokens import Tokens

__version__ = "0.1.0"

__all__ = [
    "explain",
    "predict",
    "saliency",
    "smoothgrad",
    "deconvnet",
    "guided_backprop",
    "gradcam",
    "guided_gradcam",
    "gradcam_plus_plus",
    "xgradcam",
    "layercam",
    "hirescam",
    "eigencam",
    "scorecam",
    "integrated_gradients",
    "input_x_gradient",
    "attention_rollout",
    "backward_rule",
    "Explanation",
    "METHODS",
    "Tokens",
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
    "targets",
    "detection",
    "render",
    "inspect",
    "datasets",
    "explain_dataset",
    "evaluate",
    "__version__",
]

_SUBMODULES = {"targets", "detection", "render", "demo", "inspect", "datasets", "evaluate"}


def __getattr__(name: str) -> Any:
    # Submodules load on first use (render pulls in PIL/matplotlib).
    if name == "explain_dataset":  # the data-set job (gradsight.datasets), loaded on first use
        return importlib.import_module(".datasets", __name__).explain_dataset
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'gradsight' has no attribute {name!r}")
