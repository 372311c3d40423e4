"""Eigen-CAM (Muhammad & Yeasin 2020): the layer's first principal component, no gradient."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends.base import Backend
from ..targets import Target
from ._cam import LayerMap, run_cam
from ._common import MethodResult, outputs_numpy
from ._tokens import Tokens, to_grid

NOTE = "eigencam ignores the target: its map is the layer's first principal component (targets/scores are reported only)"


def principal_maps(ops: Any, A: Any, channel_axis: int) -> np.ndarray:
    """Eigen-CAM maps (N, h, w) of 4-D activations ``A`` (a framework tensor, channels at ``channel_axis``).

    Each sample's (h*w, C) matrix is centred over positions and projected on its first
    right singular vector (:meth:`Ops.principal_projection`: float64, on ``A``'s device);
    the sign makes the map correlate positively with sum_k A_k (an SVD's sign is
    arbitrary); then ReLU, like every CAM.
    """
    out: np.ndarray = ops.numpy(ops.fuse(_signed_projection, channel_axis)(A)).astype(np.float32)
    return out


def _signed_projection(ops: Any, A: Any, channel_axis: int) -> Any:
    proj = ops.principal_projection(A, channel_axis)  # (N, h, w), centred over positions
    total = ops.sum(A, axis=channel_axis)
    total = total - ops.mean(total, (1, 2), keepdims=True)
    corr = ops.sum(proj * total, axis=(1, 2), keepdims=True)  # (N, 1, 1)
    flip = 1.0 - 2.0 * ops.step(-corr)  # -1 where the correlation is negative
    return ops.relu(proj * flip)


def _principal_maps_nd(ops: Any, A: Any, channel_axis: int) -> np.ndarray:
    """:func:`principal_maps` of a 1-D (N, C, l) or 3-D (N, C, d, h, w) layer too (channels at ``channel_axis``):
    its positions are laid out as an (N, C, positions, 1) map (channels last: (N, positions, 1, C)) and back."""
    shape = tuple(ops.shape(A))
    if len(shape) == 4:
        return principal_maps(ops, A, channel_axis)
    ch = channel_axis % len(shape)
    n, c = shape[0], shape[ch]
    spatial = tuple(s for i, s in enumerate(shape) if i not in (0, ch))
    p = int(np.prod(spatial))
    flat = ops.reshape(A, (n, c, p, 1) if ch == 1 else (n, p, 1, c))
    return principal_maps(ops, flat, 1 if ch == 1 else 3).reshape((n,) + spatial)


def eigencam(
    bk: Backend,
    model: Any,
    x: Any,
    target: Target,
    *,
    layer: Any = None,
    call: int = -1,
    guided: bool = False,
    tokens: Tokens | None = None,
    layer_input: bool = False,
    output: Any = None,
) -> MethodResult:
    """ReLU of the projection of the centred activations (h*w x C) on their first right singular vector.

    No gradient and one forward pass: the target is ignored by the map (``extras["note"]``
    says so; ``targets``/``scores`` report it, and with k targets per sample the same map
    is repeated k times). The sign is chosen so the map correlates positively with
    sum_k A_k. ``attributions`` (N, h, w) at the layer's resolution, unnormalised.
    ``layer=[...]``: each layer's map resized to the input, min-max normalised, averaged.
    ``guided=True``: guided backprop (for the target) times the map resized to the input.
    """
    ops = bk.ops

    def one(ref: Any, with_input: bool) -> LayerMap:
        outputs, A, name = bk.forward_with_activation(model, x, ref, call, output)
        scores, idx = target.scores(outputs, ops)
        grid, _, ch = to_grid(bk, model, x, A, None, name, tokens)  # token layers and NHWC grids as grids
        cam = _principal_maps_nd(ops, grid, ch)  # 1-D and 3-D layers too
        scores_np = ops.numpy(scores).astype(np.float32)
        if scores_np.ndim == 2:
            cam = np.repeat(cam[:, None], scores_np.shape[1], axis=1)
        targets = None if idx is None else ops.numpy(idx).astype(np.int64)
        return LayerMap(cam, targets, scores_np, outputs_numpy(bk, outputs), name)

    result = run_cam(bk, model, x, target, layer=layer, output=output, guided=guided, name="eigencam", one=one, layer_input=layer_input)
    result.extras["note"] = NOTE
    return result
