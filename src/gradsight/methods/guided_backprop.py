"""Guided backpropagation (Springenberg et al. 2015): relu(upstream) x f'(input)."""

from __future__ import annotations

from typing import Any

from ..backends.base import Backend
from ..rules import RULES
from ..targets import Target
from ._common import MethodResult
from .saliency import input_gradient


def guided_backprop(bk: Backend, model: Any, x: Any, target: Target, *, output: Any = None) -> MethodResult:
    """Input attribution with every ReLU/LeakyReLU back-propagating ``relu(g) * f'(x)``."""
    return input_gradient(bk, model, x, target, rule=RULES["guided"], output=output, name="guided_backprop")
