"""Pictures: heatmap overlays, labelled grids, PNG files."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gradsight.errors import InputError

from ..maps import resize
from ._color import colorize, to_rgb_uint8


def _single_rgb(image: Any, what: str = "image") -> np.ndarray:
    rgb = to_rgb_uint8(image)
    if rgb.shape[0] != 1:
        raise InputError(f"{what} must be a single image; got a batch of {rgb.shape[0]}.")
    return rgb[0]


def overlay(image: Any, heatmap: Any, cmap: str = "jet", alpha: float = 0.5) -> Image.Image:
    """Blend a colourised heatmap over an image.

    Parameters
    ----------
    image : array (H, W, 3) uint8, or anything :func:`to_rgb_uint8` takes (one image)
    heatmap : array (h, w) (or (1, h, w)) with values in [0, 1]
        Resized bilinearly (:func:`resize`) to (H, W), then colourised.
    cmap : str
        Matplotlib colormap name.
    alpha : float in [0, 1]
        Weight of the colour: ``out = (1 - alpha) * image + alpha * colour``.

    Returns
    -------
    PIL.Image.Image, RGB, of size (W, H).
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise InputError(f"alpha must be in [0, 1]; got {alpha!r}.")
    rgb = _single_rgb(image)
    if hasattr(heatmap, "detach"):
        heatmap = heatmap.detach().cpu().numpy()
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.ndim == 3 and heat.shape[0] == 1:
        heat = heat[0]
    if heat.ndim != 2:
        raise InputError(f"heatmap must have shape (h, w) or (1, h, w); got shape {heat.shape}.")
    colour = colorize(resize(heat, rgb.shape[:2]), cmap).astype(np.float64)
    out = (1.0 - alpha) * rgb.astype(np.float64) + alpha * colour
    return Image.fromarray(np.floor(np.clip(out, 0, 255) + 0.5).astype(np.uint8), "RGB")


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType
    except (TypeError, ImportError, OSError, AttributeError):
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> list[str]:
    """Greedy word wrap of ``text`` to lines no wider than ``width`` pixels."""
    lines: list[str] = []
    for para in str(text).split("\n"):
        line = ""
        for word in para.split(" "):
            trial = f"{line} {word}" if line else word
            if draw.textlength(trial, font=font) <= width or not line:
                line = trial
            else:
                lines.append(line)
                line = word
            while draw.textlength(line, font=font) > width and len(line) > 1:
                cut = len(line) - 1  # break an over-long word by characters
                while cut > 1 and draw.textlength(line[:cut], font=font) > width:
                    cut -= 1
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return lines


def _tile(tile: Any) -> Image.Image | None:
    if tile is None:
        return None
    if isinstance(tile, Image.Image):
        return tile.convert("RGB")
    return Image.fromarray(_single_rgb(tile, "each tile"), "RGB")


def grid(
    tiles: Sequence[Sequence[Any]],
    titles: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    tile_size: int | None = None,
    pad: int = 4,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Lay tiles out in rows, with column titles and row labels.

    Parameters
    ----------
    tiles : list of rows, each a list of PIL images or uint8 arrays (H, W, 3) / (H, W)
        A flat list of images is one row; ``None`` leaves a cell empty; rows may be short.
    titles : list of str, optional
        One per column (at most), drawn centred above the columns, wrapped to the tile width.
    row_labels : list of str, optional
        One per row (at most), drawn at the left, vertically centred.
    tile_size : int, optional
        Every tile is scaled (bicubic, aspect kept, centred) to fit a square of this side.
        Default: a cell as large as the largest tile.
    pad : int
        Pixels between and around tiles.
    background : (r, g, b)
        Fill colour; text is black.

    Returns
    -------
    PIL.Image.Image, RGB.
    """
    if isinstance(tiles, np.ndarray) or not isinstance(tiles, Sequence) or not tiles:
        raise InputError("tiles must be a non-empty list of rows (lists of images or arrays).")
    if not any(isinstance(r, (list, tuple)) for r in tiles):
        tiles = [list(tiles)]  # a flat list is a single row
    rows = [[_tile(t) for t in row] for row in tiles]
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    present = [t for r in rows for t in r if t is not None]
    if n_cols == 0 or not present:
        raise InputError("tiles contains no image.")
    if titles is not None and len(titles) > n_cols:
        raise InputError(f"got {len(titles)} titles for {n_cols} columns.")
    if row_labels is not None and len(row_labels) > n_rows:
        raise InputError(f"got {len(row_labels)} row labels for {n_rows} rows.")
    if tile_size is not None and int(tile_size) < 1:
        raise InputError(f"tile_size must be a positive int; got {tile_size!r}.")
    pad = max(int(pad), 0)
    if tile_size is None:
        cw, ch = max(t.width for t in present), max(t.height for t in present)
    else:
        cw = ch = int(tile_size)

    font = _font(int(np.clip(round(min(cw, ch) / 11), 11, 22)))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    bottom = measure.textbbox((0, 0), "Ag", font=font)[3]
    line_h = bottom + max(2, bottom // 5)
    title_lines = [_wrap(measure, t, font, cw) for t in titles] if titles else []
    label_lines = [_wrap(measure, t, font, cw) for t in row_labels] if row_labels else []
    title_h = max((len(ls) for ls in title_lines), default=0) * line_h
    title_h += pad if title_h else 0
    label_w = max((measure.textlength(s, font=font) for ls in label_lines for s in ls), default=0)
    label_w = int(np.ceil(label_w)) + pad if label_w else 0

    width = pad + label_w + n_cols * (cw + pad)
    height = pad + title_h + n_rows * (ch + pad)
    canvas = Image.new("RGB", (width, height), tuple(background))
    draw = ImageDraw.Draw(canvas)
    x0, y0 = pad + label_w, pad + title_h
    for j, lines in enumerate(title_lines):
        y = pad + title_h - pad - len(lines) * line_h  # bottom-aligned above the tiles
        for s in lines:
            x = x0 + j * (cw + pad) + (cw - measure.textlength(s, font=font)) / 2
            draw.text((x, y), s, fill=(0, 0, 0), font=font)
            y += line_h
    for i, lines in enumerate(label_lines):
        y = y0 + i * (ch + pad) + (ch - len(lines) * line_h) / 2
        for s in lines:
            draw.text((pad + label_w - pad - measure.textlength(s, font=font), y), s,
                      fill=(0, 0, 0), font=font)
            y += line_h
    for i, row in enumerate(rows):
        for j, t in enumerate(row):
            if t is None:
                continue
            scale = min(cw / t.width, ch / t.height)
            w, h = max(1, round(t.width * scale)), max(1, round(t.height * scale))
            if (w, h) != t.size:
                t = t.resize((w, h), Image.Resampling.BICUBIC)
            x, y = x0 + j * (cw + pad) + (cw - w) // 2, y0 + i * (ch + pad) + (ch - h) // 2
            canvas.paste(t, (x, y))
    return canvas


def save_png(image: Any, path: str | os.PathLike[str]) -> pathlib.Path:
    """Write an image as PNG, creating parent folders.

    Parameters
    ----------
    image : PIL.Image.Image, or a single image :func:`to_rgb_uint8` takes
        (e.g. uint8 (H, W, 3) or (H, W))
    path : str or path-like

    Returns
    -------
    pathlib.Path of the written file.
    """
    out = pathlib.Path(path)
    if not isinstance(image, Image.Image):
        image = Image.fromarray(_single_rgb(image), "RGB")
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, format="PNG")
    return out
