"""Explaining what a detector found: detect the boxes, then explain each one.

A feature built on the api: :func:`gradsight.explain` and the Backend protocol's
public forward pass (``session``, ``prepare_input``, ``forward``); the numpy box maths it uses lives in
:mod:`gradsight.detection`, the differentiated score in
:class:`gradsight.targets.Detection`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .api import explain
from .backends import backend_for
from .detection import Detections, YoloConfig, detect
from .errors import TargetError
from .targets import Detection, outputs_numpy

__all__ = ["BoxExplanations", "explain_detections"]


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
    match_iou: float = 0.5,
    layer: Any = None,
    output: Any = None,
    **options: Any,
) -> BoxExplanations:
    """Detect the boxes in each image, then explain every detected box with ``method``.

    Detection is a forward pass, :func:`~gradsight.detection.detect` and a plain
    per-class NMS, all outside the gradient path. Each kept box is then explained with
    ``Detection(config, its class, box=it, iou=match_iou)``: the cells/anchors whose
    decoded box overlaps it by at least ``match_iou``. All boxes of all images run as
    one batch.

    ``config`` defaults to ``model.detection_config``, and Grad-CAM's ``layer`` to
    ``model.cam_layer`` when the model declares them (the demo detector does).
    ``box_iou=`` is the deprecated name of ``match_iou=``.
    """
    if "box_iou" in options:
        warnings.warn("explain_detections(box_iou=) is now match_iou=; the old name goes away in the next release.",
                      DeprecationWarning, stacklevel=2)
        match_iou = options.pop("box_iou")
    config = config if config is not None else getattr(model, "detection_config", None)
    if not isinstance(config, YoloConfig):
        raise TargetError(
            "explaining detections needs the head's YoloConfig: pass config=, or set model.detection_config = "
            "gradsight.detection.YoloConfig(...) (strides, anchors, number of classes)."
        )
    if layer is None and "gradcam" in str(method):
        layer = getattr(model, "cam_layer", None)
    with backend_for(model).session(model, eval_mode=True) as run:
        xt = run.prepare_input(model, x)
        heads = outputs_numpy(run.forward(model, xt, Detection(config).output_for(output)), run.ops)
        x_np = run.ops.numpy(xt)
    dets = detect(heads if isinstance(heads, list) else [heads], config, bool(run.ops.channels_last),
                  conf_threshold, iou_threshold)
    index = np.array([i for i, d in enumerate(dets) for _ in range(len(d))], np.int64)
    if index.size == 0:
        return BoxExplanations(dets, None, index)
    boxes = np.concatenate([d.boxes for d in dets])
    classes = np.concatenate([d.classes for d in dets])
    target = Detection(config, classes, box=boxes, iou=match_iou)
    kw = dict(options, **({"layer": layer} if layer is not None else {}))
    exp = explain(model, x_np[index], method, target=target, output=output, **kw)
    return BoxExplanations(dets, exp, index)
