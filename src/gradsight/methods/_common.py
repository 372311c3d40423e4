"""Helpers shared by the methods: the result record, heat maps, sanity warnings."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backends.base import Backend, Gradients
from ..errors import ZeroGradientWarning

__all__ = ["MethodResult", "input_heatmaps", "spatial_size", "warn_zero", "finish"]


@dataclass
class MethodResult:
    """What a method returns; :func:`gradsight.explain` wraps it in an Explanation."""

    attributions: np.ndarray
    heatmaps: np.ndarray | None
    targets: np.ndarray | None
    scores: np.ndarray
    outputs: np.ndarray
    layer: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def input_channel_axis(bk: Backend, model: Any) -> int:
    return 1 if bk.input_layout(model) == "channels_first" else -1


def spatial_size(bk: Backend, model: Any, shape: tuple[int, ...]) -> tuple[int, int] | None:
    """(H, W) of an image batch in the model's layout, or None for non-image inputs."""
    if len(shape) == 4:
        return (shape[2], shape[3]) if bk.input_layout(model) == "channels_first" else (shape[1], shape[2])
    if len(shape) == 3:
        return (shape[1], shape[2])
    return None


def input_heatmaps(bk: Backend, model: Any, attributions: np.ndarray) -> np.ndarray | None:
    """Per-sample [0, 1] maps at input resolution: max over channels of |attribution|."""
    from .. import render

    if attributions.ndim == 4:
        return render.normalize(render.reduce_channels(attributions, input_channel_axis(bk, model), "absmax"))
    if attributions.ndim == 3:
        return render.normalize(np.abs(attributions))
    return None


def warn_zero(grad: np.ndarray, outputs: np.ndarray, what: str) -> None:
    """Warn when a sample's gradient is exactly zero, naming the likely cause."""
    flat = grad.reshape(len(grad), -1)
    zero = np.flatnonzero(~np.any(flat != 0, axis=1))
    if zero.size == 0:
        return
    probs = outputs.ndim == 2 and outputs.shape[1] > 1 and np.all(outputs >= 0) and np.allclose(outputs.sum(1), 1, atol=1e-3)
    hint = (
        " The outputs look like softmax probabilities, which saturate: explain the logits instead "
        "(remove the final softmax, or pass a target callable on the pre-softmax scores)."
        if probs
        else " Usually a saturated output (softmax/sigmoid): explain logits instead; or the target does "
        "not depend on this part of the network."
    )
    warnings.warn(
        f"{what}: the gradient is exactly zero for sample(s) {zero.tolist()[:10]}.{hint}",
        ZeroGradientWarning,
        stacklevel=4,
    )


def finish(bk: Backend, g: Gradients) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """targets, scores and outputs of a :class:`Gradients` as numpy."""
    ops = bk.ops
    targets = None if g.targets is None else ops.numpy(g.targets).astype(np.int64)
    return targets, ops.numpy(g.scores).astype(np.float32), ops.numpy(g.outputs).astype(np.float32)
