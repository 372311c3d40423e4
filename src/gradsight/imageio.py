"""Images in, model input out: the channel count and rank a model takes, and how its pixels are scaled.

- :func:`input_spec` tells what a model takes: ``NCHW``/``NHWC`` batches with 1 (gray),
  3 (RGB) or 4 (RGBA) channels, ``NHW`` (gray, no channel axis: an MLP on (N, 28, 28)),
  or ``NF`` (flattened pixels: (N, 784));
- :func:`read_images` reads image files in that channel count and says what it converted;
- :func:`preprocess` scales uint8 pixels by one of :data:`PREPROCESSING` and lays them out;
- :func:`default_preprocessing` picks the mode from the model where it can be known (a
  Keras ``Rescaling``/``Normalization`` layer at the input, the bundled models' own
  setting) and otherwise says which one it used;
- :func:`displayable` turns what a user passes to ``Explanation.save``/``overlay`` into
  pictures, de-normalising model input (with a warning) instead of drawing it black.

Neither torch nor tensorflow is imported here; the model's own objects are inspected
duck-typed, and the backends are asked through their protocol.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

__all__ = [
    "PREPROCESSING",
    "InputSpec",
    "default_preprocessing",
    "displayable",
    "input_spec",
    "preprocess",
    "read_images",
]

PREPROCESSING: dict[str, str] = {
    "unit": "x / 255, in [0, 1]",
    "raw": "pixel values 0..255 as floats",
    "imagenet": "torch-style ImageNet: (x / 255 - mean) / std",
    "caffe": "Keras VGG/ResNet50: RGB -> BGR, minus the ImageNet mean pixel, 0..255 scale",
    "tf": "x / 127.5 - 1, in [-1, 1] (Keras MobileNet/Inception)",
    "demo": "the bundled shapes models' own mean/std",
    "none": "same as unit",
}
"""Preprocessing modes: name -> what it does."""

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class InputSpec:
    """What a model takes as input.

    Attributes
    ----------
    layout:
        ``"NCHW"``, ``"NHWC"``, ``"NHW"`` (gray, no channel axis) or ``"NF"`` (flattened).
    channels:
        1 (gray), 3 (RGB) or 4 (RGBA): the image mode the pixels are read in.
    size:
        (H, W) when the model fixes it, else None.
    """

    layout: str
    channels: int
    size: tuple[int, int] | None = None

    def shape(self, n: int, size: tuple[int, int]) -> tuple[int, ...]:
        """The batch shape for ``n`` images of ``size`` (H, W)."""
        h, w = size
        return {
            "NCHW": (n, self.channels, h, w),
            "NHWC": (n, h, w, self.channels),
            "NHW": (n, h, w),
            "NF": (n, h * w * self.channels),
        }[self.layout]

    def describe(self) -> str:
        kind = {1: "gray", 3: "RGB", 4: "RGBA"}[self.channels]
        return f"{kind} {self.layout}"


def input_spec(model: Any, layout: str | None = None) -> InputSpec:
    """What ``model`` (torch or Keras) takes; ``layout`` ("NCHW"/"NHWC") is the fallback for image models.

    Keras: read from the model's input shape. PyTorch: the first ``Conv2d``'s ``in_channels``;
    a model without one (an MLP) is tried on blank (N, s, s), (N, 1, s, s) and (N, s*s)
    batches for its first ``Linear``'s ``in_features`` = s*s (or 3*s*s for RGB).
    """
    if _is_keras(model):
        return _keras_spec(model, layout)
    return _torch_spec(model, layout)


def _is_keras(model: Any) -> bool:
    return any(c.__module__.split(".")[0] in ("keras", "tf_keras") for c in type(model).__mro__)


def _checked(channels: int, where: str) -> int:
    if channels not in _MODES:
        raise InputError(
            f"the model takes {channels} input channels ({where}); images can be read as 1 (gray), 3 (RGB) or "
            "4 (RGBA) channels: prepare the batch yourself and call gradsight.explain."
        )
    return channels


def _keras_spec(model: Any, layout: str | None) -> InputSpec:
    from .backends.keras.models import input_info

    shape, fmt, _ = input_info(model)
    if shape is None:
        return InputSpec(layout or "NHWC", 3)
    rank = len(shape)
    if rank == 4:
        if fmt == "channels_first":
            c, h, w = shape[1], shape[2], shape[3]
            lay = "NCHW"
        else:
            h, w, c = shape[1], shape[2], shape[3]
            lay = "NHWC"
        size = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        return InputSpec(lay, _checked(int(c) if c is not None else 3, f"input shape {shape}"), size)
    if rank == 3 and isinstance(shape[1], int) and isinstance(shape[2], int):
        return InputSpec("NHW", 1, (shape[1], shape[2]))
    if rank == 2 and isinstance(shape[1], int):
        return _flat_spec(shape[1], f"input shape {shape}")
    raise InputError(f"the model's input shape {shape} is not an image batch; prepare x yourself and call gradsight.explain.")


def _flat_spec(features: int, where: str) -> InputSpec:
    for c in (1, 3):
        s = math.isqrt(features // c)
        if features % c == 0 and s * s * c == features:
            return InputSpec("NF", c, (s, s))
    raise InputError(
        f"the model takes {features} features per sample ({where}), not a square image's pixels; prepare x "
        "yourself and call gradsight.explain."
    )


def _torch_spec(model: Any, layout: str | None) -> InputSpec:
    import torch

    first_conv = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    if first_conv is not None:
        return InputSpec("NCHW", _checked(int(first_conv.in_channels), f"its first Conv2d takes {first_conv.in_channels}"))
    linear = next((m for m in model.modules() if isinstance(m, torch.nn.Linear)), None)
    if linear is None:
        return InputSpec(layout or "NCHW", 3)
    flat = _flat_spec(int(linear.in_features), f"its first Linear takes {linear.in_features}")
    assert flat.size is not None
    candidates = (
        [InputSpec("NHW", 1, flat.size), InputSpec("NCHW", 1, flat.size), flat]
        if flat.channels == 1
        else [InputSpec("NCHW", 3, flat.size), flat]
    )
    from .backends.base import backend_for

    bk = backend_for(model)
    for spec in candidates:
        try:
            with bk.session(model, eval_mode=True), torch.no_grad():
                bk.forward(model, bk.prepare_input(model, np.zeros(spec.shape(1, flat.size), np.float32)))
        except Exception:  # noqa: BLE001 - a shape the model does not take; try the next
            continue
        return spec
    return flat


def read_images(paths: Sequence[Path], channels: int) -> tuple[list[Any], str | None]:
    """Open each file in the mode for ``channels`` (L, RGB, RGBA).

    Returns
    -------
    (PIL images, note): the note says what was converted (e.g. "RGB -> gray"), or None.
    """
    from PIL import Image, UnidentifiedImageError

    mode = _MODES[channels]
    images, converted = [], set()
    for path in paths:
        try:
            with Image.open(path) as im:
                src = im.mode
                out = im.convert(mode)
        except UnidentifiedImageError:
            raise InputError(f"cannot read {path}: not an image file Pillow can open") from None
        except OSError as exc:
            raise InputError(f"cannot read image {path}: {' '.join(str(exc).split())}") from None
        if _family(src) != mode:
            converted.add(f"{_family(src)} -> {mode}")
        images.append(out)
    if not converted:
        return images, None
    names = {"L": "gray", "RGB": "RGB", "RGBA": "RGBA", "LA": "gray+alpha", "P": "palette", "CMYK": "CMYK"}
    pretty = ", ".join(sorted(" -> ".join(names.get(p, p) for p in c.split(" -> ")) for c in converted))
    return images, f"images converted {pretty} (the model takes {names[mode]} input)"


def _family(mode: str) -> str:
    if mode in ("1", "L", "I", "I;16", "F"):
        return "L"
    if mode == "RGBX":
        return "RGB"
    return mode


def preprocess(pixels: np.ndarray, mode: str, spec: InputSpec | str) -> np.ndarray:
    """uint8 pixels (N, H, W, C) (or (N, H, W) gray) -> a float32 batch in ``spec``'s layout.

    ``mode`` is one of :data:`PREPROCESSING`; gray images use the mean of the RGB
    statistics; the alpha channel of RGBA is scaled like ``unit`` (``raw``/``caffe``: 0..255).
    """
    if mode not in PREPROCESSING:
        raise InputError(f"unknown preprocessing {mode!r}; use one of {', '.join(PREPROCESSING)}.")
    if isinstance(spec, str):
        spec = InputSpec(spec, 3)
    x = np.asarray(pixels, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    c = x.shape[-1]
    colour = min(c, 3)

    def stats(v: np.ndarray) -> np.ndarray:
        return v if colour == 3 else np.array([v.mean()], np.float32)

    if mode in ("unit", "none"):
        x = x / np.float32(255.0)
    elif mode == "raw":
        pass
    elif mode == "tf":
        x = x / np.float32(127.5) - np.float32(1.0)
    elif mode in ("imagenet", "demo"):
        if mode == "demo":
            from .demo.shapes import MEAN, STD

            mean, std = np.asarray(MEAN, np.float32), np.asarray(STD, np.float32)
        else:
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        x = x / np.float32(255.0)
        x[..., :colour] = (x[..., :colour] - stats(mean)) / stats(std)
    elif mode == "caffe":
        if colour == 3:
            x[..., :3] = x[..., 2::-1] - CAFFE_MEAN_BGR
        else:
            x[..., :1] = x[..., :1] - CAFFE_MEAN_BGR.mean()
    if c == 4 and mode not in ("raw", "caffe", "unit", "none"):
        x[..., 3] = np.asarray(pixels, np.float32)[..., 3] / np.float32(255.0)
    n, h, w = x.shape[:3]
    if spec.layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    elif spec.layout == "NHW":
        x = x[..., 0]
    elif spec.layout == "NF":
        x = x.reshape(n, h * w * c)
    return np.ascontiguousarray(x, dtype=np.float32)


def default_preprocessing(model: Any, bundled: str | None = None) -> tuple[str, str | None]:
    """``(mode, note)``: the preprocessing a model expects, and a one-line note when it is a guess.

    ``bundled``: the setting a bundled model declares (``ModelInfo.preprocessing``), taken as is.
    Keras: a ``Rescaling`` or ``Normalization`` layer before the first convolution/dense layer
    means the model scales its own input from raw pixels (``raw``), unless the normalisation's
    mean is below 1 (it was adapted on [0, 1] data: ``unit``). Otherwise: ``imagenet`` for
    3-channel models, ``unit`` for others, with a note that says so.
    """
    if bundled is not None and bundled != "imagenet":
        return bundled, None
    if _is_keras(model):
        found = _keras_input_scaling(model)
        if found is not None:
            return found
    channels = input_spec(model).channels
    guess = "imagenet" if channels == 3 else "unit"
    return guess, (
        f"inputs scaled with --preprocess {guess} ({PREPROCESSING[guess]}): the model does not say how it was "
        "trained; pass --preprocess unit|raw|imagenet|caffe|tf if it expects another"
    )


def _keras_input_scaling(model: Any) -> tuple[str, str | None] | None:
    from .backends.keras.capture import iter_layers

    for path, layer in iter_layers(model):
        kind = type(layer).__name__
        if kind == "Rescaling":
            scale = float(np.mean(np.asarray(layer.scale)))
            return ("raw", None) if scale < 0.5 else ("unit", None)  # 1/255, 1/127.5 vs. already [0, 1]
        if kind == "Normalization":
            mean = getattr(layer, "mean", None)
            value = float(np.mean(np.asarray(mean))) if mean is not None else 0.0
            return ("raw", None) if value > 1.0 else ("unit", None)
        if kind in ("Dense", "Flatten") or "Conv" in kind:
            return None
    return None


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
