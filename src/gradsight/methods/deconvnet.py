"""Deconvnet (Zeiler & Fergus 2014): rectifiers pass f(upstream gradient) backwards."""

from __future__ import annotations

from typing import Any

from ..backends.base import Backend
from ..rules import RULES
from ..targets import Target
from ._common import MethodResult
from .saliency import input_gradient


def deconvnet(bk: Backend, model: Any, x: Any, target: Target, *, output: Any = None) -> MethodResult:
    """Input attribution with every ReLU/LeakyReLU back-propagating ``f(g)``."""
    return input_gradient(bk, model, x, target, rule=RULES["deconvnet"], output=output, name="deconvnet")
