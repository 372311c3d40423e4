"""Vanilla gradient saliency (Simonyan, Vedaldi & Zisserman 2014)."""

from __future__ import annotations

from typing import Any

from ..backends.base import Backend
from ..rules import Rule
from ..targets import Target
from ._common import MethodResult, finish, input_heatmaps, warn_zero


def input_gradient(
    bk: Backend, model: Any, x: Any, target: Target, *, rule: Rule | None, output: Any, name: str
) -> MethodResult:
    """d score / d input, with rectifiers back-propagating by ``rule`` (None: plain).

    (N, *input), or (N, k, *input) for targets with k scores per sample.
    """
    g = bk.gradients(model, x, target, rule=rule, wrt_input=True, output=output)
    targets, scores, outputs = finish(bk, g)
    attr = bk.ops.numpy(g.input_grad).astype("float32")
    multi = scores.ndim == 2
    warn_zero(attr, outputs, name, k_axis=multi)
    return MethodResult(attr, input_heatmaps(bk, model, attr, k_axis=multi), targets, scores, outputs)


def saliency(bk: Backend, model: Any, x: Any, target: Target, *, output: Any = None) -> MethodResult:
    """Gradient of the target score w.r.t. the input: (N, *input) signed, unnormalised."""
    return input_gradient(bk, model, x, target, rule=None, output=output, name="saliency")
