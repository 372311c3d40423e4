"""Guided Grad-CAM (Selvaraju et al. 2017): guided backprop x upsampled Grad-CAM."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends.base import Backend
from ..errors import InputError
from ..targets import Target
from ._common import MethodResult, input_channel_axis, input_heatmaps, per_target, spatial_size
from .gradcam import gradcam
from .guided_backprop import guided_backprop


def guided_gradcam(
    bk: Backend,
    model: Any,
    x: Any,
    target: Target,
    *,
    layer: Any = None,
    call: int = -1,
    gate: str | None = None,
    output: Any = None,
) -> MethodResult:
    """Guided backprop times the (unnormalised) Grad-CAM map, bilinearly resized to the input."""
    from .. import render

    size = spatial_size(bk, model, tuple(bk.ops.shape(x)))
    if size is None or len(bk.ops.shape(x)) != 4:
        raise InputError("guided Grad-CAM needs image batches (N, C, H, W) or (N, H, W, C).")
    cam = gradcam(bk, model, x, target, layer=layer, call=call, gate=gate, output=output)
    # Explain what Grad-CAM explained: classes (top-1 / top-k), pixels or cells chosen once.
    gb_target = target.fixed(cam.outputs, bk.ops, cam.targets)
    gb = guided_backprop(bk, model, x, gb_target, output=output)
    multi = cam.scores.ndim == 2
    up = per_target(lambda c: render.resize(c, size), cam.attributions, multi)
    axis = input_channel_axis(bk, model)
    attr = (gb.attributions * np.expand_dims(up, axis + 1 if multi and axis > 0 else axis)).astype(np.float32)
    return MethodResult(
        attr, input_heatmaps(bk, model, attr, k_axis=multi), cam.targets, cam.scores, cam.outputs, layer=cam.layer,
        extras={"cam": cam.attributions},
    )
