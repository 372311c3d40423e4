"""Grad-CAM (Selvaraju et al. 2017), with the optional "guided gradients" gate."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import maps
from ..backends.base import Backend, Gradients
from ..errors import UnknownOptionError
from ..targets import Target
from ._cam import LayerWeigh, cam_layer, gradient_cam, layer_cam, warn_layer_zero
from ._common import MethodResult, finish, map_size, per_target
from ._layout import cam_input, normalized
from ._tokens import Tokens

GATES = (None, "guided")


def check_gate(gate: str | None) -> None:
    if gate not in GATES:
        raise UnknownOptionError(f"gate={gate!r} is not valid; use one of {list(GATES)}.")


def gradcam(
    bk: Backend,
    model: Any,
    x: Any,
    target: Target,
    *,
    layer: Any = None,
    call: int = -1,
    gate: str | None = None,
    guided: bool = False,
    tokens: Tokens | None = None,
    layer_input: bool = False,
    output: Any = None,
) -> MethodResult:
    """Class activation map at ``layer``: ReLU(sum_k alpha_k A_k), alpha_k = mean dy/dA_k.

    With ``gate="guided"`` the gradients are first kept only where A > 0 and dy/dA > 0.
    ``attributions`` is the map at the layer's resolution, (N, h, w), unnormalised;
    (N, k, h, w) for targets with k scores per sample. Token layers (N, T, C) are laid
    out as grids (``tokens``, see :func:`~gradsight.methods._tokens.to_grid`);
    ``layer_input=True`` weighs the layer's input instead of its output. ``layer=[...]``:
    each layer's map resized to the input, min-max normalised, averaged ((N, H, W)).
    ``guided=True``: guided backprop times the map resized to the input (guided Grad-CAM).
    """
    check_gate(gate)
    if guided or isinstance(layer, (list, tuple)):
        return gradient_cam(bk, model, x, target, layer=layer, call=call, output=output, guided=guided,
                            name="gradcam", weigh=_weigh_gated if gate == "guided" else _weigh, tokens=tokens,
                            layer_input=layer_input)
    cam_input(bk, model, x, "gradcam")  # a table has no map: say so before any pass
    ref = cam_layer(bk, model, layer, layer_input)
    g = bk.gradients(model, x, target, layer=ref, call=call, wrt_input=False, output=output,
                     layer_map=weighing(bk, gate))
    return cam_from(bk, model, x, g, gate, tokens=tokens)


def weighing(bk: Backend, gate: str | None) -> LayerWeigh:
    """Grad-CAM's weighing, to run inside the gradient pass (see :class:`~._cam.LayerWeigh`)."""
    return LayerWeigh(_weigh, (gate,), bk.activation_channel_axis())


def _weigh(ops: Any, A: Any, G: Any, ch: int, spatial: tuple[int, ...], gate: str | None = None) -> Any:
    """ReLU(sum_k alpha_k A_k), alpha_k the mean gradient (gated first with ``gate="guided"``).

    Module-level, like every function given to ``Ops.fuse``: Keras compiles one per function."""
    if gate == "guided":
        G = ops.relu(G) * ops.step(A)
    return ops.relu(ops.sum(ops.mean(G, spatial, keepdims=True) * A, axis=ch))


def _weigh_gated(ops: Any, A: Any, G: Any, ch: int, spatial: tuple[int, ...]) -> Any:
    return _weigh(ops, A, G, ch, spatial, "guided")


def cam_from(
    bk: Backend, model: Any, x: Any, g: Gradients, gate: str | None, heatmaps: bool = True, tokens: Tokens | None = None
) -> MethodResult:
    """Grad-CAM's result from :meth:`Backend.gradients` at a layer (``g.activation``, ``g.layer_grad``).

    ``attributions`` (N, h, w), or (N, k, h, w) for k scores per sample ((N, l) on 1-D signals,
    (N, d, h, w) on volumes); ``heatmaps`` the maps resized to the input (linear, bilinear,
    trilinear) and normalised (None when ``heatmaps=False``).
    """
    ops = bk.ops
    # (N, k, ...) gradients (multi): one per target, one activation per sample
    cam_t, multi, made = layer_cam(bk, model, x, g, weighing(bk, gate), tokens)
    cam = ops.numpy(cam_t).astype(np.float32)
    targets, scores, outputs = finish(bk, g)
    warn_layer_zero(bk, g, made, outputs, f"gradcam at {g.layer!r}", multi)
    size = map_size(bk, model, tuple(ops.shape(x)))
    heat = per_target(lambda c: normalized(maps.resize(c, size) if size else c), cam, multi) if heatmaps else None
    return MethodResult(cam, heat, targets, scores, outputs, layer=g.layer)
