"""Eigen-CAM (Muhammad & Yeasin 2020): the layer's first principal component, no gradient."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends.base import Backend
from ..targets import Target
from ._cam import LayerMap, canonical_activation, check_layer, run_cam
from ._common import MethodResult, outputs_numpy

NOTE = "eigencam ignores the target: its map is the layer's first principal component (targets/scores are reported only)"


def principal_maps(a: np.ndarray) -> np.ndarray:
    """Eigen-CAM maps (N, *spatial) of activations ``a`` (N, C, *spatial), float64 SVD.

    1-D (N, C, l), 2-D (N, C, h, w) and 3-D (N, C, d, h, w) maps alike. Each sample's (h*w, C) matrix is centred over positions and projected on its first
    right singular vector; the sign makes the map correlate positively with sum_k A_k
    (an SVD's sign is arbitrary); then ReLU, like every CAM.
    """
    n, c = a.shape[:2]
    spatial = a.shape[2:]
    hw = int(np.prod(spatial))
    m = a.astype(np.float64).reshape(n, c, hw).transpose(0, 2, 1)  # (N, hw, C)
    m = m - m.mean(axis=1, keepdims=True)
    _, _, vt = np.linalg.svd(m, full_matrices=False)
    proj = np.einsum("npc,nc->np", m, vt[:, 0])  # centred, since m is
    total = a.astype(np.float64).sum(1).reshape(n, hw)
    corr = np.einsum("np,np->n", proj, total - total.mean(1, keepdims=True))
    proj = proj * np.where(corr < 0, -1.0, 1.0)[:, None]
    out: np.ndarray = np.maximum(proj, 0.0).reshape((n,) + spatial).astype(np.float32)
    return out


def eigencam(
    bk: Backend,
    model: Any,
    x: Any,
    target: Target,
    *,
    layer: Any = None,
    call: int = -1,
    guided: bool = False,
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
        check_layer(bk, model, x, tuple(ops.shape(A)), name, "eigencam")
        scores, idx = target.scores(outputs, ops)
        cam = principal_maps(canonical_activation(bk, A))
        scores_np = ops.numpy(scores).astype(np.float32)
        if scores_np.ndim == 2:
            cam = np.repeat(cam[:, None], scores_np.shape[1], axis=1)
        targets = None if idx is None else ops.numpy(idx).astype(np.int64)
        return LayerMap(cam, targets, scores_np, outputs_numpy(bk, outputs), name)

    result = run_cam(bk, model, x, target, layer=layer, output=output, guided=guided, name="eigencam", one=one)
    result.extras["note"] = NOTE
    return result
