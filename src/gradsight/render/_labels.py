"""Pictures that say what they show: a caption (method, class, score, layer) and a colour bar.

A PNG is often read alone, later. :func:`labelled` puts the caption above a picture and
a low-to-high colour bar of the heat map's colormap at its right; gradient images
(deconvnet, guided backprop, guided Grad-CAM: mid-grey is zero) get a grey ramp
marked ``+`` / ``0`` / ``-`` instead. The picture itself is pasted unchanged, so
``plain`` pictures and labelled ones show the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .._names import GRADIENT_IMAGE_METHODS, METHOD_TITLES
from ._color import colorize
from ._compose import _font, _wrap

__all__ = ["GRADIENT_IMAGE_METHODS", "METHOD_TITLES", "caption", "colorbar", "labelled", "with_colorbar"]

_CAM_METHODS = ("gradcam", "guided_gradcam")


def _softmax(row: np.ndarray) -> np.ndarray:
    e = np.exp(row - row.max())
    return e / e.sum()


def caption(
    exp: Any, i: int, j: int | None = None, class_names: Any = None, *, with_method: bool = True
) -> list[str]:
    """Caption lines for sample ``i`` (target ``j`` with a k axis) of an :class:`~gradsight.Explanation`.

    ``["Grad-CAM at layer 'relu4'", "class 3 (star): score 4.21, softmax p 0.93"]``. ``class_names``
    is a sequence or a callable ``index -> name or None``. With ``with_method=False`` the
    method line is left out (grids name the method in the column title).
    """
    lines = []
    if with_method:
        head = METHOD_TITLES.get(exp.method, exp.method)
        if exp.method in _CAM_METHODS and exp.layer:
            head += f" at layer {exp.layer!r}"
        lines.append(head)
    scores = np.asarray(exp.scores)
    score = float(scores[i] if j is None else scores[i, j])
    what = f"score {score:.4g}"
    if exp.targets is not None:
        k = int(exp.targets[i] if j is None else exp.targets[i, j])
        name = class_names(k) if callable(class_names) else (
            class_names[k] if class_names is not None and 0 <= k < len(class_names) else None
        )
        what = f"class {k}{f' ({name})' if name else ''}: {what}"
        outputs = exp.outputs
        if isinstance(outputs, np.ndarray) and outputs.ndim == 2 and outputs.shape[1] > 1 and 0 <= k < outputs.shape[1]:
            row = outputs[i].astype(np.float64)
            probs = np.all(row >= 0) and abs(row.sum() - 1) < 1e-3
            what += f", p {row[k]:.3g}" if probs else f", softmax p {_softmax(row)[k]:.3g}"
    lines.append(what)
    return lines


def colorbar(height: int, cmap: str | None = "jet", width: int | None = None, font_size: int | None = None) -> Image.Image:
    """A vertical low-to-high bar of ``cmap`` (``None``: the grey ramp of gradient images) with its labels."""
    width = width or max(8, height // 16)
    font = _font(font_size or int(np.clip(round(height / 14), 9, 18)))
    ramp = np.linspace(1.0, 0.0, height)[:, None].repeat(width, 1)
    bar = colorize(ramp, cmap) if cmap else np.repeat(np.floor(ramp * 255 + 0.5).astype(np.uint8)[..., None], 3, -1)
    labels = ("high", "low") if cmap else ("+", "-")
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = int(max(measure.textlength(s, font=font) for s in (*labels, "0")))
    gap = 3
    canvas = Image.new("RGB", (width + gap + text_w + 2, height), (255, 255, 255))
    canvas.paste(Image.fromarray(bar, "RGB"), (0, 0))
    draw = ImageDraw.Draw(canvas)
    line_h = int(measure.textbbox((0, 0), "Ag", font=font)[3])
    draw.text((width + gap, 0), labels[0], fill=(0, 0, 0), font=font)
    draw.text((width + gap, height - line_h - 1), labels[1], fill=(0, 0, 0), font=font)
    if not cmap:
        draw.text((width + gap, (height - line_h) // 2), "0", fill=(0, 0, 0), font=font)
    return canvas


def with_colorbar(picture: Image.Image, cmap: str | None, pad: int = 4) -> Image.Image:
    """``picture`` with :func:`colorbar` at its right (same height)."""
    bar = colorbar(max(16, picture.height - 2 * pad), cmap)
    canvas = Image.new("RGB", (picture.width + pad + bar.width + pad, picture.height), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    canvas.paste(bar, (picture.width + pad, pad))
    return canvas


def labelled(picture: Any, lines: Sequence[str], cmap: str | None = "jet", pad: int = 4) -> Image.Image:
    """``picture`` (a PIL image) under the caption ``lines``, with a colour bar at its right.

    ``cmap=None`` marks a signed gradient image (grey ramp ``+``/``0``/``-``). The
    picture's pixels are pasted unchanged at ``(pad, pad + caption height)``.
    """
    picture = picture.convert("RGB")
    bar = colorbar(picture.height, cmap)
    font = _font(int(np.clip(round(picture.width / 12), 10, 18)))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = pad + picture.width + pad + bar.width + pad
    text = [s for line in lines for s in _wrap(measure, line, font, width - 2 * pad)]
    line_h = int(measure.textbbox((0, 0), "Ag", font=font)[3]) + 2
    top = pad + len(text) * line_h + pad
    canvas = Image.new("RGB", (width, top + picture.height + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for n, s in enumerate(text):
        draw.text((pad, pad + n * line_h), s, fill=(0, 0, 0), font=font)
    canvas.paste(picture, (pad, top))
    canvas.paste(bar, (pad + picture.width + pad, top))
    return canvas
