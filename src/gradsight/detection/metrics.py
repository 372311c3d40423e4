"""Detection metrics: VOC-style average precision and mAP (used by the demo detector's training script)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .boxes import Detections, box_iou

__all__ = ["average_precision", "mean_average_precision"]


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
