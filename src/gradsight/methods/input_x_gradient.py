"""Input x gradient (Shrikumar et al. 2016): the input times the gradient of the score."""

from __future__ import annotations

from typing import Any

from ..backends.base import Backend
from ..targets import Target
from ._common import MethodResult, finish, input_heatmaps, warn_zero


def input_x_gradient(bk: Backend, model: Any, x: Any, target: Target, *, output: Any = None) -> MethodResult:
    """x * dy/dx: (N, *input) signed, unnormalised ((N, k, *input) for k targets per sample)."""
    ops = bk.ops
    g = bk.gradients(model, x, target, rule=None, wrt_input=True, output=output)
    targets, scores, outputs = finish(bk, g)
    multi = scores.ndim == 2
    warn_zero(ops.view(g.input_grad), outputs, "input_x_gradient", k_axis=multi)
    shape = tuple(ops.shape(x))
    # the product on the framework's tensors, then one copy to the host (no heat map of the bare gradient)
    xs = ops.reshape(x, (shape[0], 1) + shape[1:]) if multi else x
    attr = ops.numpy(g.input_grad * xs).astype("float32", copy=False)
    return MethodResult(attr, input_heatmaps(bk, model, attr, k_axis=multi), targets, scores, outputs)
