"""What every metric shares: maps, targets, scores, pixel rankings, substrates.

Framework-free: the model is only ever called through :func:`gradsight.predict` and
:func:`gradsight.explain`; arrays are numpy in the model's own layout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "as_numpy",
    "channel_axis",
    "class_scores",
    "image_shape",
    "maps_of",
    "pixel_ranks",
    "random_maps",
    "rise_blur",
    "substrate_of",
    "targets_of",
]

Substrate = str | np.ndarray | Callable[[np.ndarray], np.ndarray]


def as_numpy(x: Any) -> np.ndarray:
    """``x`` (numpy, a torch tensor or a TF tensor) as a float32 numpy array; never modified."""
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu().numpy()
    elif hasattr(x, "numpy") and not isinstance(x, np.ndarray):  # TF eager tensor
        x = x.numpy()
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 4:
        raise InputError(f"expected an image batch of rank 4 in the model's layout, got shape {a.shape}")
    return a


def channel_axis(model: Any) -> int:
    """1 for a channels-first model, 3 for a channels-last one (the backend's answer)."""
    from ..backends import backend_for

    return 1 if backend_for(model).input_layout(model) == "channels_first" else 3


def image_shape(x: np.ndarray, axis: int) -> tuple[int, int]:
    """(H, W) of a batch whose channels are on ``axis``."""
    return (x.shape[2], x.shape[3]) if axis == 1 else (x.shape[1], x.shape[2])


def maps_of(
    model: Any, x: np.ndarray, explanation: Any, target: Any, options: dict[str, Any] | None = None
) -> tuple[np.ndarray, Any]:
    """``(maps (N, H, W) float64, explanation or None)`` from an Explanation, an array or a method name."""
    from ..api import explain
    from ..explanation import Explanation

    exp = None
    if isinstance(explanation, str):
        exp = explain(model, x, method=explanation, target=target, **(options or {}))
        explanation = exp
    if isinstance(explanation, Explanation):
        exp = explanation
        if not isinstance(exp.heatmaps, np.ndarray) or exp.heatmaps.ndim != 3:  # None; one per input (a tuple)
            raise InputError(
                f"the {exp.method} explanation has no (N, H, W) heat maps to rank pixels by "
                "(one target per image is needed: not a TopK target)"
            )
        maps = exp.heatmaps
    else:
        maps = np.asarray(explanation)
    maps = np.asarray(maps, dtype=np.float64)
    h, w = image_shape(x, channel_axis(model))
    if maps.shape != (len(x), h, w):
        raise InputError(
            f"maps must have shape (N, H, W) = {(len(x), h, w)} to match the input; got {maps.shape} "
            "(pass exp.heatmaps, or reduce an attribution over its channel axis)"
        )
    if not np.all(np.isfinite(maps)):
        raise InputError("maps contain NaN or inf values; a ranking of pixels needs finite scores")
    return maps, exp


def targets_of(target: Any, exp: Any, outputs: np.ndarray) -> np.ndarray:
    """One class id per sample: ``target`` if given, else the explanation's, else the top-1 of ``outputs``."""
    n, c = outputs.shape[0], outputs.shape[1]
    if target is None and exp is not None and exp.targets is not None and np.ndim(exp.targets) == 1:
        t = np.asarray(exp.targets, dtype=np.int64)
    elif target is None:
        t = outputs.argmax(axis=1).astype(np.int64)
    else:
        try:
            t = np.broadcast_to(np.asarray(target, dtype=np.int64), (n,)).copy()
        except (ValueError, TypeError):
            raise InputError(f"target must be None, an int or {n} ints (one per image); got {target!r}") from None
        if t.shape != (n,):
            raise InputError(f"target must be None, an int or {n} ints (one per image); got {target!r}")
    if np.any((t < 0) | (t >= c)):
        raise InputError(f"target class ids must be in 0..{c - 1}; got {t.tolist()}")
    return t


def class_scores(outputs: np.ndarray, targets: np.ndarray, prob: bool) -> np.ndarray:
    """(B,) score of ``targets`` in ``outputs`` (B, C): softmax probability, or the raw output with ``prob=False``."""
    if outputs.ndim != 2:
        raise InputError(f"evaluation needs (N, classes) outputs; the model gave shape {outputs.shape}")
    o = outputs.astype(np.float64)
    if prob:
        o = o - o.max(axis=1, keepdims=True)
        e = np.exp(o)
        o = e / e.sum(axis=1, keepdims=True)
    return o[np.arange(len(o)), targets]


def pixel_ranks(maps: np.ndarray) -> np.ndarray:
    """(N, H*W) int64: the position of each pixel in the order of decreasing map value.

    Ties are broken by raster order (row-major pixel index): of two equal values the pixel
    with the lower flat index ``row * W + col`` comes first. This is the fixed rule every
    metric uses, so results do not depend on the sort algorithm.
    """
    flat = maps.reshape(len(maps), -1)
    order = np.argsort(-flat, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None, :].repeat(len(flat), 0), axis=1)
    return ranks


def rise_blur(x: np.ndarray, axis: int, klen: int = 11, sigma: float = 5.0) -> np.ndarray:
    """The RISE reference blur: ``conv2d(x, gkern(11, 5), padding=5)`` channel by channel.

    The kernel is ``scipy.ndimage.gaussian_filter`` of an 11x11 unit impulse with sigma 5
    (as in RISE's ``gkern``); the convolution pads with zeros, as ``conv2d`` does.
    """
    from scipy.ndimage import correlate, gaussian_filter

    delta = np.zeros((klen, klen))
    delta[klen // 2, klen // 2] = 1.0
    kern = gaussian_filter(delta, sigma)
    out = np.empty_like(x)
    xs = np.moveaxis(x, axis, 1)
    os_ = np.moveaxis(out, axis, 1)  # a view: writing into it fills out
    for i in range(xs.shape[0]):
        for c in range(xs.shape[1]):
            os_[i, c] = correlate(xs[i, c].astype(np.float64), kern, mode="constant", cval=0.0)
    return out


def substrate_of(substrate: Substrate, x: np.ndarray, axis: int) -> np.ndarray:
    """The substrate image batch (x's shape) named by ``substrate``.

    ``"zeros"``: zeros in the model's input space (after preprocessing); ``"blur"``: the
    RISE blur of ``x``; ``"mean"``: each image's per-channel mean; an array broadcast to
    ``x``'s shape; a callable ``f(x) -> array`` of ``x``'s shape.
    """
    if isinstance(substrate, str):
        if substrate == "zeros":
            return np.zeros_like(x)
        if substrate == "blur":
            return rise_blur(x, axis)
        if substrate == "mean":
            spatial = tuple(a for a in (1, 2, 3) if a != axis)
            return np.broadcast_to(x.mean(axis=spatial, keepdims=True), x.shape).astype(np.float32)
        raise InputError(f"unknown substrate {substrate!r}: use 'zeros', 'blur', 'mean', an array or a callable")
    out = substrate(x.copy()) if callable(substrate) else substrate
    try:
        return np.ascontiguousarray(np.broadcast_to(np.asarray(out, dtype=np.float32), x.shape))
    except ValueError:
        raise InputError(
            f"the substrate must broadcast to the input's shape {x.shape}; got shape {np.shape(out)}"
        ) from None


def random_maps(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(n, height, width) uniform random maps: the chance baseline (a uniform random ranking)."""
    return np.random.default_rng(seed).random((n, height, width))
