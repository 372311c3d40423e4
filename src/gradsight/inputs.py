"""What a model expects as input, and the one ``preprocess`` that turns uint8 images into it.

- :class:`ModelInfo`: what a loaded model expects (framework, layout, size, preprocessing);
- :class:`InputSpec`: the channel count and rank of its input (gray, RGB, RGBA; NCHW,
  NHWC, NHW without a channel axis, NF flattened), as :func:`gradsight.models.input_spec`
  reads it from a model;
- :func:`preprocess`: uint8 pixels -> a float32 batch, by one of :data:`PREPROCESSING`.

Used by every command of the CLI, the demo and the bundled-model registry
(:mod:`gradsight.demo.registry`); numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

__all__ = [
    "ModelInfo",
    "InputSpec",
    "PREPROCESSING",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CAFFE_MEAN_BGR",
    "DEMO_MEAN",
    "DEMO_STD",
    "preprocess",
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
"""The names :func:`preprocess` knows -> what each does."""

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)

DEMO_MEAN: np.ndarray = np.array([0.5080, 0.4992, 0.5042], dtype=np.float32)
"""Per-channel (R, G, B) mean of the shapes demo images on the 0-1 scale (measured on
``gradsight.demo.shapes.generate(3000, seed=7)``)."""

DEMO_STD: np.ndarray = np.array([0.2592, 0.2572, 0.2580], dtype=np.float32)
"""Per-channel (R, G, B) standard deviation of the shapes demo images on the 0-1 scale."""

_STATS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "demo": (DEMO_MEAN, DEMO_STD)}
_LAYOUTS = ("NCHW", "NHWC", "NHW", "NF")


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model expects as input.

    Attributes
    ----------
    framework:
        ``"torch"`` or ``"keras"``.
    layout:
        ``"NCHW"`` (PyTorch) or ``"NHWC"`` (Keras): the layout of an image batch;
        ``"NC"`` for a model of feature vectors (the bundled 2-D MLP), which takes no
        images.
    input_size:
        Side in pixels of the square images the model expects, or None when unknown
        (the CLI then uses 224).
    preprocessing:
        Name of the default preprocessing, one of :data:`PREPROCESSING`.
    class_names:
        One name per output class, or None when unknown.
    description:
        A short human-readable description of what was loaded.
    """

    framework: str
    layout: str
    input_size: int | None
    preprocessing: str
    class_names: tuple[str, ...] | None
    description: str

    @property
    def takes_images(self) -> bool:
        return self.layout in ("NCHW", "NHWC")

    def class_name(self, k: int) -> str | None:
        """The name of class ``k``, or None."""
        if self.class_names is not None and 0 <= k < len(self.class_names):
            return self.class_names[k]
        return None


@dataclass(frozen=True)
class InputSpec:
    """The channel count and rank a model's input has.

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


def preprocess(images: np.ndarray, name: str = "imagenet", layout: str | InputSpec = "NCHW") -> np.ndarray:
    """Turn uint8 images into a float32 model batch.

    Parameters
    ----------
    images:
        RGB: (N, H, W, 3) or one (H, W, 3) image, values 0-255 (normally uint8). With an
        :class:`InputSpec` ``layout``: (N, H, W, C) with the spec's C channels, or (N, H, W)
        gray.
    name:
        One of :data:`PREPROCESSING`: ``"imagenet"``: ``(x / 255 - mean) / std`` with the
        ImageNet statistics; ``"demo"``: the same with the shapes demo's statistics;
        ``"unit"`` / ``"none"``: ``x / 255`` in [0, 1]; ``"raw"``: 0..255; ``"caffe"``: BGR
        minus the ImageNet mean pixel (Keras VGG/ResNet50); ``"tf"``: [-1, 1]. Gray images
        use the mean of the RGB statistics; an alpha channel is scaled like ``unit``
        (``raw``/``caffe``: 0..255).
    layout:
        ``"NCHW"`` or ``"NHWC"`` for RGB images (a single image keeps its rank: ``(3, H, W)``
        or ``(H, W, 3)``), or an :class:`InputSpec` for any channel count and the
        ``NHW`` / ``NF`` layouts.

    Returns
    -------
    float32 batch in the layout asked for.

    Raises
    ------
    InputError
        (a ValueError) for an unknown name or layout, or images not shaped as above.
    """
    if name not in PREPROCESSING:
        raise InputError(f"unknown preprocessing {name!r}; use one of {', '.join(PREPROCESSING)}.")
    x = np.asarray(images)
    single = False
    if isinstance(layout, InputSpec):
        spec = layout
        if spec.layout not in _LAYOUTS:
            raise InputError(f"layout must be one of {', '.join(_LAYOUTS)}; got {spec.layout!r}.")
        if x.ndim == 3:
            x = x[..., None]
        if x.ndim != 4:
            raise InputError(f"expected images of shape (N, H, W, C) or (N, H, W); got {x.shape}.")
    else:
        layout_u = str(layout).upper()
        if layout_u not in ("NCHW", "NHWC"):
            raise InputError(f"layout must be 'NCHW' or 'NHWC'; got {layout!r}.")
        if x.ndim not in (3, 4) or x.shape[-1] != 3:
            raise InputError(f"expected RGB images of shape (N, H, W, 3) or (H, W, 3); got {x.shape}.")
        single = x.ndim == 3
        x = x[None] if single else x
        spec = InputSpec(layout_u, 3)
    out = _scaled(x, name)
    n, h, w, c = out.shape
    if spec.layout == "NCHW":
        out = out.transpose(0, 3, 1, 2)
    elif spec.layout == "NHW":
        out = out[..., 0]
    elif spec.layout == "NF":
        out = out.reshape(n, h * w * c)
    return np.ascontiguousarray(out[0] if single else out, dtype=np.float32)


def _scaled(pixels: np.ndarray, name: str) -> np.ndarray:
    """(N, H, W, C) pixels 0..255 scaled by ``name``, still (N, H, W, C) float32."""
    x = pixels.astype(np.float32)
    c = x.shape[-1]
    colour = min(c, 3)

    def stats(v: np.ndarray) -> np.ndarray:
        return v if colour == 3 else np.array([v.mean()], np.float32)

    if name in ("unit", "none"):
        x = x / np.float32(255.0)
    elif name == "tf":
        x = x / np.float32(127.5) - np.float32(1.0)
    elif name in _STATS:
        mean, std = _STATS[name]
        x = x / np.float32(255.0)
        x[..., :colour] = (x[..., :colour] - stats(mean)) / stats(std)
    elif name == "caffe":
        if colour == 3:
            x[..., :3] = x[..., 2::-1] - CAFFE_MEAN_BGR
        else:
            x[..., :1] = x[..., :1] - CAFFE_MEAN_BGR.mean()
    if c == 4 and name not in ("raw", "caffe", "unit", "none"):
        x[..., 3] = pixels[..., 3].astype(np.float32) / np.float32(255.0)
    return x
