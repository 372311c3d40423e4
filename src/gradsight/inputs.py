"""What a model expects as input, and the one ``preprocess`` that turns uint8 images into it.

Used by every command of the CLI, the demo and the bundled-model registry
(:mod:`gradsight.demo.registry`); numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

__all__ = ["ModelInfo", "PREPROCESSING", "IMAGENET_MEAN", "IMAGENET_STD", "DEMO_MEAN", "DEMO_STD", "preprocess"]

PREPROCESSING = ("imagenet", "demo", "none")
"""Names :func:`preprocess` knows: ImageNet mean/std, the demo's own mean/std, or [0, 1]."""

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

DEMO_MEAN: np.ndarray = np.array([0.5080, 0.4992, 0.5042], dtype=np.float32)
"""Per-channel (R, G, B) mean of the shapes demo images on the 0-1 scale (measured on
``gradsight.demo.shapes.generate(3000, seed=7)``)."""

DEMO_STD: np.ndarray = np.array([0.2592, 0.2572, 0.2580], dtype=np.float32)
"""Per-channel (R, G, B) standard deviation of the shapes demo images on the 0-1 scale."""

_STATS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "demo": (DEMO_MEAN, DEMO_STD), "none": None}


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


def preprocess(images: np.ndarray, name: str = "imagenet", layout: str = "NCHW") -> np.ndarray:
    """Turn uint8 RGB images into a float32 model batch.

    Parameters
    ----------
    images:
        (N, H, W, 3) or one (H, W, 3) image, values 0-255 (normally uint8).
    name:
        ``"imagenet"``: ``(x / 255 - mean) / std`` with the ImageNet statistics;
        ``"demo"``: the same with the shapes demo's statistics;
        ``"none"``: ``x / 255`` in [0, 1].
    layout:
        ``"NCHW"`` or ``"NHWC"``: the output layout. A single image keeps its rank:
        ``(3, H, W)`` or ``(H, W, 3)``.

    Returns
    -------
    float32 (N, 3, H, W) or (N, H, W, 3).

    Raises
    ------
    InputError
        (a ValueError) for an unknown name or layout, or images not shaped as above.
    """
    if name not in _STATS:
        raise InputError(f"unknown preprocessing {name!r}; use one of {', '.join(PREPROCESSING)}.")
    layout_u = str(layout).upper()
    if layout_u not in ("NCHW", "NHWC"):
        raise InputError(f"layout must be 'NCHW' or 'NHWC'; got {layout!r}.")
    x = np.asarray(images)
    if x.ndim not in (3, 4) or x.shape[-1] != 3:
        raise InputError(f"expected RGB images of shape (N, H, W, 3) or (H, W, 3); got {x.shape}.")
    out = x.astype(np.float32) / np.float32(255.0)
    stats = _STATS[name]
    if stats is not None:
        out = (out - stats[0]) / stats[1]
    if layout_u == "NCHW":
        out = np.moveaxis(out, -1, -3)
    return np.ascontiguousarray(out, dtype=np.float32)
