"""Guided Grad-CAM (Selvaraju et al. 2017): guided backprop x upsampled Grad-CAM."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import maps
from ..backends.base import Backend
from ..errors import InputError
from ..rules import RULES
from ..targets import Target
from ._cam import cam_layer
from ._common import MethodResult, input_channel_axis, input_heatmaps, map_size, per_target, warn_zero
from ._layout import cam_input
from ._tokens import Tokens
from .gradcam import cam_from, check_gate, gradcam, weighing


def guided_gradcam(
    bk: Backend,
    model: Any,
    x: Any,
    target: Target,
    *,
    layer: Any = None,
    call: int = -1,
    gate: str | None = None,
    tokens: Tokens | None = None,
    layer_input: bool = False,
    output: Any = None,
) -> MethodResult:
    """Guided backprop times the (unnormalised) Grad-CAM map, bilinearly resized to the input.

    One forward pass: the gradient at the layer is the plain one (Grad-CAM's), the input
    gradient the guided one; ``extras["cam"]`` is the Grad-CAM map at the layer.
    ``layer=[...]``: the Grad-CAM maps of the layers resized to the input, min-max
    normalised and averaged, then multiplied with guided backprop.
    """
    if isinstance(layer, (list, tuple)):
        return gradcam(bk, model, x, target, layer=layer, call=call, gate=gate, guided=True, tokens=tokens,
                       layer_input=layer_input, output=output)

    kind = cam_input(bk, model, x, "guided_gradcam")
    size = map_size(bk, model, tuple(bk.ops.shape(x)))
    if size is None or kind.channel_axis is None:
        raise InputError(
            f"guided Grad-CAM weighs guided backprop by a Grad-CAM map, which needs a layer with a spatial "
            f"output; this input has shape {tuple(bk.ops.shape(x))}, not a batch of signals, images (N, C, H, W) / "
            "(N, H, W, C) or volumes with a channel axis. Use guided_backprop or saliency."
        )
    check_gate(gate)
    ref = cam_layer(bk, model, layer, layer_input)
    g = bk.gradients(
        model, x, target, rule=RULES["guided"], layer=ref, call=call, wrt_input=True, output=output,
        layer_rule=RULES["plain"], layer_map=weighing(bk, gate),
    )
    cam = cam_from(bk, model, x, g, gate, heatmaps=False, tokens=tokens)
    multi = cam.scores.ndim == 2
    gb = bk.ops.numpy(g.input_grad).astype(np.float32)
    warn_zero(gb, cam.outputs, "guided_backprop", k_axis=multi)
    up = per_target(lambda c: maps.resize(c, size), cam.attributions, multi)
    axis = input_channel_axis(bk, model)
    attr = (gb * np.expand_dims(up, axis + 1 if multi and axis > 0 else axis)).astype(np.float32)
    return MethodResult(
        attr, input_heatmaps(bk, model, attr, k_axis=multi), cam.targets, cam.scores, cam.outputs, layer=cam.layer,
        extras={"cam": cam.attributions},
    )
