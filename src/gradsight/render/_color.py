"""Colour: colormaps for maps, conversion of images to RGB uint8, de-normalising model input for display."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from gradsight.errors import InputError, close_matches

from ..maps import normalize_signed

_ACCEPTED = (
    "(N, H, W, 3), (N, 3, H, W), (N, H, W, 1), (N, 1, H, W), (H, W, 3), (3, H, W), "
    "(N, H, W) or (H, W) grayscale"
)


def _get_cmap(name: str) -> Any:
    import matplotlib  # lazy: importing gradsight must not import matplotlib

    try:
        return matplotlib.colormaps[name]
    except (KeyError, ValueError, TypeError):
        names = sorted(matplotlib.colormaps)
        raise InputError(
            f"unknown colormap {name!r}.{close_matches(name, names)} "
            "Any name in matplotlib.colormaps works (e.g. 'jet', 'inferno', 'viridis', 'gray')."
        ) from None


def colorize(maps: Any, cmap: str = "jet") -> np.ndarray:
    """Map values in [0, 1] to RGB with a matplotlib colormap.

    Parameters
    ----------
    maps : array (N, H, W) or (H, W)
        Values in [0, 1]; values outside are clipped, NaN is shown as 0.
    cmap : str
        Any name in ``matplotlib.colormaps`` ("jet", "inferno", "gist_earth", ...).

    Returns
    -------
    uint8 array (N, H, W, 3) or (H, W, 3): ``round(255 * cmap(x)[..., :3])``.
    """
    colormap = _get_cmap(cmap)
    if hasattr(maps, "detach"):
        maps = maps.detach().cpu().numpy()
    x = np.nan_to_num(np.asarray(maps, dtype=np.float64), nan=0.0)
    rgba = colormap(np.clip(x, 0.0, 1.0))
    # Round to nearest; matplotlib's own bytes=True truncates (gray 128/255 -> 127).
    return np.floor(rgba[..., :3] * 255.0 + 0.5).astype(np.uint8)


def colorize_signed(maps: Any, cmap: str = "bwr") -> np.ndarray:
    """Colour signed maps with a diverging colormap; zero is the colormap's centre.

    Each sample is divided by its largest magnitude (:func:`normalize_signed`) and
    [-1, 1] is mapped to [0, 1].

    Parameters
    ----------
    maps : array (N, H, W) or (H, W)
    cmap : str
        A diverging matplotlib colormap ("bwr", "seismic", "coolwarm", "RdBu_r", ...).

    Returns
    -------
    uint8 array (N, H, W, 3) or (H, W, 3).
    """
    return colorize((normalize_signed(maps) + 1.0) / 2.0, cmap)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.integer):
        return np.clip(arr, 0, 255).astype(np.uint8)
    arr = np.nan_to_num(arr.astype(np.float64), nan=0.0)
    if arr.size and arr.max() <= 1.5:
        arr = arr * 255.0
    return np.floor(np.clip(arr, 0.0, 255.0) + 0.5).astype(np.uint8)


def _nhwc(arr: np.ndarray, layout: str | None) -> np.ndarray:
    """Any accepted shape -> (N, H, W, C) with C in (1, 3)."""
    if arr.ndim == 2:
        return arr[None, :, :, None]
    if arr.ndim not in (3, 4):
        raise InputError(f"images must have one of the shapes {_ACCEPTED}; got shape {arr.shape}.")
    single = arr.ndim == 3
    a = arr[None] if single else arr
    if layout is None:
        if a.shape[-1] in (1, 3):
            layout = "NHWC"
        elif a.shape[1] in (1, 3):
            layout = "NCHW"
        elif single:
            return arr[:, :, :, None]  # (N, H, W) grayscale
        else:
            raise InputError(
                f"cannot find a channel axis of size 1 or 3 in shape {arr.shape}; "
                f"accepted shapes: {_ACCEPTED}."
            )
    if layout == "NCHW":
        a = a.transpose(0, 2, 3, 1)
    if a.shape[-1] not in (1, 3):
        raise InputError(
            f"images in layout {layout} must have 1 or 3 channels; got shape {arr.shape}."
        )
    return a


def to_rgb_uint8(images: Any, layout: str | None = None) -> np.ndarray:
    """Convert a batch or a single image to RGB uint8.

    Parameters
    ----------
    images : array, torch tensor, PIL image, or list of PIL images / arrays
        Arrays of shape (N, H, W, 3), (N, 3, H, W), (N, H, W, 1), (N, 1, H, W),
        (H, W, 3), (3, H, W), or grayscale (N, H, W) / (H, W). uint8 is kept; floats
        are taken as [0, 1] when their max is <= 1.5, else as [0, 255]; values are clipped.
    layout : {"NCHW", "NHWC"} or None
        Channel position (for one image, "NCHW" means (C, H, W)). ``None`` guesses:
        the last axis if it has size 1 or 3, else axis 1 (axis 0 for one image);
        a 3-D array with neither is an (N, H, W) grayscale batch.

    Returns
    -------
    uint8 array (N, H, W, 3).
    """
    if layout is not None and layout not in ("NCHW", "NHWC"):
        raise InputError(f"layout must be 'NCHW', 'NHWC' or None; got {layout!r}.")
    if isinstance(images, Image.Image):
        return np.asarray(images.convert("RGB"), dtype=np.uint8)[None].copy()
    if isinstance(images, (list, tuple)):
        if not images:
            raise InputError("got an empty list of images.")
        parts = [to_rgb_uint8(im, layout) for im in images]
        if len({p.shape[1:] for p in parts}) > 1:
            sizes = sorted({p.shape[1:3] for p in parts})
            raise InputError(f"images in a list must have the same size; got (H, W) {sizes}.")
        return np.concatenate(parts, axis=0)
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    arr = np.asarray(images)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise InputError(f"images must be numeric; got dtype {arr.dtype}.")
    rgb = _to_uint8(_nhwc(arr, layout))
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    return np.ascontiguousarray(rgb)


def displayable(images: Any) -> tuple[Any, str | None]:
    """Pictures from what a user passes to ``overlay``/``save``, and a warning when they were model input.

    Floats with negative values are normalised model input (ImageNet, caffe or tf
    scaling, an MNIST mean/std): drawn as they are they would be black. Each image is
    rescaled to its own min..max for display, and the returned note says so.
    """
    if images is None or isinstance(images, (list, tuple)) or not hasattr(images, "dtype"):
        return images, None
    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if not np.issubdtype(arr.dtype, np.floating) or arr.size == 0 or float(np.nanmin(arr)) >= -1e-3:
        return images, None
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    axes = tuple(range(1, arr.ndim)) if arr.ndim >= 3 else None
    amin = np.nanmin(arr, axis=axes, keepdims=True)
    amax = np.nanmax(arr, axis=axes, keepdims=True)
    out = (arr - amin) / np.maximum(amax - amin, 1e-12)
    return out.astype(np.float32), (
        f"the images look like normalised model input (values {lo:.3g}..{hi:.3g}); each is shown rescaled to its "
        "own min..max. Pass the original images (uint8, or floats in [0, 1]) for true colours."
    )
