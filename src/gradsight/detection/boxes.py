"""Boxes: IoU, greedy NMS, and :func:`detect` (decoded heads -> boxes per image), in numpy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import TargetError
from .yolo import YoloConfig, decode

__all__ = ["Detections", "as_boxes", "box_iou", "detect", "nms"]


@dataclass
class Detections:
    """The boxes kept for one image after NMS.

    Attributes
    ----------
    boxes: float32 (m, 4) ``(x1, y1, x2, y2)`` in input pixels.
    scores: float32 (m,) ``sigmoid(objectness) * sigmoid(class logit)``.
    classes: int64 (m,).
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    classes: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))

    def __len__(self) -> int:
        return len(self.scores)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` (n, 4) with every box in ``b`` (m, 4): (n, m).

    Boxes are ``(x1, y1, x2, y2)``; empty boxes have IoU 0 with everything.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0.0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0.0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0.0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.45) -> np.ndarray:
    """Plain greedy non-maximum suppression; indices of the kept boxes, best first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    boxes = np.asarray(boxes, np.float64)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        iou = box_iou(boxes[i], boxes[order[1:]])[0]
        order = order[1:][iou <= iou_threshold]
    return np.array(keep, dtype=np.int64)


def detect(
    heads: Sequence[np.ndarray],
    config: YoloConfig,
    channels_last: bool,
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    max_detections: int = 100,
) -> list[Detections]:
    """Boxes per image: every (cell, anchor, class) with confidence >= ``conf_threshold``, then
    per-class NMS at ``iou_threshold``, best ``max_detections`` kept.

    Parameters
    ----------
    heads:
        Raw head outputs as numpy arrays, one per scale (a single array for one scale).
    channels_last:
        The heads' layout when ``config.layout`` is None.
    """
    if isinstance(heads, np.ndarray):
        heads = [heads]
    cl = config.is_channels_last(channels_last)
    dec = decode(heads, config, cl)
    n = heads[0].shape[0]
    out = []
    for i in range(n):
        boxes = np.concatenate([b[i].reshape(-1, 4) for b in dec.boxes])
        conf = np.concatenate([c[i].reshape(-1, config.num_classes) for c in dec.confidences()])
        cell, cls = np.nonzero(conf >= conf_threshold)
        sc, bx = conf[cell, cls], boxes[cell]
        keep = []
        for c in np.unique(cls):
            idx = np.flatnonzero(cls == c)
            keep.extend(idx[nms(bx[idx], sc[idx], iou_threshold)].tolist())
        keep_arr = np.array(sorted(keep, key=lambda j: -sc[j])[:max_detections], dtype=np.int64)
        out.append(Detections(bx[keep_arr].astype(np.float32).reshape(-1, 4), sc[keep_arr].astype(np.float32),
                              cls[keep_arr].astype(np.int64)))
    return out


def as_boxes(box: Any, n: int) -> np.ndarray:
    """``box`` ((4,) or (n, 4)) as float64 (n, 4), checked."""
    arr = np.asarray(box, dtype=np.float64)
    if arr.shape == (4,):
        arr = np.broadcast_to(arr, (n, 4))
    if arr.shape != (n, 4):
        raise TargetError(
            f"box must be (x1, y1, x2, y2) in input pixels, or one such box per sample (shape ({n}, 4)); "
            f"got shape {np.shape(box)}."
        )
    if np.any(arr[:, 2] <= arr[:, 0]) or np.any(arr[:, 3] <= arr[:, 1]):
        raise TargetError(f"box must be (x1, y1, x2, y2) with x2 > x1 and y2 > y1; got {arr.tolist()}.")
    return np.ascontiguousarray(arr)
