"""Pictures of a conv layer's kernels, and per-tensor weight statistics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._locks import locked
from ..backends import backend_for
from ..errors import UnknownOptionError
from ._layers import pick_layer

__all__ = ["filters", "kernel_mosaic", "WeightStat", "weight_stats", "format_weight_stats"]

_GAP = 255  # white between tiles


def _per_kernel(k: np.ndarray) -> np.ndarray:
    """Scale each kernel (all its input channels together) to [0, 1]; a constant kernel is 0.5."""
    lo = k.min(axis=(1, 2, 3), keepdims=True)
    span = k.max(axis=(1, 2, 3), keepdims=True) - lo
    return np.where(span > 0, (k - lo) / np.where(span > 0, span, 1), 0.5)


def kernel_mosaic(kernels: np.ndarray, colour: bool, scale: int, gap: int = 1) -> np.ndarray:
    """The tiles of :func:`filters` as a uint8 array.

    Parameters
    ----------
    kernels:
        ``(O, I, kH, kW)`` (PyTorch's layout).
    colour:
        ``True`` (needs ``I == 3``): one RGB tile per kernel, in a near-square grid.
        ``False``: one row per kernel, one grey tile per input channel.
    scale:
        Each kernel pixel becomes ``scale x scale`` pixels (nearest neighbour).
    gap:
        Pixels between tiles (white); kernels in grey rows are ``2 * gap`` apart.

    Returns
    -------
    uint8 ``(H, W, 3)``. Every kernel is min-max scaled on its own (over its channels
    together), so tiles show each kernel's pattern, not its magnitude.
    """
    o, i, kh, kw = kernels.shape
    norm = np.floor(_per_kernel(kernels.astype(np.float64)) * 255 + 0.5).astype(np.uint8)
    th, tw = kh * scale, kw * scale
    if colour:
        cols = int(np.ceil(np.sqrt(o)))
        rows = -(-o // cols)
        out = np.full((rows * (th + gap) + gap, cols * (tw + gap) + gap, 3), _GAP, np.uint8)
        tiles = norm.transpose(0, 2, 3, 1).repeat(scale, 1).repeat(scale, 2)  # (O, th, tw, 3)
        for n in range(o):
            r, c = divmod(n, cols)
            y, x = gap + r * (th + gap), gap + c * (tw + gap)
            out[y:y + th, x:x + tw] = tiles[n]
        return out
    rgap = 2 * gap
    out = np.full((o * (th + rgap) + rgap - gap, i * (tw + gap) + gap, 3), _GAP, np.uint8)
    tiles = norm.repeat(scale, 2).repeat(scale, 3)  # (O, I, th, tw)
    for n in range(o):
        y = gap + n * (th + rgap)
        for c in range(i):
            x = gap + c * (tw + gap)
            out[y:y + th, x:x + tw] = tiles[n, c][..., None]
    return out


def filters(
    model: Any,
    layer: Any = None,
    path: str | Path | None = None,
    max_kernels: int = 64,
    max_channels: int = 64,
    scale: int | None = None,
) -> Any:
    """A grid picture of a 2-D conv layer's kernels.

    The model's first conv layer on an RGB input is drawn in colour, one tile per
    kernel; any other conv layer as rows of grey tiles (row = kernel, column = input
    channel). Each kernel is normalised on its own to the full range. PyTorch kernels
    ``(O, I, kH, kW)`` and Keras kernels ``(kH, kW, I, O)`` give the same picture.

    Parameters
    ----------
    model:
        A ``torch.nn.Module`` or a ``keras.Model``.
    layer:
        A conv layer's name or object; None: the first conv layer.
    path:
        Also write the picture there as PNG.
    max_kernels, max_channels:
        Draw at most this many kernels (and, in grey rows, input channels); the title
        says when some were left out.
    scale:
        Pixels per kernel pixel; default: about 64 px per colour tile, 12 per grey tile.

    Returns
    -------
    PIL.Image.Image (RGB) with a title naming the layer.

    Raises
    ------
    LayerNotFoundError
        No layer of that name.
    ModelError
        The layer is not a 2-D convolution (the message lists those that are), or the
        model has none.
    """
    from .. import render

    if max_kernels < 1 or max_channels < 1:
        raise UnknownOptionError(f"max_kernels and max_channels must be >= 1; got {max_kernels}, {max_channels}.")
    bk = backend_for(model)
    with locked(model):  # a copy of the weights, not one another thread is changing (evaluate's sanity check)
        convs = bk.conv_layers(model)
        name, conv = pick_layer(bk, model, layer, convs, "2-D convolution")
        k = bk.conv_kernel(conv)
    o, i, kh, kw = k.shape
    colour = conv is convs[0][1] and i == 3
    shown = k[:max_kernels] if colour else k[:max_kernels, :max_channels]
    if scale is None:
        scale = max(1, round((64 if colour else 12) / max(kh, kw)))
    mosaic = kernel_mosaic(shown, colour, int(scale))
    title = f"{name}: {o} kernels of {i}x{kh}x{kw}"
    if not colour:
        title += " (rows: kernels, columns: input channels)"
    if len(shown) < o or shown.shape[1] < i:
        title += f", first {len(shown)} kernels x {shown.shape[1]} channels shown"
    img = render.grid([[mosaic]], titles=[title], pad=8)
    if path is not None:
        render.save_png(img, path)
    return img


@dataclass(frozen=True)
class WeightStat:
    """Statistics of one weight tensor (one row of :func:`weight_stats`)."""

    layer: str
    name: str
    shape: tuple[int, ...]
    mean: float
    std: float
    norm: float
    near_zero: float
    trainable: bool


def weight_stats(model: Any, atol: float = 1e-3) -> list[WeightStat]:
    """Per weight tensor: shape, mean, standard deviation, L2 norm and the fraction near zero.

    Parameters
    ----------
    model:
        A ``torch.nn.Module`` (parameters, then floating-point buffers such as BatchNorm
        running statistics, listed as not trainable) or a ``keras.Model`` (every
        weight of every layer, nested models opened).
    atol:
        An entry is "near zero" when ``|w| <= atol``.

    Returns
    -------
    list of :class:`WeightStat`, in the model's order. ``std`` is the population
    standard deviation (``ddof=0``); ``norm`` is the L2 (Frobenius) norm.
    """
    if not atol >= 0:
        raise UnknownOptionError(f"atol must be >= 0; got {atol!r}.")
    bk = backend_for(model)
    rows = []
    with locked(model):
        weights = list(bk.weights(model))
    for layer, name, w, trainable in weights:
        v = w.astype(np.float64).ravel()
        rows.append(WeightStat(
            layer=layer, name=name, shape=tuple(int(s) for s in w.shape),
            mean=float(v.mean()) if v.size else 0.0, std=float(v.std()) if v.size else 0.0,
            norm=float(np.sqrt(np.sum(v * v))), near_zero=float(np.mean(np.abs(v) <= atol)) if v.size else 0.0,
            trainable=trainable,
        ))
    return rows


def format_weight_stats(rows: list[WeightStat]) -> str:
    """The rows of :func:`weight_stats` as an aligned text table."""
    head = ("layer", "weight", "shape", "mean", "std", "norm", "near 0", "trainable")
    body = [
        (r.layer or "-", r.name, "x".join(map(str, r.shape)) or "()", f"{r.mean:+.4f}", f"{r.std:.4f}",
         f"{r.norm:.4f}", f"{r.near_zero:.1%}", "yes" if r.trainable else "no")
        for r in rows
    ]
    widths = [max(len(t[c]) for t in [head, *body]) for c in range(len(head))]
    right = {3, 4, 5, 6}
    lines = ["  ".join(v.rjust(w) if c in right else v.ljust(w) for c, (v, w) in enumerate(zip(t, widths))).rstrip()
             for t in [head, *body]]
    total = sum(int(np.prod(r.shape)) for r in rows if r.trainable)
    return "\n".join(lines + [f"{len(rows)} tensors, {total:,} trainable values"])
