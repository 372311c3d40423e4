"""Numeric operations on attribution maps: scaling, resizing, channel reduction.

numpy only (no Pillow, no matplotlib): the methods use these to make heat maps, and
:mod:`gradsight.render` re-exports them for pictures.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .errors import InputError, close_matches

_REDUCTIONS = ("absmax", "abssum", "sum", "l2")


def _as_maps(maps: Any, keep_float32: bool = False) -> tuple[np.ndarray, tuple[int, ...]]:
    """``maps`` as a float64 (N, H, W) array, and its original shape (tensors accepted);
    ``keep_float32``: a float32 array stays float32 (for callers whose float64 steps promote it)."""
    if hasattr(maps, "detach"):
        maps = maps.detach().cpu().numpy()
    arr = np.asarray(maps)
    if not (keep_float32 and arr.dtype == np.float32):
        arr = arr.astype(np.float64, copy=False)
    if arr.ndim not in (2, 3):
        raise InputError(f"maps must have shape (N, H, W) or (H, W); got shape {arr.shape}.")
    return (arr[None] if arr.ndim == 2 else arr), arr.shape


def _check_percentile(p: float | None) -> None:
    if p is not None and not 0.0 < float(p) <= 100.0:
        raise InputError(f"clip_percentile must be in (0, 100] or None; got {p!r}.")


def normalize(maps: Any, clip_percentile: float | None = None) -> np.ndarray:
    """Scale every map to [0, 1] by its own min and max.

    Parameters
    ----------
    maps : array (N, H, W) or (H, W)
        Any real values.
    clip_percentile : float in (0, 100], optional
        If given, values above this percentile of each sample are set to it before
        scaling (an upper clip only, meant for non-negative maps with a few hot
        pixels; e.g. ``99``).

    Returns
    -------
    float32 array of the input's shape, each sample in [0, 1]. A constant sample
    gives all zeros.
    """
    _check_percentile(clip_percentile)
    # float64 arithmetic throughout; a float32 input is not copied to float64 first: its min and max
    # are exact in either, and ``flat - lo`` promotes it (the same values and roundings, one pass fewer)
    arr, shape = _as_maps(maps, keep_float32=clip_percentile is None)
    flat = arr.reshape(len(arr), -1)
    if clip_percentile is not None and flat.size:
        hi = np.percentile(flat, clip_percentile, axis=1, keepdims=True)
        flat = np.minimum(flat, hi)
    if flat.shape[1] == 0:
        return np.zeros(shape, np.float32)
    lo = flat.min(axis=1, keepdims=True).astype(np.float64)
    span = flat.max(axis=1, keepdims=True) - lo
    out = flat - lo  # a new float64 array: the same operations as np.divide(..., where=span > 0), fewer temporaries
    positive = span > 0
    if positive.all():
        np.divide(out, span, out=out)
    else:
        out = np.divide(out, span, out=np.zeros_like(out), where=positive)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32).reshape(shape)


def normalize_signed(maps: Any, clip_percentile: float | None = None) -> np.ndarray:
    """Scale every map to [-1, 1] by its own largest magnitude; zero stays zero.

    Parameters
    ----------
    maps : array (N, H, W) or (H, W)
        Signed values.
    clip_percentile : float in (0, 100], optional
        If given, the divisor is this percentile of ``|maps|`` of each sample and
        values beyond it are clipped to +-1.

    Returns
    -------
    float32 array of the input's shape in [-1, 1] (all zeros for an all-zero sample).
    """
    _check_percentile(clip_percentile)
    arr, shape = _as_maps(maps)
    flat = arr.reshape(len(arr), -1)
    if flat.shape[1] == 0:
        return np.zeros(shape, np.float32)
    mag = np.abs(flat)
    if clip_percentile is None:
        scale = mag.max(axis=1, keepdims=True)
    else:
        scale = np.percentile(mag, clip_percentile, axis=1, keepdims=True)
    out = np.divide(flat, scale, out=np.zeros_like(flat), where=scale > 0)
    return np.clip(out, -1.0, 1.0).astype(np.float32).reshape(shape)


def _linear_weights(n_in: int, n_out: int, dtype: type) -> tuple[np.ndarray, ...]:
    """Indices and weights of 1-D linear interpolation with half-pixel centres.

    Follows PyTorch's ``align_corners=False`` rule, in the same float precision
    (float32 unless the input is float64): the source coordinate is
    ``fma(n_in / n_out, i + 0.5, -0.5)``, clamped at 0
    below; the upper neighbour is clamped to the last pixel.
    """
    scale = np.float64(dtype(n_in) / dtype(n_out))
    # Exact in float64, then one rounding: the fused multiply-add torch's kernels use.
    src = ((np.arange(n_out) + 0.5) * scale - 0.5).astype(dtype)
    src = np.maximum(src, dtype(0.0))
    i0 = np.minimum(src.astype(np.intp), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = np.clip(src - i0.astype(dtype), dtype(0.0), dtype(1.0))
    return i0, i1, (dtype(1.0) - w1).astype(np.float64), w1.astype(np.float64)


@functools.lru_cache(maxsize=64)
def _interp_matrix(n_in: int, n_out: int, dtype: type) -> np.ndarray:
    """(n_out, n_in) float64 matrix of :func:`_linear_weights`: two weights per row (read-only, cached)."""
    i0, i1, v, w = _linear_weights(n_in, n_out, dtype)
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    np.add.at(m, (rows, i0), v)
    np.add.at(m, (rows, i1), w)
    m.flags.writeable = False
    return m


def resize(maps: Any, size: tuple[int, ...]) -> np.ndarray:
    """Bilinear resize, numerically equal to PyTorch's ``align_corners=False``.

    ``size`` of one or three ints resizes 1-D maps (N, l) -> (N, L) linearly, or volumes
    (N, d, h, w) -> (N, D, H, W) trilinearly (:func:`resize_nd`), as
    ``F.interpolate(mode="linear" / "trilinear", align_corners=False)``.

    Matches ``F.interpolate(x[:, None], size, mode="bilinear", align_corners=False)``
    (no antialiasing) to float32 precision, for up- and down-sampling.

    Parameters
    ----------
    maps : array (N, h, w), (h, w) or (N, h, w, C)
    size : (H, W)
        Output height and width (torch order, not PIL's (width, height)).

    Returns
    -------
    float32 array (N, H, W), (H, W) or (N, H, W, C), matching the input's rank.
    """
    if hasattr(maps, "detach"):
        maps = maps.detach().cpu().numpy()
    if isinstance(size, (tuple, list)) and len(size) in (1, 3):
        return resize_nd(maps, tuple(size))
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim not in (2, 3, 4):
        raise InputError(
            f"resize takes maps of shape (N, h, w), (h, w) or (N, h, w, C); got shape {arr.shape}."
        )
    try:
        out_h, out_w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise InputError(f"size must be a pair (H, W) of positive ints; got {size!r}.") from None
    if out_h < 1 or out_w < 1:
        raise InputError(f"size must be a pair (H, W) of positive ints; got {size!r}.")
    squeeze = arr.ndim == 2
    if squeeze:
        arr = arr[None]
    if arr.shape[1] == 0 or arr.shape[2] == 0:
        raise InputError(f"cannot resize an empty map of shape {np.shape(maps)}.")
    # torch computes coordinates in float64 for float64 input, else in float32
    dtype = np.float64 if np.asarray(maps).dtype == np.float64 else np.float32
    if arr.ndim == 3 and np.isfinite(arr).all():
        # The same two-tap sums as below, as two small matrix products (zero weights add exact zeros;
        # a non-finite value would spread NaN through a whole row, hence the check): 2-6x faster.
        out = (_interp_matrix(arr.shape[1], out_h, dtype) @ arr @ _interp_matrix(arr.shape[2], out_w, dtype).T)
        out = out.astype(np.float32)
        return out[0] if squeeze else out
    y0, y1, vy, wy = _linear_weights(arr.shape[1], out_h, dtype)
    x0, x1, vx, wx = _linear_weights(arr.shape[2], out_w, dtype)
    extra = (1,) * (arr.ndim - 3)  # broadcast over a trailing channel axis
    vy, wy = vy.reshape((1, -1, 1) + extra), wy.reshape((1, -1, 1) + extra)
    # a * v + b * w, each product in place on its gathered copy: the same roundings, fewer temporaries
    rows = arr[:, y0]
    rows *= vy
    other = arr[:, y1]
    other *= wy
    rows += other
    vx, wx = vx.reshape((1, 1, -1) + extra), wx.reshape((1, 1, -1) + extra)
    out = rows[:, :, x0]
    out *= vx
    other = rows[:, :, x1]
    other *= wx
    out += other
    out = out.astype(np.float32)
    return out[0] if squeeze else out


def resize_nd(maps: Any, size: tuple[int, ...]) -> np.ndarray:
    """Linear resize over the last ``len(size)`` axes, numerically equal to PyTorch's ``align_corners=False``.

    One axis per entry of ``size``, each by the same half-pixel rule as :func:`resize`
    (linear interpolation is separable, so this equals ``F.interpolate`` with
    ``mode="linear"`` for (N, l) maps, ``"bilinear"`` for (N, h, w), ``"trilinear"`` for
    (N, d, h, w)).

    Parameters
    ----------
    maps : array (N, *spatial) or one map (*spatial), with ``len(spatial) == len(size)``
    size : tuple of 1 to 3 positive ints

    Returns
    -------
    float32 array (N, *size) or (*size).
    """
    if hasattr(maps, "detach"):
        maps = maps.detach().cpu().numpy()
    arr = np.asarray(maps, dtype=np.float64)
    try:
        out_size = tuple(int(s) for s in size)
    except (TypeError, ValueError):
        raise InputError(f"size must be a tuple of 1 to 3 positive ints; got {size!r}.") from None
    if not 1 <= len(out_size) <= 3 or min(out_size) < 1:
        raise InputError(f"size must be a tuple of 1 to 3 positive ints; got {size!r}.")
    d = len(out_size)
    if arr.ndim not in (d, d + 1):
        raise InputError(
            f"maps to resize to {out_size} must have {d} spatial axes, with or without a batch axis; got shape "
            f"{arr.shape}."
        )
    if 0 in arr.shape[-d:]:
        raise InputError(f"cannot resize an empty map of shape {arr.shape}.")
    dtype = np.float64 if np.asarray(maps).dtype == np.float64 else np.float32
    out = arr
    for j, n_out in enumerate(out_size):
        axis = arr.ndim - d + j
        i0, i1, v, w = _linear_weights(out.shape[axis], n_out, dtype)
        shape = [1] * out.ndim
        shape[axis] = n_out
        out = np.take(out, i0, axis=axis) * v.reshape(shape) + np.take(out, i1, axis=axis) * w.reshape(shape)
    return out.astype(np.float32)


def _absmax(arr: np.ndarray, axis: int) -> np.ndarray:
    """max over ``axis`` of ``|arr|`` (NaN propagates, as ``np.max``). abs and max round nothing, so
    this equals the float64 result; a few channels (images: 3) are folded with ``np.maximum``, one
    plane at a time, which is ~50x faster than ``max`` over a short, strided last axis."""
    if arr.shape[axis] > 16:
        out: np.ndarray = np.abs(arr).max(axis=axis)
        return out
    index: list[Any] = [slice(None)] * arr.ndim
    index[axis] = 0
    out = np.abs(arr[tuple(index)])
    for c in range(1, arr.shape[axis]):
        index[axis] = c
        np.maximum(out, np.abs(arr[tuple(index)]), out=out)
    return out


def reduce_channels(attr: Any, channel_axis: int, how: str = "absmax") -> np.ndarray:
    """Collapse the channel axis of an attribution to one map per sample.

    Parameters
    ----------
    attr : array (N, C, H, W) or (N, H, W, C)
    channel_axis : int
        1 for NCHW, -1 (or 3) for NHWC.
    how : {"absmax", "abssum", "sum", "l2"}
        ``"absmax"``: max over channels of ``|a|`` (Simonyan et al., 2014);
        ``"abssum"``: sum of ``|a|``; ``"sum"``: signed sum; ``"l2"``: Euclidean norm.

    Returns
    -------
    float32 array (N, H, W).
    """
    if how not in _REDUCTIONS:
        raise InputError(
            f"unknown channel reduction {how!r}; valid ones are "
            f"{', '.join(repr(r) for r in _REDUCTIONS)}.{close_matches(how, _REDUCTIONS)}"
        )
    if hasattr(attr, "detach"):
        attr = attr.detach().cpu().numpy()
    arr = np.asarray(attr)
    if arr.ndim != 4:
        raise InputError(
            f"reduce_channels takes attributions of shape (N, C, H, W) or (N, H, W, C); "
            f"got shape {arr.shape}."
        )
    if not -4 <= channel_axis < 4:
        raise InputError(f"channel_axis must be in [-4, 3] for a 4-D array; got {channel_axis}.")
    if how == "absmax" and arr.dtype.kind == "f":
        return _absmax(arr, channel_axis % 4).astype(np.float32)  # exact in the input's own precision
    arr = arr.astype(np.float64)
    if how == "absmax":
        out = np.abs(arr).max(axis=channel_axis)
    elif how == "abssum":
        out = np.abs(arr).sum(axis=channel_axis)
    elif how == "sum":
        out = arr.sum(axis=channel_axis)
    else:
        out = np.sqrt((arr * arr).sum(axis=channel_axis))
    return out.astype(np.float32)
