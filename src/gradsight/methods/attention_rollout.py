"""Attention rollout (Abnar & Zuidema 2020): how much each patch token flows into the class token.

Per attention layer: heads fused (mean, max or min), optionally the weakest
``discard_ratio`` of the entries of each sample dropped (never the class token's own
column), the identity added for the residual path, ``(A + I) / 2``, rows renormalised to
sum to 1; the layers multiplied in order, ``R = A_L ... A_2 A_1``; the map is the class
token's row of ``R`` over the patch tokens, laid out on the patch grid.

Class-agnostic: the target only fills ``targets`` and ``scores``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import maps
from ..backends.base import Backend
from ..errors import ModelError, UnknownOptionError
from ..targets import Target
from ._common import MethodResult, outputs_numpy, spatial_size
from ._tokens import Tokens, token_grid

FUSIONS = ("mean", "max", "min")


def rollout(attentions: list[np.ndarray], head_fusion: str = "mean", discard_ratio: float = 0.0) -> np.ndarray:
    """The rollout matrix (N, T, T) of per-layer attentions (N, heads, T, T), numpy."""
    result: np.ndarray | None = None
    for a in attentions:
        fused = getattr(a, head_fusion)(axis=1).astype(np.float64)
        n, t, _ = fused.shape
        if discard_ratio > 0:
            flat = fused.reshape(n, -1)
            drop = np.argsort(flat, axis=1, kind="stable")[:, : int(flat.shape[1] * discard_ratio)]
            keep_cls = drop % t != 0  # the class token's column stays
            rows = np.repeat(np.arange(n)[:, None], drop.shape[1], axis=1)
            flat[rows[keep_cls], drop[keep_cls]] = 0
            fused = flat.reshape(n, t, t)
        step = (fused + np.eye(t)) / 2
        step /= step.sum(-1, keepdims=True)
        result = step if result is None else step @ result
    assert result is not None
    return result


def attention_rollout(
    bk: Backend,
    model: Any,
    x: Any,
    target: Target,
    *,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    tokens: Tokens | None = None,
    output: Any = None,
) -> MethodResult:
    """The class token's attention rollout over the patch grid: ``attributions`` (N, h, w).

    Needs a model that exposes its attention probabilities (see
    :meth:`Backend.attentions`: Hugging Face models with ``attn_implementation="eager"``,
    ``nn.Softmax`` modules, Keras ``MultiHeadAttention``) and a class token (prefix >= 1).
    """
    if head_fusion not in FUSIONS:
        raise UnknownOptionError(f"head_fusion={head_fusion!r} is not valid; use one of {list(FUSIONS)}.")
    if not 0.0 <= discard_ratio < 1.0:
        raise UnknownOptionError(f"discard_ratio must be in [0, 1); got {discard_ratio!r}.")
    ops = bk.ops
    out, found = bk.attentions(model, x, output)
    attns = [ops.numpy(a).astype(np.float64) for a in found]
    shapes = {a.shape[-1] for a in attns}
    if len(shapes) != 1 or any(a.shape[0] != ops.shape(x)[0] for a in attns):
        raise ModelError(
            f"attention rollout needs global attention over one token sequence in every layer; the layers give "
            f"{sorted({tuple(a.shape) for a in attns})} (windowed attention, as in Swin, cannot be rolled out)."
        )
    size = spatial_size(bk, model, tuple(ops.shape(x)))
    prefix, (h, w) = token_grid(model, size, shapes.pop(), tokens)
    if prefix < 1:
        raise ModelError("attention rollout reads the class token's row, but this model has no prefix token.")
    cls_row = rollout(attns, head_fusion, discard_ratio)[:, 0, prefix:]
    attr = cls_row.reshape(len(cls_row), h, w).astype(np.float32)
    scores, idx = target.scores(out, ops)
    heat = maps.normalize(maps.resize(attr, size) if size else attr)
    targets = None if idx is None else ops.numpy(idx).astype(np.int64)
    return MethodResult(attr, heat, targets, ops.numpy(scores).astype(np.float32), outputs_numpy(bk, out))
