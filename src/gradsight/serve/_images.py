"""Images coming in: size limits checked from the header, image types only, paths kept inside their folder."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = [
    "IMAGE_FORMATS",
    "IMAGE_SUFFIXES",
    "Limits",
    "NotFound",
    "PayloadTooLarge",
    "decode_image",
    "list_images",
    "safe_path",
]

IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
"""Pillow formats accepted from uploads and folders."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Limits:
    """Upload limits: bytes of one image, and its width x height."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000


class PayloadTooLarge(InputError):
    """An upload is over a limit (HTTP 413)."""


class NotFound(InputError):
    """A resource the request names does not exist (HTTP 404)."""


def decode_image(data: bytes, limits: Limits, name: str = "the upload") -> tuple[np.ndarray, str]:
    """Check ``data`` against ``limits`` from its header, then decode it.

    Returns
    -------
    (uint8 (H, W, 3) RGB pixels, sha256 hex of the bytes)

    Raises
    ------
    PayloadTooLarge
        More bytes or pixels than allowed (found before the pixels are decoded).
    InputError
        Not an image in one of :data:`IMAGE_FORMATS`, or a corrupt one.
    """
    from PIL import Image, UnidentifiedImageError

    if len(data) > limits.max_bytes:
        raise PayloadTooLarge(
            f"{name} is {len(data) / 2**20:.1f} MB; the limit is {limits.max_bytes / 2**20:.1f} MB "
            "(start the server with --max-upload-mb to change it)."
        )
    if not data:
        raise InputError(f"{name} is empty; send the bytes of a PNG, JPEG, GIF, BMP, WebP or TIFF image.")
    try:
        # Image.open reads the header only: the size and format are known before any pixel is decoded.
        im = Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS))
    except UnidentifiedImageError:
        raise InputError(
            f"{name} is not an image gradsight accepts; send a PNG, JPEG, GIF, BMP, WebP or TIFF file."
        ) from None
    except Image.DecompressionBombError as exc:  # Pillow's own guard, far above our limit
        raise PayloadTooLarge(f"{name} has too many pixels: {exc}") from None
    with im:
        w, h = im.size
        if w * h > limits.max_pixels:
            raise PayloadTooLarge(
                f"{name} is {w}x{h} = {w * h / 1e6:.1f} megapixels; the limit is {limits.max_pixels / 1e6:.1f} "
                "(start the server with --max-megapixels to change it)."
            )
        if w < 1 or h < 1:
            raise InputError(f"{name} has no pixels ({w}x{h}).")
        try:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise InputError(f"cannot decode {name}: {' '.join(str(exc).split())}") from None
    return rgb, hashlib.sha256(data).hexdigest()


def safe_path(root: Path, relative: str, what: str = "file") -> Path:
    """``root / relative`` if it stays inside ``root`` (symlinks resolved), else :class:`InputError`.

    Absolute paths, ``..`` parts, drive letters and NUL bytes are refused outright, and the
    resolved path must still lie under the resolved root.
    """
    text = str(relative)
    parts = Path(text.replace("\\", "/")).parts
    if (
        not text
        or "\x00" in text
        or text.startswith(("/", "\\"))
        or ".." in parts
        or (len(text) > 1 and text[1] == ":")
    ):
        raise InputError(f"{what} path {relative!r} is not a relative path inside the served folder.")
    base = root.resolve()
    path = (base / text).resolve()
    if not path.is_relative_to(base):
        raise InputError(f"{what} path {relative!r} points outside the served folder.")
    return path


def list_images(root: Path, limit: int = 2000) -> list[str]:
    """Relative POSIX paths of the image files under ``root`` (sorted, at most ``limit``), hidden ones skipped."""
    base = root.resolve()
    out: list[str] = []
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base)
        if any(p.startswith(".") for p in rel.parts) or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if not path.resolve().is_relative_to(base) or not path.is_file():
            continue  # a symlink out of the folder is not served
        out.append(rel.as_posix())
        if len(out) >= limit:
            break
    return out


def png_bytes(pixels: Any) -> bytes:
    """A PIL image or uint8 array as PNG bytes."""
    from PIL import Image

    im = pixels if isinstance(pixels, Image.Image) else Image.fromarray(np.asarray(pixels))
    buffer = io.BytesIO()
    im.save(buffer, format="PNG")
    return buffer.getvalue()
