"""Box decoding of raw YOLO heads (``gradsight.detection``) against hand-written per-cell loops.

The references are written from the papers' / ultralytics' formulas, one cell and anchor
at a time, independent of the vectorised code:

- YOLOv3: ``cx = (sigmoid(tx) + col) * stride``, ``w = anchor_w * exp(tw)``;
- YOLOv5: ``cx = (2 sigmoid(tx) - 0.5 + col) * stride``, ``w = anchor_w * (2 sigmoid(tw))^2``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from detection_refs import cell_vector, decoded_box, sigmoid
from gradsight.detection import YoloConfig, decode, detect

ANCHORS = (((10.0, 14.0), (23.0, 27.0)), ((37.0, 58.0), (81.0, 82.0)))
STRIDES = (8, 16)


def yolov5_box(v: np.ndarray, row: int, col: int, stride: int, anchor: tuple[float, float]) -> np.ndarray:
    cx = (2.0 * sigmoid(v[0]) - 0.5 + col) * stride
    cy = (2.0 * sigmoid(v[1]) - 0.5 + row) * stride
    w = anchor[0] * (2.0 * sigmoid(v[2])) ** 2
    h = anchor[1] * (2.0 * sigmoid(v[3])) ** 2
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def heads(channels_last: bool, num_classes: int = 3, n: int = 2, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    depth = 2 * (5 + num_classes)
    shapes = [(n, 4, 4, depth), (n, 2, 2, depth)] if channels_last else [(n, depth, 4, 4), (n, depth, 2, 2)]
    return [rng.normal(0, 1.5, s) for s in shapes]


@pytest.mark.parametrize("decoding", ["yolov3", "yolov5"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_decoded_boxes_and_confidences_match_a_per_cell_loop(decoding, channels_last):
    cfg = YoloConfig(num_classes=3, strides=STRIDES, anchors=ANCHORS, decoding=decoding)
    hs = heads(channels_last)
    dec = decode(hs, cfg, channels_last)
    ref_box = yolov5_box if decoding == "yolov5" else decoded_box
    depth = 5 + cfg.num_classes
    for s, (head, stride, anc) in enumerate(zip(hs, STRIDES, ANCHORS)):
        h, w = head.shape[1:3] if channels_last else head.shape[2:4]
        conf = dec.confidences()[s]
        for i in range(head.shape[0]):
            for a in range(len(anc)):
                for row in range(h):
                    for col in range(w):
                        v = cell_vector(head, i, a, row, col, depth, channels_last)
                        np.testing.assert_allclose(dec.boxes[s][i, a, row, col], ref_box(v, row, col, stride, anc[a]),
                                                   rtol=1e-10, atol=1e-9)
                        want = [sigmoid(v[4]) * sigmoid(v[5 + c]) for c in range(cfg.num_classes)]
                        np.testing.assert_allclose(conf[i, a, row, col], want, rtol=1e-10)


def test_yolov5_decoding_differs_from_yolov3_where_the_formulas_differ():
    """A worked cell, t = (1, -1, 1, -1), computed by hand; YOLOv3's box for it is elsewhere."""
    t = np.array([1.0, -1.0, 1.0, -1.0])
    v5 = yolov5_box(t, row=2, col=3, stride=8, anchor=(10.0, 14.0))
    s = 1 / (1 + math.exp(-1))
    cx, cy = (2 * s - 0.5 + 3) * 8, (2 * (1 - s) - 0.5 + 2) * 8
    bw, bh = 10 * (2 * s) ** 2, 14 * (2 * (1 - s)) ** 2
    np.testing.assert_allclose(v5, [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], rtol=1e-12)
    head = np.zeros((1, 2 * 8, 4, 4))
    head[0, 0:4, 2, 3] = t  # anchor 0 of cell (row 2, col 3), channels-first
    cfg5 = YoloConfig(num_classes=3, strides=(8,), anchors=(ANCHORS[0],), decoding="yolov5")
    cfg3 = YoloConfig(num_classes=3, strides=(8,), anchors=(ANCHORS[0],), decoding="yolov3")
    np.testing.assert_allclose(decode([head], cfg5, False).boxes[0][0, 0, 2, 3], v5, rtol=1e-12)
    assert not np.allclose(decode([head], cfg3, False).boxes[0][0, 0, 2, 3], v5, atol=0.5)


def test_detect_with_yolov5_decoding_finds_a_planted_box():
    cfg = YoloConfig(num_classes=3, strides=(8,), anchors=(ANCHORS[0],), decoding="yolov5")
    head = np.full((1, 2 * 8, 4, 4), -8.0)
    t = np.array([0.3, -0.2, 0.4, 0.1, 6.0, -6.0, 6.0, -6.0])  # anchor 1 at (row 1, col 2), class 1
    head[0, 8:16, 1, 2] = t
    (dets,) = detect([head], cfg, channels_last=False)
    assert len(dets) == 1 and int(dets.classes[0]) == 1
    np.testing.assert_allclose(dets.boxes[0], yolov5_box(t, 1, 2, 8, ANCHORS[0][1]), rtol=1e-5)
    np.testing.assert_allclose(dets.scores[0], sigmoid(6.0) ** 2, rtol=1e-5)
