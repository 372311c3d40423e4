"""Reading images for the CLI commands (used through :mod:`._common`).

- every input is opened *and decoded* before the model runs, so a truncated or corrupt
  file in the middle of a list stops the command (exit 2, one line naming it) before the
  first output is written — never after half the outputs;
- 16-bit images (``I;16`` PNGs, 32-bit integer TIFFs) are scaled to 8 bits, not clipped
  (clipping turns a 16-bit grayscale photo almost white);
- the EXIF orientation tag is applied (phone photos come upright);
- an image over Pillow's decompression-bomb limit is an :class:`InputError` (exit 2);
- ``--resize fit|crop|squash`` says how a non-square picture becomes the model's square
  input; ``squash`` (the default, the historical behaviour) is announced once per run.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["MAX_SIZE", "RESIZE_MODES", "add_image_options", "check_images", "check_size", "decode", "open_image", "read_image",
           "square", "to_mode", "to_rgb"]

MAX_SIZE = 2048
"""Largest ``--size``: a 2048x2048 float32 batch of 8 with gradients already takes gigabytes."""

RESIZE_MODES = ("squash", "fit", "crop")


def add_image_options(parser: argparse.ArgumentParser) -> None:
    """``--resize`` and ``--plain`` for commands that read pictures and draw explanations."""
    parser.add_argument("--plain", action="store_true",
                        help="bare pictures: no caption (method, class, score, layer), no colour bar")
    parser.add_argument("--resize", choices=RESIZE_MODES, default="squash",
                        help="how a non-square image becomes the model's square input: 'squash' (stretch, the "
                             "default), 'fit' (whole image, padded with black bars) or 'crop' (centre square)")


def check_size(size: int | None) -> None:
    """``--size`` within [8, MAX_SIZE]."""
    if size is not None and not 8 <= size <= MAX_SIZE:
        raise InputError(f"--size must be between 8 and {MAX_SIZE} pixels; got {size}")


# --------------------------------------------------------------------------- reading


def open_image(path: Path) -> Any:
    """``PIL.Image.open(path)`` (headers only); :class:`InputError` when Pillow cannot read it."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise InputError(f"cannot read {path}: {exc}".rstrip(".") + "; it is too large to be a photo "
                         "(Pillow's decompression-bomb limit)") from None
    except UnidentifiedImageError:
        raise InputError(f"cannot read {path}: not an image file Pillow can open") from None
    except OSError as exc:
        raise InputError(f"cannot read image {path}: {' '.join(str(exc).split())}") from None


def decode(path: Path) -> Any:
    """The decoded image (``load()`` done), EXIF orientation applied."""
    from PIL import Image, ImageOps

    im = open_image(path)
    try:
        im.load()
        return ImageOps.exif_transpose(im) or im
    except Image.DecompressionBombError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data fails only when decoded
        raise InputError(f"cannot read image {path}: {' '.join(str(exc).split())}") from None


def check_images(paths: Sequence[str]) -> list[Path]:
    """Every file exists and decodes, checked before any work (a bad one: :class:`InputError` naming it)."""
    _announced.clear()  # a new run: its notes are shown once again
    out = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise InputError(f"image file not found: {p}")
        if path.is_dir():
            raise InputError(f"{p} is a folder; pass image files (e.g. {p}/*.png)")
        decode(path).close()
        out.append(path)
    seen: set[str] = set()
    unique = [p for p in out if not (os.path.realpath(p) in seen or seen.add(os.path.realpath(p)))]  # type: ignore[func-returns-value]
    if len(unique) < len(out):  # the same file twice would write the same outputs twice
        print(f"gradsight: note: {len(out) - len(unique)} repeated input file(s) explained once", file=sys.stderr)
    return unique


def to_rgb(im: Any) -> Any:
    """An RGB ``PIL.Image`` of ``im``; 16-bit and 32-bit integer images are scaled to 8 bits, not clipped."""
    return to_mode(im, "RGB")


def to_mode(im: Any, mode: str) -> Any:
    """``im`` in the 8-bit ``mode`` (``L``, ``RGB``, ``RGBA``); 16-bit, 32-bit integer and float images are
    scaled to 8 bits first, not clipped."""
    from PIL import Image

    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(np.round(a * 255.0 / top), 0, 255).astype(np.uint8), "L").convert(mode)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        top = 1.0 if a.max(initial=0) <= 1.0 else 255.0
        return Image.fromarray(np.clip(np.round(a * 255.0 / top), 0, 255).astype(np.uint8), "L").convert(mode)
    return im.convert(mode)  # a copy even in the same mode: the caller closes im


def read_image(path: Path) -> Any:
    """The image at ``path`` as upright 8-bit RGB (``PIL.Image``)."""
    im = decode(Path(path))
    try:
        return to_rgb(im)
    finally:
        im.close()


_announced: set[str] = set()


def square(im: Any, mode: str = "squash") -> Any:
    """``im`` made square by ``mode`` (``squash``: unchanged here, stretched by the later resize)."""
    from PIL import Image

    w, h = im.size
    if w == h:
        return im
    if mode == "crop":
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        return im.crop((left, top, left + s, top + s))
    if mode == "fit":
        s = max(w, h)
        canvas = Image.new(im.mode, (s, s), 0)  # black (transparent black for RGBA)
        canvas.paste(im, ((s - w) // 2, (s - h) // 2))
        return canvas
    if "squash" not in _announced:
        _announced.add("squash")
        print(f"gradsight: note: non-square images ({w}x{h}) are squashed to a square; --resize fit or crop keeps "
              "their proportions", file=sys.stderr)
    return im
