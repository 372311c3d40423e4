"""Score-CAM (Wang et al. 2020): channels weighted by the score of the input they mask."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends.base import Backend
from ..errors import InputError
from ..maps import resize
from ..targets import Target
from ._cam import LayerMap, grid_activation, run_cam
from ._common import MethodResult, map_size, pinned_target, positive_int
from ._layout import cam_input
from ._tokens import Tokens


def channel_scores(
    bk: Backend, model: Any, x: Any, a: np.ndarray, target: Target, output: Any, batch_size: int
) -> np.ndarray:
    """s[k, i] = target score of model(x_i * M_ik), (C, N) or (C, N, k); forward passes of <= ``batch_size`` rows.

    M_ik is channel k of ``a`` (N, C, *spatial) resized to the input (bilinear for images,
    linear for signals, trilinear for volumes; ``align_corners=False``) and min-max
    normalised (0 for a constant channel). Image masks are made on the model's device chunk
    by chunk, so memory does not grow with C; every row is scored on its own, so the scores
    do not depend on ``batch_size``.
    """
    ops = bk.ops
    shape = tuple(ops.shape(x))
    n, c = a.shape[:2]
    spatial = a.shape[2:]
    size = map_size(bk, model, shape)
    assert size is not None
    last = bk.input_layout(model) == "channels_last"
    axes = tuple(range(1, len(size) + 1))
    per_chunk = max(1, batch_size // n)  # channels per pass, each for the whole batch
    img_step = min(n, batch_size)
    scores: np.ndarray | None = None
    for c0 in range(0, c, per_chunk):
        kc = min(per_chunk, c - c0)
        for n0 in range(0, n, img_step):
            n1 = min(n, n0 + img_step)
            rows = kc * (n1 - n0)
            maps = np.ascontiguousarray(np.swapaxes(a[n0:n1, c0 : c0 + kc], 0, 1)).reshape((rows,) + spatial)
            if len(size) == 2:
                m = ops.resize(ops.from_numpy(maps, x), size)
            else:  # signals and volumes: resized in numpy (the masks of one chunk)
                m = ops.from_numpy(resize(maps, size), x)
            lo, hi = ops.min(m, axes, keepdims=True), ops.max(m, axes, keepdims=True)
            m = ops.reshape(ops.safe_div(m - lo, hi - lo), (rows,) + ((*size, 1) if last else (1, *size)))
            part = x if (n0, n1) == (0, n) else x[n0:n1]
            out = bk.forward(model, ops.tile_batch(part, kc) * m, output)
            s, _ = target.rows(n0, n1).repeat(kc).scores(out, ops)
            s = ops.numpy(s).astype(np.float64)
            if scores is None:
                scores = np.zeros((c, n) + s.shape[1:])
            scores[c0 : c0 + kc, n0:n1] = s.reshape((kc, n1 - n0) + s.shape[1:])
    assert scores is not None
    return scores


def scorecam(
    bk: Backend,
    model: Any,
    x: Any,
    target: Target,
    *,
    layer: Any = None,
    call: int = -1,
    batch_size: int = 32,
    guided: bool = False,
    tokens: Tokens | None = None,
    layer_input: bool = False,
    output: Any = None,
) -> MethodResult:
    """ReLU(sum_k w_k A_k), w = softmax_k(s_k), s_k = target score of model(x * M_k).

    M_k is channel k of the layer's activation resized to the input (bilinear,
    ``align_corners=False``, as everywhere in gradsight) and min-max normalised, 0 for a
    constant channel. C x N forward passes, batched by ``batch_size`` rows (peak memory
    flat in C; results independent of ``batch_size``). What the target chooses (e.g. the
    top-1 class) is chosen once on the clean input. ``attributions`` (N, h, w) at the
    layer's resolution ((N, k, h, w) for k targets). ``layer=[...]``: each layer's map
    resized to the input, min-max normalised, averaged. ``guided=True``: guided backprop
    times the map resized to the input.
    """
    positive_int("batch_size", batch_size)
    ops = bk.ops
    kind = cam_input(bk, model, x, "scorecam")
    if kind.channel_axis is None:
        raise InputError("scorecam needs batches with a channel axis to mask: signals, images (N, C, H, W) / "
                         "(N, H, W, C) or volumes.")

    def one(ref: Any, with_input: bool) -> LayerMap:
        outputs, A, name = bk.forward_with_activation(model, x, ref, call, output)
        a = grid_activation(bk, model, x, A, name, tokens).astype(np.float32)  # token layers as grids
        clean_scores, idx, clean, fixed = pinned_target(bk, outputs, target)
        s = channel_scores(bk, model, x, a, fixed, output, batch_size)  # (C, N[, k])
        e = np.exp(s - s.max(axis=0, keepdims=True))
        wts = e / e.sum(axis=0, keepdims=True)
        flat = a.astype(np.float64).reshape(a.shape[:2] + (-1,))
        cam = np.maximum(np.einsum("cn...,ncp->n...p", wts, flat), 0.0)
        cam = cam.reshape(cam.shape[:-1] + a.shape[2:]).astype(np.float32)
        targets = None if idx is None else ops.numpy(idx).astype(np.int64)
        return LayerMap(cam, targets, ops.numpy(clean_scores).astype(np.float32), clean, name)

    return run_cam(bk, model, x, target, layer=layer, output=output, guided=guided, name="scorecam", one=one, layer_input=layer_input)
