"""What to explain: turning a model's outputs into one score per sample.

A target is anything :func:`as_target` accepts:

- ``None``: each sample's top-1 class;
- an ``int``: the same class for every sample;
- a sequence of ``N`` ints: one class per sample;
- a callable ``outputs -> (N,)`` scores, written in the model's own framework;
- a :class:`Target` instance: :class:`ClassTarget`, :class:`TopK` (k classes per image),
  :class:`Segmentation` (a class over a mask of pixels), :class:`Detection` (YOLO-style
  raw heads, every box of a class or one box).

Targets are written once against the backend's small array API (``ops``), so the same
object works for PyTorch and Keras. Choices a target makes from the outputs (the top-k
classes, the predicted pixels, the cells that match a box) are made outside the
gradient path; the score that is differentiated uses ``ops`` only.

Modules: :mod:`.base` (the protocol), :mod:`.classes` (class, top-k, callable targets
and :func:`as_target`), :mod:`.segmentation`, :mod:`.detection` (YOLO scoring; the numpy
decoding it uses is :mod:`gradsight.detection`).

Where the k axis goes
---------------------
A target whose ``scores`` are ``(N, k)`` (:class:`TopK`, a :class:`ClassTarget` with
``(N, k)`` classes) asks for k explanations per sample, computed in one batched
backward pass. Every result array gains the k axis right after the batch axis:
``attributions`` (N, k, ...), ``heatmaps`` (N, k, H, W), ``targets`` and ``scores``
(N, k).
"""

from __future__ import annotations

from .._deprecation import moved
from ..detection.yolo import YoloConfig
from .base import Target
from .base import outputs_numpy as outputs_numpy
from .classes import CallableTarget, ClassTarget, TopK, as_target
from .detection import Detection
from .segmentation import Segmentation

__all__ = [
    "Target",
    "ClassTarget",
    "TopK",
    "Segmentation",
    "Detection",
    "YoloConfig",
    "CallableTarget",
    "as_target",
    "select_output",  # deprecated here: output selection is part of the backends layer now
]

__getattr__ = moved(__name__, {"select_output": "gradsight.backends.outputs"})

