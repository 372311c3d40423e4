"""Guided Grad-CAM (Selvaraju et al. 2017): guided backprop x upsampled Grad-CAM."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends.base import Backend
from ..errors import InputError
from ..targets import ClassTarget, Target
from ._common import MethodResult, input_channel_axis, input_heatmaps, spatial_size
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
    # Explain the classes Grad-CAM explained (top-1 resolved once).
    gb_target = ClassTarget(cam.targets) if cam.targets is not None else target
    gb = guided_backprop(bk, model, x, gb_target, output=output)
    up = render.resize(cam.attributions, size)
    attr = (gb.attributions * np.expand_dims(up, input_channel_axis(bk, model))).astype(np.float32)
    return MethodResult(
        attr, input_heatmaps(bk, model, attr), cam.targets, cam.scores, cam.outputs, layer=cam.layer,
        extras={"cam": cam.attributions},
    )
