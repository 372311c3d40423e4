"""YOLO-style detection heads: decoding configuration, IoU, NMS and mAP, in numpy.

Everything here runs outside the gradient path: it reads raw head outputs (as numpy
arrays) to choose *what* to explain -- which class, which cells and anchors -- and to
draw the detected boxes. The score that is differentiated is computed by
:class:`gradsight.targets.Detection` with the backend's ops.

A raw YOLO head is one convolution output per scale, with, for each grid cell and each
anchor of that scale, ``4 + 1 + C`` numbers: the box ``(tx, ty, tw, th)``, the objectness
logit and ``C`` class logits (YOLOv3's order, used by Darknet, ultralytics and
keras-yolo3). Channels-first heads are ``(N, A * (5 + C), H, W)``; channels-last heads are
``(N, H, W, A * (5 + C))``. Inside the channel axis anchor ``a`` owns channels
``a * (5 + C) ... (a + 1) * (5 + C) - 1``.

Example
-------
A head with two scales, strides 8 and 16, two anchors each, five classes (the bundled
demo detector)::

    from gradsight.detection import YoloConfig

    config = YoloConfig(
        num_classes=5,
        strides=(8, 16),
        anchors=(((12, 12), (20, 20)), ((28, 28), (40, 40))),  # (w, h) in input pixels, per scale
        layout=None,          # None: the framework's convention (PyTorch first, Keras last)
        decoding="yolov3",    # x = (sigmoid(tx) + col) * stride, w = anchor_w * exp(tw)
    )
    # outputs: (N, 20, 8, 8) and (N, 20, 4, 4) for 64x64 inputs (channels-first)
    detections = detect([p8, p16], config, channels_last=False)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import TargetError

__all__ = [
    "YoloConfig",
    "Detections",
    "DECODINGS",
    "canonical",
    "check_heads",
    "decode",
    "decode_boxes",
    "box_iou",
    "nms",
    "detect",
    "average_precision",
    "mean_average_precision",
    "BoxExplanations",
    "explain_detections",
]

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

    def confidences(self, classes: np.ndarray | None = None) -> list[np.ndarray]:
        """Per scale: ``sigmoid(obj) * sigmoid(class)``; (N, A, H, W, C), or (N, A, H, W) for one class per sample."""
        if classes is None:
            return [o[..., None] * p for o, p in zip(self.objectness, self.class_probs)]
        return [o * np.take_along_axis(p, classes.reshape(-1, 1, 1, 1, 1), axis=4)[..., 0]
                for o, p in zip(self.objectness, self.class_probs)]


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


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision-recall curve, all-point interpolation (PASCAL VOC 2010+)."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def mean_average_precision(
    predictions: Sequence[Detections],
    true_boxes: Sequence[np.ndarray],
    true_classes: Sequence[np.ndarray],
    num_classes: int,
    iou_threshold: float = 0.5,
) -> tuple[float, np.ndarray]:
    """mAP at ``iou_threshold`` (VOC style: greedy matching by score, all-point AP per class).

    Returns ``(mAP over classes that occur in the ground truth, AP per class (NaN where absent))``.
    """
    aps = np.full(num_classes, np.nan)
    for c in range(num_classes):
        gts = [np.asarray(b)[np.asarray(k) == c] for b, k in zip(true_boxes, true_classes)]
        total = sum(len(g) for g in gts)
        if total == 0:
            continue
        rows: list[tuple[float, int, np.ndarray]] = []
        for i, det in enumerate(predictions):
            sel = det.classes == c
            rows += [(float(s), i, b) for s, b in zip(det.scores[sel], det.boxes[sel])]
        rows.sort(key=lambda r: -r[0])
        used = [np.zeros(len(g), bool) for g in gts]
        tp = np.zeros(len(rows))
        for j, (_, i, b) in enumerate(rows):
            if len(gts[i]):
                iou = box_iou(b, gts[i])[0]
                best = int(np.argmax(iou))
                if iou[best] >= iou_threshold and not used[i][best]:
                    used[i][best] = True
                    tp[j] = 1
        ctp = np.cumsum(tp)
        recall = ctp / total
        precision = ctp / np.arange(1, len(rows) + 1)
        aps[c] = average_precision(recall, precision) if len(rows) else 0.0
    present = aps[~np.isnan(aps)]
    return (float(present.mean()) if present.size else 0.0), aps


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


@dataclass
class BoxExplanations:
    """What :func:`explain_detections` returns.

    Attributes
    ----------
    detections: per image, the boxes kept after NMS.
    explanation: one row per detected box (all images' boxes in order), or None when
        nothing was detected.
    image_index: int64 (boxes,): the image each row of ``explanation`` belongs to.
    """

    detections: list[Detections]
    explanation: Any
    image_index: np.ndarray


def explain_detections(
    model: Any,
    x: Any,
    method: str = "guided_backprop",
    config: YoloConfig | None = None,
    *,
    conf_threshold: float = 0.25,
    iou_threshold: float = 0.45,
    box_iou: float = 0.5,
    layer: Any = None,
    output: Any = None,
    **options: Any,
) -> BoxExplanations:
    """Detect the boxes in each image, then explain every detected box with ``method``.

    Detection is a forward pass, :func:`detect` and a plain per-class NMS, all outside the
    gradient path. Each kept box is then explained with
    ``Detection(config, its class, box=it, iou=box_iou)``: the cells/anchors whose
    decoded box overlaps it. All boxes of all images run as one batch.

    ``config`` defaults to ``model.detection_config``, and Grad-CAM's ``layer`` to
    ``model.cam_layer`` when the model declares them (the demo detector does).
    """
    from .api import explain
    from .backends.base import backend_for
    from .targets import Detection, outputs_numpy

    config = config if config is not None else getattr(model, "detection_config", None)
    if not isinstance(config, YoloConfig):
        raise TargetError(
            "explaining detections needs the head's YoloConfig: pass config=, or set model.detection_config = "
            "gradsight.detection.YoloConfig(...) (strides, anchors, number of classes)."
        )
    if layer is None and "gradcam" in str(method):
        layer = getattr(model, "cam_layer", None)
    from ._locks import locked

    bk = backend_for(model)
    with locked(model), bk.session(model, eval_mode=True):  # one call per model at a time
        xt = bk.prepare_input(model, x)
        heads = bk.forward(model, xt, Detection(config).output_for(output))
        heads_np = outputs_numpy(heads, bk.ops)
        x_np = bk.ops.numpy(xt)
    dets = detect(heads_np if isinstance(heads_np, list) else [heads_np], config, bool(bk.ops.channels_last),
                  conf_threshold, iou_threshold)
    index = np.array([i for i, d in enumerate(dets) for _ in range(len(d))], np.int64)
    if index.size == 0:
        return BoxExplanations(dets, None, index)
    boxes = np.concatenate([d.boxes for d in dets])
    classes = np.concatenate([d.classes for d in dets])
    target = Detection(config, classes, box=boxes, iou=box_iou)
    kw = dict(options, **({"layer": layer} if layer is not None else {}))
    exp = explain(model, x_np[index], method, target=target, output=output, **kw)
    return BoxExplanations(dets, exp, index)
