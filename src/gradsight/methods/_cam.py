"""What the CAM family shares: the layer's tensors, several layers at once, the guided variant.

A CAM method supplies one function, ``one(ref, with_input)``, that explains one layer and
returns a :class:`LayerMap`; :func:`run_cam` does the rest the same way for every method:

- ``layer=[a, b, ...]``: each layer's map is resized to the input (linear for signals,
  bilinear for images, trilinear for volumes, ``align_corners=False``), min-max normalised
  per sample, and the maps are averaged;
- ``guided=True``: guided backpropagation times the map resized to the input (the map is
  the unnormalised one for a single layer, as guided Grad-CAM; the averaged one for a list).

Gradient CAMs (:func:`gradient_cam`) differ only in how they weigh ``A`` (the layer's
activation) by ``G`` (the gradient of the score at it): a function ``weigh(ops, A, G, ch,
spatial)`` written with ``bk.ops``, for any number of spatial axes: 1-D signals (N, C, l),
images (N, C, h, w) and volumes (N, C, d, h, w) alike (channels last in Keras). A table
(N, F) has no spatial axes: :func:`~._layout.cam_input` refuses it with a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import maps
from ..backends.base import Backend, Gradients, LayerRef
from ..errors import InputError, ModelError, UnknownOptionError
from ..rules import RULES
from ..targets import Target
from ._common import (
    MethodResult,
    finish,
    input_channel_axis,
    input_heatmaps,
    map_size,
    per_target,
    warn_zero,
)
from ._layout import cam_input, normalized
from ._tokens import Tokens, to_grid

__all__ = ["LayerMap", "LayerWeigh", "cam_layer", "gradient_cam", "grid_activation", "layer_tensors",
           "layer_cam", "run_cam", "warn_layer_zero"]

Weigh = Callable[..., Any]  # weigh(ops, A, G, ch, spatial, *static)


@dataclass(frozen=True)
class LayerWeigh:
    """A CAM's weighing as a :attr:`~gradsight.backends.base.Request.layer_map`: run inside the
    backend's gradient pass (Keras: in its compiled function, no call of its own), on the layer's
    output as it comes, its channels on ``channel_axis`` (:meth:`Backend.activation_channel_axis`).

    Hashable (a module-level ``weigh`` and its ``static`` arguments): compiled functions are kept
    per request. :func:`layer_cam` uses its result only where :func:`layer_tensors` read the layer
    the same way (not for token layers or channels-last grids), so the result never changes.
    """

    weigh: Weigh
    static: tuple[Any, ...] = ()
    channel_axis: int = 1

    def __call__(self, ops: Any, A: Any, G: Any) -> dict[str, Any] | None:
        """``{"map": the CAM, "zero": per sample (and target) whether G is all zero}``: the zero-gradient
        check made where the tensors are (no host copy of G; on a GPU, no transfer)."""
        rank = len(ops.shape(A))
        if rank < 3:
            return None  # no spatial axis: the method says why, from its own path
        A, G, ch, spatial, multi = _with_k_axis(ops, A, G, self.channel_axis % rank)
        cam = self.weigh(ops, A, G, ch, spatial, *self.static)
        rest = tuple(range(2 if multi else 1, len(ops.shape(G))))
        return {"map": cam, "zero": (ops.max(G, rest) == 0) & (ops.min(G, rest) == 0)}


@dataclass
class LayerMap:
    """One layer's map: ``cam`` (N, *spatial) or (N, k, *spatial), float32, and what the pass saw."""

    cam: np.ndarray
    targets: np.ndarray | None
    scores: np.ndarray
    outputs: Any
    layer: str | None
    input_grad: np.ndarray | None = None  # guided backprop from the same pass, when asked


def layer_tensors(
    bk: Backend, model: Any, x: Any, g: Gradients, tokens: Tokens | None = None
) -> tuple[Any, Any, int, tuple[int, ...], bool]:
    """``(A, G, channel axis, spatial axes, multi)`` of a layer's gradients, ready to broadcast.

    Token layers (N, T, C) become grids (N, h, w, C) through :func:`._tokens.to_grid`, as in
    Grad-CAM; 1-D and 3-D feature maps keep their shape. With k targets per sample ``G`` is
    (N, k, ...) and ``A`` gains a size-1 k axis.
    """
    return _with_k_axis(bk.ops, *to_grid(bk, model, x, g.activation, g.layer_grad, g.layer, tokens))


def _with_k_axis(ops: Any, A: Any, G: Any, ch: int) -> tuple[Any, Any, int, tuple[int, ...], bool]:
    """``A`` with a size-1 k axis when ``G`` has k targets per sample, and the (channel, spatial) axes to match."""
    shape = tuple(ops.shape(A))
    spatial = tuple(a for a in range(1, len(shape)) if a != ch)
    multi = len(ops.shape(G)) == len(shape) + 1
    if multi:
        A = ops.reshape(A, (shape[0], 1) + shape[1:])
        ch, spatial = ch + 1, tuple(a + 1 for a in spatial)
    return A, G, ch, spatial, multi


def layer_cam(
    bk: Backend, model: Any, x: Any, g: Gradients, plan: LayerWeigh, tokens: Tokens | None = None
) -> tuple[Any, bool, dict[str, Any]]:
    """``(map, multi, made)``: ``plan``'s weighing of the layer's tensors as :func:`layer_tensors` lays them out.

    Where that layout is the layer's output as it came, channels on ``plan``'s axis, the map is
    the one the gradient pass already made (:attr:`Gradients.layer_map`, the same ops on the same
    tensors) and ``made`` what the pass made with it (``"zero"``: :class:`LayerWeigh`);
    otherwise (token layers, channels-last grids) one fused call on the laid-out tensors, ``made`` empty.
    """
    A, G, ch = to_grid(bk, model, x, g.activation, g.layer_grad, g.layer, tokens)
    as_came = (
        g.layer_map is not None and A is g.activation and G is g.layer_grad
        and ch == plan.channel_axis % len(bk.ops.shape(A))
    )
    A, G, ch, spatial, multi = _with_k_axis(bk.ops, A, G, ch)
    if as_came:
        made = dict(g.layer_map)
        return made.pop("map"), multi, made
    return bk.ops.fuse(plan.weigh, ch, spatial, *plan.static)(A, G), multi, {}  # one compiled call (Keras)


def warn_layer_zero(bk: Backend, g: Gradients, made: dict[str, Any], outputs: Any, what: str, multi: bool) -> None:
    """:func:`warn_zero` for the gradient at the layer: from the pass's flags where it made them."""
    if "zero" in made:
        warn_zero(None, outputs, what, k_axis=multi, zero=bk.ops.numpy(made["zero"]))
    else:
        warn_zero(bk.ops.view(g.layer_grad), outputs, what, k_axis=multi)


def grid_activation(bk: Backend, model: Any, x: Any, A: Any, layer: str | None, tokens: Tokens | None) -> np.ndarray:
    """A layer output as numpy (N, C, h, w) for the methods without a gradient (Eigen-CAM, Score-CAM):
    token layers and channels-last grids through :func:`._tokens.to_grid`, as the gradient CAMs."""
    grid, _, ch = to_grid(bk, model, x, A, None, layer, tokens)
    return np.moveaxis(bk.ops.numpy(grid), ch, 1)


def cam_layer(bk: Backend, model: Any, layer: Any, layer_input: bool = False) -> LayerRef:
    """The :class:`LayerRef` a CAM method captures (its input with ``layer_input``)."""
    ref = bk.resolve_layer(model, "auto" if layer is None else layer)
    if layer_input:
        if ref.auto:
            raise ModelError("layer_input=True needs a named layer (layer=NAME), not the automatic choice.")
        ref = replace(ref, input=True)
    return ref


def gradient_cam(
    bk: Backend, model: Any, x: Any, target: Target, *, layer: Any, call: int, output: Any, guided: bool,
    name: str, weigh: Weigh, tokens: Tokens | None = None, layer_input: bool = False,
) -> MethodResult:
    """A CAM computed from one forward and one backward to the layer, per layer (the weighing in
    the backward's compiled function: :class:`LayerWeigh`)."""
    plan = LayerWeigh(weigh, (), bk.activation_channel_axis())

    def one(ref: Any, with_input: bool) -> LayerMap:
        g = bk.gradients(
            model, x, target, rule=RULES["guided"] if with_input else None, layer=ref, call=call,
            wrt_input=with_input, output=output, layer_rule=RULES["plain"] if with_input else None, layer_map=plan,
        )
        cam_t, multi, made = layer_cam(bk, model, x, g, plan, tokens)
        cam = bk.ops.numpy(cam_t).astype(np.float32)
        targets, scores, outputs = finish(bk, g)
        warn_layer_zero(bk, g, made, outputs, f"{name} at {g.layer!r}", multi)
        gb = bk.ops.numpy(g.input_grad).astype(np.float32) if with_input else None
        return LayerMap(cam, targets, scores, outputs, g.layer, gb)

    return run_cam(bk, model, x, target, layer=layer, output=output, guided=guided, name=name, one=one,
                   layer_input=layer_input)


def run_cam(
    bk: Backend, model: Any, x: Any, target: Target, *, layer: Any, output: Any, guided: bool, name: str,
    one: Callable[[Any, bool], LayerMap], layer_input: bool = False,
) -> MethodResult:
    """Run ``one`` on each layer of ``layer`` (one, or a list; their inputs with ``layer_input``)
    and assemble the result."""
    several = isinstance(layer, (list, tuple))
    layers = list(layer) if several else [layer]
    if not layers:
        raise UnknownOptionError(f"{name}: layer=[] names no layer; pass a layer name, a list of them, or None.")
    if not isinstance(guided, bool):
        raise UnknownOptionError(f"guided must be True or False, got {guided!r}.")
    kind = cam_input(bk, model, x, name)
    size = map_size(bk, model, tuple(bk.ops.shape(x)))
    packed = kind.kind == "packed"  # several inputs: the maps are resized to the first image
    if (guided or several) and (size is None or (kind.channel_axis is None and not packed)):
        raise InputError(
            f"{name} with guided=True or a list of layers needs batches with a channel axis: signals, images "
            "(N, C, H, W) / (N, H, W, C) or volumes."
        )
    refs = [cam_layer(bk, model, lay, layer_input) for lay in layers]  # all checked before any pass
    layer_maps = [one(ref, guided and i == 0) for i, ref in enumerate(refs)]
    first = layer_maps[0]
    multi = first.scores.ndim == 2

    def up(c: np.ndarray) -> np.ndarray:
        out: np.ndarray = per_target(lambda m: maps.resize(m, size) if size else m, c, multi)
        return out

    extras: dict[str, Any] = {}
    if several:
        attr = np.mean([per_target(normalized, up(m.cam), multi) for m in layer_maps], axis=0).astype(np.float32)
        heat = per_target(normalized, attr, multi)
        extras["layers"] = [m.layer for m in layer_maps]
        extras["maps"] = [m.cam for m in layer_maps]
        resized = attr
    else:
        attr = first.cam
        resized = up(attr)
        heat = per_target(normalized, resized, multi)
    layer_name = ",".join(str(m.layer) for m in layer_maps) if several else first.layer
    if guided:
        gb = first.input_grad
        if gb is None:  # methods without a backward pass of their own take one for the guided part
            g = bk.gradients(model, x, target, rule=RULES["guided"], wrt_input=True, output=output)
            gb = bk.ops.numpy(g.input_grad).astype(np.float32)
        warn_zero(gb, first.outputs, "guided_backprop", k_axis=multi)
        axis = input_channel_axis(bk, model)
        extras["cam"] = attr
        attr = (gb * np.expand_dims(resized, axis + 1 if multi and axis > 0 else axis)).astype(np.float32)
        heat = input_heatmaps(bk, model, attr, k_axis=multi)
    return MethodResult(attr, heat, first.targets, first.scores, first.outputs, layer=layer_name, extras=extras)
