"""YOLO-style detection heads in numpy: decoding configuration, boxes, NMS and mAP.

Everything here runs outside the gradient path: it reads raw head outputs (as numpy
arrays) to choose *what* to explain -- which class, which cells and anchors -- and to
draw the detected boxes. The score that is differentiated is computed by
:class:`gradsight.targets.Detection` with the backend's ops; explaining every detected
box of a model is :func:`gradsight.detect.explain_detections` (above the api).

- :mod:`.yolo`: :class:`YoloConfig` (classes, anchors and strides per scale, layout,
  decoding), head shape checks, decoding raw heads into boxes and probabilities;
- :mod:`.boxes`: :class:`Detections`, :func:`box_iou`, :func:`nms`, :func:`detect`;
- :mod:`.metrics`: VOC-style :func:`average_precision` and :func:`mean_average_precision`.

This package imports numpy and :mod:`gradsight.errors` only.

Example
-------
A head with two scales, strides 8 and 16, two anchors each, five classes (the bundled
demo detector)::

    from gradsight.detection import YoloConfig, detect

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

from .._deprecation import moved
from .boxes import Detections, box_iou, detect, nms
from .boxes import as_boxes as as_boxes
from .metrics import average_precision, mean_average_precision
from .yolo import DECODINGS, YoloConfig, canonical, check_heads, decode, decode_boxes
from .yolo import LAYOUTS as LAYOUTS
from .yolo import Decoded as Decoded

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
    # Deprecated here (they need the api, which is above this package): use gradsight.detect.
    "BoxExplanations",
    "explain_detections",
]

__getattr__ = moved(__name__, {"BoxExplanations": "gradsight.detect", "explain_detections": "gradsight.detect"})
