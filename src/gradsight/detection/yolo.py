"""YOLO-style raw heads: the decoding configuration, shape checks and box decoding (numpy).

A raw YOLO head is one convolution output per scale, with, for each grid cell and each
anchor of that scale, ``4 + 1 + C`` numbers: the box ``(tx, ty, tw, th)``, the objectness
logit and ``C`` class logits (YOLOv3's order, used by Darknet, ultralytics and
keras-yolo3). Channels-first heads are ``(N, A * (5 + C), H, W)``; channels-last heads are
``(N, H, W, A * (5 + C))``. Inside the channel axis anchor ``a`` owns channels
``a * (5 + C) ... (a + 1) * (5 + C) - 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import TargetError

__all__ = ["YoloConfig", "DECODINGS", "LAYOUTS", "Decoded", "canonical", "check_heads", "decode", "decode_boxes"]

DECODINGS = ("yolov3", "yolov5")
"""Box decodings :class:`YoloConfig` knows (see :func:`decode_boxes`)."""

LAYOUTS = ("channels_first", "channels_last")


@dataclass(frozen=True)
class YoloConfig:
    """How to read a YOLO-style raw head: classes, anchors and strides per scale, layout.

    Parameters
    ----------
    num_classes:
        ``C``, the number of class logits per anchor.
    strides:
        Input pixels per grid cell, one per scale, in the order of the model's outputs.
    anchors:
        Per scale, the anchors' ``(width, height)`` in input pixels.
    layout:
        ``"channels_first"`` (``(N, A*(5+C), H, W)``), ``"channels_last"``
        (``(N, H, W, A*(5+C))``) or None for the framework's convention (PyTorch:
        first, Keras: last).
    decoding:
        ``"yolov3"``: ``x = (sigmoid(tx) + col) * stride``, ``w = anchor_w * exp(tw)``;
        ``"yolov5"``: ``x = (2 sigmoid(tx) - 0.5 + col) * stride``,
        ``w = anchor_w * (2 sigmoid(tw))^2``.
    """

    num_classes: int
    strides: tuple[int, ...]
    anchors: tuple[tuple[tuple[float, float], ...], ...]
    layout: str | None = None
    decoding: str = "yolov3"

    def __post_init__(self) -> None:
        try:
            strides = tuple(int(s) for s in self.strides)
            anchors = tuple(tuple((float(w), float(h)) for w, h in scale) for scale in self.anchors)
        except (TypeError, ValueError):
            raise TargetError(
                "YoloConfig: strides must be ints (one per scale) and anchors a list per scale of (w, h) pairs; "
                f"got strides={self.strides!r}, anchors={self.anchors!r}."
            ) from None
        if not isinstance(self.num_classes, (int, np.integer)) or self.num_classes < 1:
            raise TargetError(f"YoloConfig: num_classes must be a positive int; got {self.num_classes!r}.")
        if not strides or len(strides) != len(anchors):
            raise TargetError(
                f"YoloConfig: {len(strides)} stride(s) but {len(anchors)} anchor list(s); give one stride and one "
                "list of (w, h) anchors per scale."
            )
        if any(s < 1 for s in strides) or any(not a for a in anchors) or any(w <= 0 or h <= 0 for a in anchors for w, h in a):
            raise TargetError("YoloConfig: strides must be >= 1 and every scale needs at least one anchor of positive size.")
        if self.layout not in (None,) + LAYOUTS:
            raise TargetError(f"YoloConfig: layout must be one of {LAYOUTS} or None; got {self.layout!r}.")
        if self.decoding not in DECODINGS:
            raise TargetError(f"YoloConfig: decoding must be one of {DECODINGS}; got {self.decoding!r}.")
        object.__setattr__(self, "num_classes", int(self.num_classes))
        object.__setattr__(self, "strides", strides)
        object.__setattr__(self, "anchors", anchors)

    @property
    def num_scales(self) -> int:
        return len(self.strides)

    def channels(self, scale: int) -> int:
        """Channels of scale ``scale``'s head: anchors x (5 + classes)."""
        return len(self.anchors[scale]) * (5 + self.num_classes)

    def is_channels_last(self, default: bool) -> bool:
        """Whether heads are channels-last; ``default`` is the framework's convention."""
        return default if self.layout is None else self.layout == "channels_last"

    def expected_shape(self, scale: int, channels_last: bool) -> str:
        c = self.channels(scale)
        return f"(N, H, W, {c})" if channels_last else f"(N, {c}, H, W)"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # stable for large |x|


def check_heads(shapes: Sequence[tuple[int, ...]], config: YoloConfig, channels_last: bool) -> None:
    """Raise :class:`TargetError` unless the head shapes fit ``config`` (saying what was expected)."""
    layout = "channels-last" if channels_last else "channels-first"
    if len(shapes) != config.num_scales:
        raise TargetError(
            f"the detection config has {config.num_scales} scale(s) (strides {list(config.strides)}) but the selected "
            f"output has {len(shapes)} tensor(s) {[tuple(s) for s in shapes]}; expected "
            + ", ".join(config.expected_shape(s, channels_last) for s in range(config.num_scales))
            + ". Select the raw heads with output= (an index or key, or a tuple of them, one per scale, in stride order)."
        )
    sizes = []
    for s, shape in enumerate(shapes):
        shape = tuple(int(d) for d in shape)
        c = config.channels(s)
        ch = (shape[3] if channels_last else shape[1]) if len(shape) == 4 else None
        hw = shape[1:3] if channels_last else shape[2:4]
        if ch != c:
            other = len(shape) == 4 and (shape[1] if channels_last else shape[3]) == c
            hint = (
                f" It looks {'channels-first' if channels_last else 'channels-last'}: set "
                f"layout={'channels_first' if channels_last else 'channels_last'!r} in the YoloConfig."
                if other
                else f" ({len(config.anchors[s])} anchors x (4 box + 1 objectness + {config.num_classes} classes) = {c} channels.)"
            )
            raise TargetError(
                f"scale {s} (stride {config.strides[s]}) of the detection head has shape {shape}, but the config expects "
                f"{config.expected_shape(s, channels_last)} ({layout}).{hint}"
            )
        sizes.append((int(hw[0]) * config.strides[s], int(hw[1]) * config.strides[s]))
    if len(set(sizes)) > 1:
        raise TargetError(
            f"the head grids do not cover the same input size with strides {list(config.strides)}: grid x stride = "
            f"{sizes}. Check the order of strides (one per output, in the order the model returns them)."
        )


def canonical(head: np.ndarray, num_anchors: int, num_classes: int, channels_last: bool) -> np.ndarray:
    """A raw head as ``(N, A, H, W, 5 + C)``."""
    n = head.shape[0]
    if channels_last:
        h, w = head.shape[1:3]
        return head.reshape(n, h, w, num_anchors, 5 + num_classes).transpose(0, 3, 1, 2, 4)
    h, w = head.shape[2:4]
    return head.reshape(n, num_anchors, 5 + num_classes, h, w).transpose(0, 1, 3, 4, 2)


def decode_boxes(raw: np.ndarray, anchors: Sequence[tuple[float, float]], stride: int, decoding: str = "yolov3") -> np.ndarray:
    """``(x1, y1, x2, y2)`` in input pixels, (N, A, H, W, 4), from canonical raw ``(N, A, H, W, 5 + C)``."""
    _, a, h, w, _ = raw.shape
    t = raw[..., :4].astype(np.float64)
    col = np.arange(w, dtype=np.float64)[None, None, None, :]
    row = np.arange(h, dtype=np.float64)[None, None, :, None]
    aw = np.array([p[0] for p in anchors], np.float64)[None, :, None, None]
    ah = np.array([p[1] for p in anchors], np.float64)[None, :, None, None]
    if decoding == "yolov5":
        cx = (2.0 * _sigmoid(t[..., 0]) - 0.5 + col) * stride
        cy = (2.0 * _sigmoid(t[..., 1]) - 0.5 + row) * stride
        bw = aw * (2.0 * _sigmoid(t[..., 2])) ** 2
        bh = ah * (2.0 * _sigmoid(t[..., 3])) ** 2
    else:
        cx = (_sigmoid(t[..., 0]) + col) * stride
        cy = (_sigmoid(t[..., 1]) + row) * stride
        bw = aw * np.exp(np.minimum(t[..., 2], 30.0))
        bh = ah * np.exp(np.minimum(t[..., 3], 30.0))
    return np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=-1)


@dataclass
class Decoded:
    """All cells and anchors of every scale, each array (N, A_s, H_s, W_s, ...) in a list per scale."""

    boxes: list[np.ndarray]
    objectness: list[np.ndarray]
    class_probs: list[np.ndarray]

    def confidences(self) -> list[np.ndarray]:
        """Per scale: ``sigmoid(obj) * sigmoid(class)``, (N, A, H, W, C)."""
        return [o[..., None] * p for o, p in zip(self.objectness, self.class_probs)]


def decode(heads: Sequence[np.ndarray], config: YoloConfig, channels_last: bool) -> Decoded:
    """Decode raw heads (numpy, one per scale) into boxes and probabilities; shapes are checked."""
    check_heads([h.shape for h in heads], config, channels_last)
    boxes, obj, cls = [], [], []
    for s, head in enumerate(heads):
        raw = canonical(np.asarray(head, np.float64), len(config.anchors[s]), config.num_classes, channels_last)
        boxes.append(decode_boxes(raw, config.anchors[s], config.strides[s], config.decoding))
        obj.append(_sigmoid(raw[..., 4]))
        cls.append(_sigmoid(raw[..., 5:]))
    return Decoded(boxes, obj, cls)
