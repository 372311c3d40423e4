"""Helpers shared by the methods: the result record, heat maps, sanity warnings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import maps
from .. import targets as targets_module
from ..backends.base import Backend, Gradients
from ..errors import UnknownOptionError, ZeroGradientWarning, warn
from ._layout import input_kind, normalized

__all__ = ["MethodResult", "positive_int", "pinned_target", "input_heatmaps", "spatial_size", "map_size", "warn_zero", "finish", "outputs_numpy", "per_target", "sample_range"]


@dataclass
class MethodResult:
    """What a method returns; :func:`gradsight.explain` wraps it in an Explanation."""

    attributions: np.ndarray
    heatmaps: np.ndarray | None
    targets: np.ndarray | None
    scores: np.ndarray
    outputs: Any  # np.ndarray, or a list of them when several outputs were selected
    layer: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def input_channel_axis(bk: Backend, model: Any) -> int:
    return 1 if bk.input_layout(model) == "channels_first" else -1


def spatial_size(bk: Backend, model: Any, shape: tuple[int, ...]) -> tuple[int, int] | None:
    """(H, W) of an image batch in the model's layout, or None for other inputs (tables, signals, volumes).

    Several inputs (a packed (N, D) batch): the first image-shaped input's (H, W).
    """
    kind = input_kind(bk, model, shape)
    return (kind.size[0], kind.size[1]) if kind.kind in ("image", "packed") and len(kind.size) == 2 else None


def map_size(bk: Backend, model: Any, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """What maps are resized to: (L,) for signals, (H, W) for images (and packed inputs), (D, H, W) for volumes."""
    kind = input_kind(bk, model, shape)
    return kind.size if kind.spatial else None


def sample_range(bk: Backend, xn: np.ndarray) -> np.ndarray:
    """Each sample's max - min, shaped to broadcast against ``xn`` (N, ...); several (packed)
    inputs: each input's own range over its part of the row (SmoothGrad's noise scale)."""
    packing = bk.settings.inputs
    if packing is not None and xn.ndim == 2:
        return packing.ranges(xn)
    flat = xn.reshape(len(xn), -1)
    out: np.ndarray = (flat.max(1) - flat.min(1)).reshape((-1,) + (1,) * (xn.ndim - 1))
    return out


def per_target(fn: Any, arr: np.ndarray, k_axis: bool) -> Any:
    """``fn`` (written for (N, ...) batches) applied to (N, k, ...) by folding k into the batch."""
    if not k_axis:
        return fn(arr)
    n, k = arr.shape[:2]
    out = fn(arr.reshape((n * k,) + arr.shape[2:]))
    return None if out is None else out.reshape((n, k) + out.shape[1:])


def input_heatmaps(bk: Backend, model: Any, attributions: np.ndarray, k_axis: bool = False) -> np.ndarray | None:
    """Per-sample [0, 1] maps at input resolution: max over channels of |attribution|.

    (N, H, W) for images, (N, L) for signals, (N, D, H, W) for volumes, None for tables
    (see :mod:`._layout`).
    With ``k_axis`` the attributions are (N, k, ...) and the maps (N, k, H, W).
    """
    if k_axis:
        maps_k: np.ndarray | None = per_target(lambda a: input_heatmaps(bk, model, a), attributions, True)
        return maps_k
    kind = input_kind(bk, model, attributions.shape)
    if kind.kind == "image" and attributions.ndim == 4:
        return maps.normalize(maps.reduce_channels(attributions, input_channel_axis(bk, model), "absmax"))
    if kind.kind == "image":  # gray (N, H, W), no channel axis
        return maps.normalize(np.abs(attributions))
    if kind.kind in ("signal", "volume") and kind.channel_axis is not None:  # (N, L) / (N, D, H, W)
        return normalized(np.abs(attributions).max(axis=kind.channel_axis))
    return None


def warn_zero(
    grad: np.ndarray | None, outputs: Any, what: str, k_axis: bool = False, zero: np.ndarray | None = None
) -> None:
    """Warn when a sample's gradient is exactly zero, naming the likely cause.

    With ``k_axis`` the gradient is (N, k, ...) and (sample, rank) pairs are reported.
    ``zero``: the (N,) or (N, k) flags "all zero", where the gradient pass made them (``grad`` unread).
    """
    if zero is None:
        assert grad is not None
        k = grad.shape[1] if k_axis else 1
        flags = ~np.any(grad.reshape(len(grad) * k, -1) != 0, axis=1)
    else:
        k = zero.shape[1] if k_axis else 1
        flags = np.asarray(zero, bool).reshape(-1)
    zero = np.flatnonzero(flags)
    if zero.size == 0:
        return
    which = [(int(z // k), int(z % k)) for z in zero] if k_axis else zero.tolist()
    probs = (
        isinstance(outputs, np.ndarray) and outputs.ndim == 2 and outputs.shape[1] > 1
        and np.all(outputs >= 0) and np.allclose(outputs.sum(1), 1, atol=1e-3)
    )
    hint = (
        " The outputs look like softmax probabilities, which saturate: explain the logits instead "
        "(logits=True, or remove the final softmax)."
        if probs
        else " Usually a saturated output (softmax/sigmoid): explain logits instead; or the target does "
        "not depend on this part of the network."
    )
    warn(
        f"{what}: the gradient is exactly zero for {'(sample, target)' if k_axis else 'sample(s)'} {which[:10]}.{hint}",
        ZeroGradientWarning,
    )


def outputs_numpy(bk: Backend, outputs: Any) -> Any:
    """Model outputs as float32 numpy: one array, or a list when several were selected."""
    arrays = targets_module.outputs_numpy(outputs, bk.ops)
    return [a.astype(np.float32) for a in arrays] if isinstance(arrays, list) else arrays.astype(np.float32)


def finish(bk: Backend, g: Gradients) -> tuple[np.ndarray | None, np.ndarray, Any]:
    """targets, scores and outputs of a :class:`Gradients` as numpy."""
    ops = bk.ops
    targets = None if g.targets is None else ops.numpy(g.targets).astype(np.int64)
    return targets, ops.numpy(g.scores).astype(np.float32), outputs_numpy(bk, g.outputs)


def positive_int(name: str, value: Any) -> None:
    """:class:`UnknownOptionError` unless ``value`` is an int >= 1 (``samples``, ``steps``, ``batch_size``)."""
    if not (isinstance(value, int) and value >= 1):
        raise UnknownOptionError(f"{name} must be a positive int, got {value!r}.")


def pinned_target(bk: Backend, outputs: Any, target: Any) -> tuple[Any, Any, Any, Any]:
    """``(scores, idx, outputs as numpy, target pinned to the clean classes)`` for the clean ``outputs``.

    Methods that run the model on new batches (noisy copies, path points, masked inputs)
    explain the classes chosen on the clean input, whatever the new batches predict.
    """
    ops = bk.ops
    scores, idx = target.scores(outputs, ops)
    clean = outputs_numpy(bk, outputs)
    return scores, idx, clean, target.fixed(clean, ops, None if idx is None else ops.numpy(idx))
