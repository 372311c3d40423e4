"""Hand-written references for detection targets, shared by the PyTorch and Keras tests.

Written from the YOLOv3 paper's formulas with plain loops, independent of
gradsight.detection: per scale, anchor a of cell (row, col) owns the channels
a * (5 + C) ... (a + 1) * (5 + C) - 1, ordered tx, ty, tw, th, objectness, classes.
"""

from __future__ import annotations

import math

import numpy as np


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def cell_vector(head: np.ndarray, i: int, a: int, row: int, col: int, depth: int, channels_last: bool) -> np.ndarray:
    """The 5 + C numbers of anchor ``a`` at (row, col) of sample ``i``."""
    if channels_last:
        return head[i, row, col, a * depth:(a + 1) * depth]
    return head[i, a * depth:(a + 1) * depth, row, col]


def grid(head: np.ndarray, channels_last: bool) -> tuple[int, int]:
    return head.shape[1:3] if channels_last else head.shape[2:4]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def decoded_box(v: np.ndarray, row: int, col: int, stride: int, anchor: tuple[float, float]) -> np.ndarray:
    """YOLOv3: centre (sigmoid(t) + cell) * stride, size anchor * exp(t)."""
    cx = (sigmoid(v[0]) + col) * stride
    cy = (sigmoid(v[1]) + row) * stride
    w, h = anchor[0] * math.exp(v[2]), anchor[1] * math.exp(v[3])
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def cell_weights(heads, strides, anchors, num_classes, channels_last, boxes=None, threshold=0.5):
    """Per scale, a float array (N, A, H, W): 1 for the cells/anchors the target counts."""
    depth = 5 + num_classes
    out = []
    for head, stride, anc in zip(heads, strides, anchors):
        n = head.shape[0]
        h, w = grid(head, channels_last)
        m = np.zeros((n, len(anc), h, w))
        for i in range(n):
            for a in range(len(anc)):
                for row in range(h):
                    for col in range(w):
                        if boxes is None:
                            m[i, a, row, col] = 1.0
                        else:
                            v = cell_vector(head, i, a, row, col, depth, channels_last)
                            box = decoded_box(v, row, col, stride, anc[a])
                            m[i, a, row, col] = float(iou(box, boxes[i]) >= threshold)
        out.append(m)
    return out


def best_class(heads, anchors, num_classes, channels_last, weights=None):
    """Per sample, the class of the most confident selected cell/anchor: argmax sigmoid(obj) sigmoid(cls)."""
    depth = 5 + num_classes
    n = heads[0].shape[0]
    best = np.full(n, -1.0)
    cls = np.zeros(n, np.int64)
    for s, (head, anc) in enumerate(zip(heads, anchors)):
        h, w = grid(head, channels_last)
        for i in range(n):
            for a in range(len(anc)):
                for row in range(h):
                    for col in range(w):
                        if weights is not None and not weights[s][i, a, row, col]:
                            continue
                        v = cell_vector(head, i, a, row, col, depth, channels_last)
                        for c in range(num_classes):
                            p = sigmoid(v[4]) * sigmoid(v[5 + c])
                            if p > best[i]:
                                best[i], cls[i] = p, c
    return cls


def random_tiny_yolo(seed: int = 0):
    """The demo detector's architecture with random weights and non-trivial BatchNorm statistics, in eval mode."""
    import torch

    from gradsight.demo.detector import TinyYolo

    torch.manual_seed(seed)
    m = TinyYolo()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.3, 0.3)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return m.eval()
