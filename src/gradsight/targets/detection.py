"""Detection targets: a YOLO-style score on raw head outputs, every box of a class or one box."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..detection.boxes import as_boxes, box_iou
from ..detection.yolo import YoloConfig, check_heads, decode
from ..errors import TargetError
from .base import ClassIndex, Outputs, Target, Tensor, _class_array, _per_sample, _slice, _tile

__all__ = ["Detection"]


class Detection(Target):
    """A YOLO-style detection score on raw head outputs (one or several scales).

    ``score_i = sum over scales s, cells (h, w), anchors a of
    cells[s][i, a, h, w] * sigmoid(obj[s][i, a, h, w]) * sigmoid(cls[s][i, a, h, w, class_i])``,
    the formulation YOLO users write by hand. ``cells`` is 1 everywhere (every box of the
    class), or, with ``box=``, 1 where the cell/anchor's decoded box has IoU >= ``iou``
    with the box.

    Parameters
    ----------
    config:
        The head's :class:`~gradsight.detection.YoloConfig` (anchors, strides, layout).
    class_index:
        The class, one class per sample, or None: per sample, the class of the most
        confident cell/anchor (among the selected cells when ``box`` is given).
    box:
        ``(x1, y1, x2, y2)`` in input pixels, or one box per sample (N, 4): explain the
        detection of that box only. None: every cell and anchor.
    iou:
        IoU threshold for ``box``.
    cells:
        Advanced: the cells/anchors to sum over, one boolean array (N, A, H, W) per scale;
        overrides ``box``.

    With several scales the target selects all the model's outputs (as ``output=(0, 1,
    ...)``); pass ``output=`` to pick the raw heads of a model that returns more.

    Example
    -------
    >>> config = YoloConfig(num_classes=5, strides=(8, 16), anchors=(((12, 12), (20, 20)), ((28, 28), (40, 40))))
    >>> exp = gs.explain(model, x, "guided_backprop", target=gs.targets.Detection(config, 2, box=(8, 8, 30, 28)))
    """

    traceable = False

    def __init__(
        self,
        config: YoloConfig,
        class_index: ClassIndex | None = None,
        box: Any = None,
        iou: float = 0.5,
        cells: Sequence[np.ndarray] | None = None,
    ) -> None:
        if not isinstance(config, YoloConfig):
            raise TargetError(
                f"Detection needs a gradsight.detection.YoloConfig describing the head; got {type(config).__name__}."
            )
        if not 0.0 <= float(iou) <= 1.0:
            raise TargetError(f"iou must be in [0, 1]; got {iou!r}.")
        self.config = config
        self.classes = None if class_index is None else _class_array(class_index, "Detection class_index")
        if self.classes is not None:
            bad = self.classes[(self.classes < 0) | (self.classes >= config.num_classes)]
            if bad.size:
                raise TargetError(
                    f"Detection class {int(bad.flat[0])} is out of range: the config has {config.num_classes} classes "
                    f"(valid 0..{config.num_classes - 1})."
                )
        self.box = None if box is None else np.asarray(box, dtype=np.float64)
        self.iou = float(iou)
        self.cells = None if cells is None else [np.asarray(c, bool) for c in cells]

    def __repr__(self) -> str:
        cls = "best" if self.classes is None else self.classes.tolist()
        box = "" if self.box is None else f", box={self.box.tolist()}, iou={self.iou}"
        return f"Detection(class {cls}{box})"

    def output_for(self, output: Any) -> Any:
        if output is None and self.config.num_scales > 1:
            return tuple(range(self.config.num_scales))
        return output

    def _replace(self, **kw: Any) -> Detection:
        args: dict[str, Any] = {"class_index": self.classes, "box": self.box, "iou": self.iou, "cells": self.cells}
        args.update(kw)
        return Detection(self.config, **args)

    def rows(self, start: int, stop: int) -> Detection:
        cells = None if self.cells is None else [c[start:stop] for c in self.cells]
        return self._replace(class_index=_slice(self.classes, start, stop), box=_slice(self.box, start, stop, 2), cells=cells)

    def repeat(self, k: int) -> Detection:
        cells = None if self.cells is None else [_tile(c, k) for c in self.cells]
        box = self.box if self.box is None or self.box.ndim == 1 else _tile(self.box, k)
        return self._replace(class_index=_tile(self.classes, k), box=box, cells=cells)

    def fixed(self, outputs: Any, ops: Any, ids: np.ndarray | None = None) -> Detection:
        heads = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        cfg = self.config
        dec = decode([np.asarray(h) for h in heads], cfg, cfg.is_channels_last(bool(ops.channels_last)))
        n = heads[0].shape[0]
        cells = self._select_cells(dec, n)
        if self.classes is not None:
            classes = _per_sample(self.classes, n, "Detection class_index")
        else:  # the most confident class over the selected cells
            best = np.stack([
                np.max(np.where(m[..., None], c, -1.0).reshape(n, -1, cfg.num_classes), axis=1)
                for m, c in zip(cells, dec.confidences())
            ]).max(0)
            classes = best.argmax(1)
        return self._replace(class_index=classes, cells=cells)

    def _select_cells(self, dec: Any, n: int) -> list[np.ndarray]:
        shapes = [b.shape[:4] for b in dec.boxes]
        if self.cells is not None:
            if len(self.cells) != len(shapes) or any(c.shape != s for c, s in zip(self.cells, shapes)):
                raise TargetError(
                    f"Detection cells must be one boolean array per scale with shapes {shapes} (N, A, H, W); "
                    f"got {[c.shape for c in self.cells]}."
                )
            return self.cells
        if self.box is None:
            return [np.ones(s, bool) for s in shapes]
        boxes = as_boxes(self.box, n)
        cells, best = [], np.zeros(n)
        for b in dec.boxes:
            iou = np.stack([box_iou(boxes[i], b[i].reshape(-1, 4))[0] for i in range(n)]).reshape(b.shape[:4])
            cells.append(iou >= self.iou)
            best = np.maximum(best, iou.reshape(n, -1).max(1))
        empty = np.flatnonzero(~np.stack([c.reshape(n, -1).any(1) for c in cells]).any(0))
        if empty.size:
            raise TargetError(
                f"no cell/anchor's decoded box has IoU >= {self.iou} with the given box in sample(s) "
                f"{empty.tolist()[:10]} (best IoU {best[empty].round(3).tolist()[:10]}); lower iou= or pass a box "
                "the model detects (gradsight.detection.detect lists them)."
            )
        return cells

    def scores(self, outputs: Outputs, ops: Any) -> tuple[Tensor, Tensor]:
        cfg = self.config
        heads = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        cl = cfg.is_channels_last(bool(ops.channels_last))
        check_heads([tuple(ops.shape(h)) for h in heads], cfg, cl)
        frozen = self.fixed([ops.numpy(h) for h in heads], ops)
        n = tuple(ops.shape(heads[0]))[0]
        assert frozen.classes is not None and frozen.cells is not None  # fixed() chose them
        classes = _per_sample(frozen.classes, n, "Detection class_index")
        total = None
        for s, head in enumerate(heads):
            a, k = len(cfg.anchors[s]), 5 + cfg.num_classes
            shape = tuple(ops.shape(head))
            h, w = (shape[1], shape[2]) if cl else (shape[2], shape[3])
            # (N, H, W, A, 5+C) or (N, A, 5+C, H, W): the 5+C axis is `comp`.
            t = ops.reshape(head, (n, h, w, a, k) if cl else (n, a, k, h, w))
            comp, wshape = (4, (n, 1, 1, 1, k)) if cl else (2, (n, 1, k, 1, 1))
            pick_obj = np.zeros((n, k), np.float32)
            pick_obj[:, 4] = 1.0
            pick_cls = np.zeros((n, k), np.float32)
            pick_cls[np.arange(n), 5 + classes] = 1.0
            p = ops.sigmoid(t)
            obj = ops.sum(p * ops.from_numpy(pick_obj.reshape(wshape), head), axis=comp)
            cls = ops.sum(p * ops.from_numpy(pick_cls.reshape(wshape), head), axis=comp)
            cells = frozen.cells[s].astype(np.float32)  # (N, A, H, W)
            if cl:
                cells = cells.transpose(0, 2, 3, 1)
            term = ops.sum(obj * cls * ops.from_numpy(np.ascontiguousarray(cells), head), axis=(1, 2, 3))
            total = term if total is None else total + term
        return total, ops.as_index(classes, heads[0])
