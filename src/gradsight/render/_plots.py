"""Pictures of explanations that are not images: tables, 1-D signals, volumes and video.

- :func:`feature_bars`: one sample's (F,) attributions as a bar chart of its top features,
  signed (red pushes the score up, blue down), largest magnitude first;
- :func:`signal_plot`: a signal (C, L) as lines over its heat map (L,), drawn as a coloured
  band behind the lines and as a solid strip under them;
- :func:`volume_strip`: a volume's heat map (D, H, W) as a strip of slices (or video
  frames), each overlaid on its slice of the volume.

Pillow and numpy only (matplotlib only for the colormap), like the rest of :mod:`gradsight.render`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..errors import InputError
from ..maps import resize
from ._color import colorize
from ._compose import _font, grid, overlay

__all__ = ["NEGATIVE", "POSITIVE", "feature_bars", "signal_plot", "volume_strip"]

POSITIVE = (214, 39, 40)
"""Bar colour of features that raise the score (red)."""

NEGATIVE = (31, 119, 180)
"""Bar colour of features that lower it (blue)."""

_LINES = ((20, 20, 20), (90, 90, 90), (150, 40, 150), (20, 110, 40), (140, 80, 10))


def _array(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def feature_bars(
    values: Any,
    names: Sequence[str] | None = None,
    top: int | None = 10,
    title: str | None = None,
    width: int = 520,
) -> Image.Image:
    """A horizontal bar chart of one sample's feature attributions, largest magnitude first.

    Parameters
    ----------
    values : array (F,) (or (1, F))
        Signed attributions of one sample (e.g. ``exp.attributions[i]`` of a tabular model).
    names : sequence of F str, optional
        Feature names; default ``"feature 0"``, ``"feature 1"``, ...
    top : int or None
        Show the ``top`` features of largest ``|value|`` (None: all).
    title : str, optional
        A line above the chart.
    width : int
        Picture width in pixels.

    Returns
    -------
    PIL.Image.Image, RGB: one row per feature, a bar from the zero line to its value (red
    for positive, blue for negative) and the value written at the bar's end.
    """
    v = _array(values)
    if v.ndim == 2 and v.shape[0] == 1:
        v = v[0]
    if v.ndim != 1 or v.size == 0:
        raise InputError(f"feature_bars draws one sample's attributions, shape (F,); got shape {v.shape}.")
    if not np.all(np.isfinite(v)):
        raise InputError("feature_bars got NaN or inf values.")
    if names is None:
        names = [f"feature {j}" for j in range(len(v))]
    names = [str(n) for n in names]
    if len(names) != len(v):
        raise InputError(f"got {len(names)} feature names for {len(v)} features.")
    if top is not None and (not isinstance(top, (int, np.integer)) or top < 1):
        raise InputError(f"top must be a positive int or None; got {top!r}.")
    order = np.argsort(-np.abs(v), kind="stable")[: len(v) if top is None else int(top)]

    font = _font(13)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = int(measure.textbbox((0, 0), "Ag", font=font)[3])
    row_h, pad = max(20, line_h + 8), 8
    labels = [f"{v[j]:+.3g}" for j in order]
    name_w = int(max(measure.textlength(names[j], font=font) for j in order)) + pad
    text_w = int(max(measure.textlength(s, font=font) for s in labels)) + 4
    head = line_h + pad if title else 0
    plot_w = max(60, width - 2 * pad - name_w - 2 * text_w)
    height = pad + head + len(order) * row_h + pad
    canvas = Image.new("RGB", (pad + name_w + 2 * text_w + plot_w + pad, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, pad), title, fill=(0, 0, 0), font=font)
    shown = v[order]
    neg, pos = bool((shown < 0).any()), bool((shown > 0).any())
    left = pad + name_w + text_w  # the plot area spans [left, left + plot_w]
    zero = left + (plot_w // 2 if neg and pos else plot_w if neg else 0)
    reach = plot_w // 2 if neg and pos else plot_w
    scale = float(np.abs(shown).max()) or 1.0
    top_y = pad + head
    for r, (j, label) in enumerate(zip(order, labels)):
        y = top_y + r * row_h
        mid = y + (row_h - line_h) // 2
        draw.text((pad + name_w - pad - measure.textlength(names[j], font=font), mid), names[j], fill=(0, 0, 0),
                  font=font)
        length = int(round(abs(v[j]) / scale * reach))
        if v[j] >= 0:
            draw.rectangle((zero, y + 3, zero + max(length, 1), y + row_h - 4), fill=POSITIVE if v[j] > 0 else (0, 0, 0))
            draw.text((zero + length + 3, mid), label, fill=(0, 0, 0), font=font)
        else:
            draw.rectangle((zero - length, y + 3, zero, y + row_h - 4), fill=NEGATIVE)
            draw.text((zero - length - 3 - measure.textlength(label, font=font), mid), label, fill=(0, 0, 0),
                      font=font)
    draw.line((zero, top_y, zero, top_y + len(order) * row_h), fill=(0, 0, 0), width=1)
    return canvas


def signal_plot(
    signal: Any,
    heat: Any,
    cmap: str = "jet",
    alpha: float = 0.5,
    size: tuple[int, int] = (640, 200),
    band: int = 14,
) -> Image.Image:
    """A signal as lines over its heat map: a coloured band behind the lines and a strip under them.

    Parameters
    ----------
    signal : array (C, L) (channels first), (L,), or None
        The sample's values; each channel is one line, all on one vertical scale. None:
        the band alone.
    heat : array (l,) in [0, 1]
        The heat map (e.g. ``exp.heatmaps[i]``); linearly resized to the plot's width.
    cmap : str
        Matplotlib colormap of the band.
    alpha : float in [0, 1]
        Weight of the band's colour behind the lines (the strip underneath is drawn solid).
    size : (width, height)
        Of the plot area in pixels, without the strip.
    band : int
        Height of the strip in pixels.

    Returns
    -------
    PIL.Image.Image, RGB, ``size[0]`` wide and ``size[1] + band`` high.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise InputError(f"alpha must be in [0, 1]; got {alpha!r}.")
    h_map = _array(heat)
    if h_map.ndim != 1 or h_map.size == 0:
        raise InputError(f"heat must be one sample's map of shape (L,); got shape {h_map.shape}.")
    width, height = (int(s) for s in size)
    if width < 2 or height < 2:
        raise InputError(f"size must be (width, height) of at least 2 pixels each; got {size!r}.")
    colour = colorize(resize(h_map[None], (width,))[0], cmap).astype(np.float64)  # (width, 3)
    behind = (1.0 - alpha) * 255.0 + alpha * colour
    pixels = np.empty((height + band, width, 3), np.uint8)
    pixels[:height] = np.floor(np.clip(behind, 0, 255) + 0.5).astype(np.uint8)[None]
    pixels[height:] = colour.astype(np.uint8)[None]
    canvas = Image.fromarray(pixels, "RGB")
    if signal is None:
        return canvas
    s = _array(signal)
    if s.ndim == 1:
        s = s[None]
    if s.ndim != 2 or s.shape[1] < 2:
        raise InputError(f"signal must be (C, L) channels first or (L,), with L >= 2; got shape {s.shape}.")
    lo, hi = float(s.min()), float(s.max())
    span = hi - lo or 1.0
    margin = 4
    xs = np.linspace(0, width - 1, s.shape[1])
    draw = ImageDraw.Draw(canvas)
    for c, row in enumerate(s):
        ys = margin + (hi - row) / span * (height - 1 - 2 * margin)
        draw.line(list(zip(xs.tolist(), ys.tolist())), fill=_LINES[c % len(_LINES)], width=2)
    return canvas


def volume_strip(
    heat: Any,
    volume: Any = None,
    cmap: str = "jet",
    alpha: float = 0.5,
    most: int = 8,
    tile: int = 96,
    label: str = "slice",
) -> Image.Image:
    """A volume's heat map as a strip of slices (or video frames) along its first axis.

    Parameters
    ----------
    heat : array (D, H, W) in [0, 1]
        The heat map of one sample (e.g. ``exp.heatmaps[i]``).
    volume : array (D, H, W) or (D, H, W, C) channels last, optional
        The sample itself; each slice is shown in gray (C = 1 or C > 3: the mean over
        channels) or colour (C = 3), min-max scaled over the whole volume. None: the
        coloured heat maps alone.
    cmap, alpha
        As :func:`~gradsight.render.overlay`.
    most : int
        At most this many slices, evenly spaced (first and last included).
    tile : int
        Side of each slice's square cell in pixels.
    label : str
        Title word of each slice ("slice", "frame", ...), followed by its index.

    Returns
    -------
    PIL.Image.Image, RGB: one titled column per slice.
    """
    h = _array(heat)
    if h.ndim != 3 or 0 in h.shape:
        raise InputError(f"heat must be one sample's map of shape (D, H, W); got shape {h.shape}.")
    if not isinstance(most, (int, np.integer)) or most < 1:
        raise InputError(f"most must be a positive int; got {most!r}.")
    depth = h.shape[0]
    picks = list(range(depth)) if depth <= most else np.unique(np.linspace(0, depth - 1, most).round()).astype(int).tolist()
    frames = None
    if volume is not None:
        v = _array(volume)
        if v.ndim == 4 and v.shape[-1] != 3:
            v = v.mean(-1)
        if v.shape[:3] != h.shape:
            raise InputError(f"volume of shape {v.shape} does not match heat of shape {h.shape} (D, H, W).")
        lo, hi = float(v.min()), float(v.max())
        frames = (v - lo) / ((hi - lo) or 1.0)
    tiles = []
    for d in picks:
        if frames is None:
            tiles.append(Image.fromarray(colorize(h[d], cmap), "RGB"))
        else:
            tiles.append(overlay(frames[d], h[d], cmap=cmap, alpha=alpha))
    return grid([tiles], titles=[f"{label} {d}" for d in picks], tile_size=int(tile))
