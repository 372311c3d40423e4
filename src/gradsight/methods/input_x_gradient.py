"""Input x gradient (Shrikumar et al. 2016): the input times the gradient of the score."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends.base import Backend
from ..targets import Target
from ._common import MethodResult, input_heatmaps
from .saliency import input_gradient


def input_x_gradient(bk: Backend, model: Any, x: Any, target: Target, *, output: Any = None) -> MethodResult:
    """x * dy/dx: (N, *input) signed, unnormalised ((N, k, *input) for k targets per sample)."""
    res = input_gradient(bk, model, x, target, rule=None, output=output, name="input_x_gradient")
    xn = bk.ops.numpy(x).astype(np.float32)
    multi = res.scores.ndim == 2
    attr = (res.attributions * (xn[:, None] if multi else xn)).astype(np.float32)
    res.attributions, res.heatmaps = attr, input_heatmaps(bk, model, attr, k_axis=multi)
    return res
