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

Where the k axis goes
---------------------
A target whose ``scores`` are ``(N, k)`` (:class:`TopK`, a :class:`ClassTarget` with
``(N, k)`` classes) asks for k explanations per sample, computed in one batched
backward pass. Every result array gains the k axis right after the batch axis:
``attributions`` (N, k, ...), ``heatmaps`` (N, k, H, W), ``targets`` and ``scores``
(N, k).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .detection import YoloConfig, as_boxes, box_iou, check_heads, decode
from .errors import TargetError, close_matches

__all__ = [
    "Target",
    "ClassTarget",
    "TopK",
    "Segmentation",
    "Detection",
    "YoloConfig",
    "CallableTarget",
    "as_target",
    "select_output",
]

Tensor = Any
Outputs = Any  # one tensor, or a list of tensors when several outputs are selected


class Target:
    """Base class of targets.

    ``scores(outputs, ops)`` returns ``(scores, ids)``: ``scores`` (N,) for one
    explanation per sample or (N, k) for k of them; ``ids`` the explained class ids, of the
    same shape, or None when the target is not a class.

    Attributes
    ----------
    traceable:
        True when ``scores`` uses ``ops`` only (never ``ops.numpy`` of a tensor), so a
        backend may run it inside a traced function (``tf.function``). Targets that make
        their choices in numpy set it to False and run eagerly.
    """

    traceable: bool = True

    def scores(self, outputs: Outputs, ops: Any) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def repeat(self, k: int) -> Target:
        """The same target for a batch made of ``k`` stacked copies of the samples."""
        return self

    def rows(self, start: int, stop: int) -> Target:
        """The same target for samples ``start:stop`` of the batch."""
        return self

    def fixed(self, outputs: Any, ops: Any, ids: np.ndarray | None = None) -> Target:
        """This target with every choice it makes from the outputs frozen.

        ``outputs`` are the model's outputs as numpy (a list for several outputs) and
        ``ids`` the class ids :meth:`scores` returned for them. Methods that run several
        passes (SmoothGrad on noisy copies) explain the frozen target in each, so they
        all explain the same classes, pixels or cells.
        """
        return self

    def output_for(self, output: Any) -> Any:
        """The ``output=`` selection this target needs (given the user's ``output``)."""
        return output


def outputs_numpy(outputs: Outputs, ops: Any) -> Any:
    """The outputs as numpy: one array, or a list for several selected outputs."""
    if isinstance(outputs, (list, tuple)):
        return [ops.numpy(o) for o in outputs]
    return ops.numpy(outputs)


def _class_array(classes: Any, what: str) -> np.ndarray:
    arr = np.asarray(classes)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer) or arr.ndim > 1:
        raise TargetError(f"{what} must be an int or a sequence of ints (one per sample); got {classes!r}.")
    return arr.astype(np.int64)


def _per_sample(arr: np.ndarray, n: int, what: str) -> np.ndarray:
    """``arr`` (a scalar or ``n`` values) broadcast to (n,)."""
    if arr.ndim == 1 and len(arr) != n:
        raise TargetError(f"{what} has {len(arr)} values but the batch has {n} samples; pass one per sample or a single value.")
    return np.array(np.broadcast_to(arr, (n,)))


def _tile(arr: np.ndarray | None, k: int) -> np.ndarray | None:
    """``k`` stacked copies along the batch axis; scalars stay."""
    if arr is None or arr.ndim == 0:
        return arr
    return np.tile(arr, (k,) + (1,) * (arr.ndim - 1))


def _slice(arr: np.ndarray | None, start: int, stop: int, batch_ndim: int = 1) -> np.ndarray | None:
    """Rows ``start:stop`` of a per-sample array (one with ``batch_ndim`` dimensions or more)."""
    if arr is None or arr.ndim < batch_ndim:
        return arr
    return arr[start:stop]


class ClassTarget(Target):
    """Class scores ``outputs[i, c_i]``; ``classes=None`` means each sample's top-1.

    Parameters
    ----------
    classes:
        ``None``, an int, ``N`` ints, or an (N, k) array of ints: k classes per sample,
        k explanations per sample (see the module docstring for the k axis).
    """

    def __init__(self, classes: int | Sequence[int] | np.ndarray | None = None) -> None:
        if classes is None:
            self.classes: np.ndarray | None = None
        else:
            arr = np.asarray(classes)
            if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer) or arr.ndim > 2:
                raise TargetError(
                    f"target must be None, an int, a sequence of ints (one per sample) or a callable; got {classes!r}."
                )
            self.classes = arr.astype(np.int64)

    def __repr__(self) -> str:
        return f"ClassTarget({'top-1' if self.classes is None else self.classes.tolist()})"

    def repeat(self, k: int) -> ClassTarget:
        if self.classes is None or self.classes.ndim == 0:
            return self
        return ClassTarget(_tile(self.classes, k))

    def rows(self, start: int, stop: int) -> ClassTarget:
        if self.classes is None or self.classes.ndim == 0:
            return self
        return ClassTarget(self.classes[start:stop])

    def fixed(self, outputs: Any, ops: Any, ids: np.ndarray | None = None) -> ClassTarget:
        if self.classes is not None:
            return self
        if ids is None:
            ids = np.asarray(outputs).argmax(1)
        return ClassTarget(ids)

    def check(self, n: int, num_classes: int) -> None:
        """Raise :class:`TargetError` unless the classes fit ``n`` samples of ``num_classes``."""
        if self.classes is None:
            return
        if self.classes.ndim >= 1 and len(self.classes) != n:
            raise TargetError(
                f"target has {len(self.classes)} classes but the batch has {n} samples; "
                "pass one class per sample, a single int, or None for each sample's top-1."
            )
        bad = self.classes[(self.classes < 0) | (self.classes >= num_classes)]
        if bad.size:
            raise TargetError(
                f"target class {int(bad.flat[0])} is out of range: the model has {num_classes} outputs "
                f"(valid classes 0..{num_classes - 1})."
            )

    def scores(self, outputs: Tensor, ops: Any) -> tuple[Tensor, Tensor]:
        shape = _class_shape(outputs, ops, "a class target")
        n, c = shape
        self.check(n, c)
        if self.classes is None:
            idx = ops.argmax(outputs, axis=1)
        elif self.classes.ndim == 2:
            idx = ops.as_index(self.classes, outputs)
            return ops.take_along(outputs, idx), idx
        else:
            idx = ops.as_index(np.array(np.broadcast_to(self.classes, (n,))), outputs)
        return ops.take_rows(outputs, idx), idx


def _class_shape(outputs: Any, ops: Any, what: str) -> tuple[int, int]:
    shape = tuple(ops.shape(outputs)) if not isinstance(outputs, (list, tuple)) else None
    if shape is None or len(shape) != 2:
        got = shape if shape is not None else f"{len(outputs)} tensors"
        raise TargetError(
            f"{what} needs outputs of shape (N, classes), but the model gives {got}. "
            "For segmentation or detection heads use gs.targets.Segmentation / Detection, "
            "or pass target=callable(outputs) -> (N,) scores."
        )
    return shape  # type: ignore[return-value]


class TopK(Target):
    """The ``k`` highest-scoring classes of each sample: k explanations per image.

    Result arrays gain a k axis after the batch axis: ``attributions`` (N, k, ...),
    ``heatmaps`` (N, k, H, W), ``targets`` and ``scores`` (N, k); column ``j`` is the
    class ranked ``j + 1``. The k backward passes run together, batched.

    Example
    -------
    >>> exp = gs.explain(model, x, "gradcam", target=gs.targets.TopK(5))
    >>> exp.targets.shape, exp.heatmaps.shape     # (N, 5), (N, 5, H, W)
    """

    def __init__(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise TargetError(f"TopK(k) needs a positive int k; got {k!r}.")
        self.k = int(k)

    def __repr__(self) -> str:
        return f"TopK({self.k})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TopK) and other.k == self.k

    def __hash__(self) -> int:
        return hash(("TopK", self.k))

    def _check(self, num_classes: int) -> None:
        if self.k > num_classes:
            raise TargetError(
                f"TopK({self.k}) asks for more classes than the model has outputs ({num_classes}); "
                f"use k <= {num_classes}."
            )

    def scores(self, outputs: Tensor, ops: Any) -> tuple[Tensor, Tensor]:
        _, c = _class_shape(outputs, ops, "TopK")
        self._check(c)
        idx = ops.topk(outputs, self.k)
        return ops.take_along(outputs, idx), idx

    def fixed(self, outputs: Any, ops: Any, ids: np.ndarray | None = None) -> ClassTarget:
        if ids is None:
            out = np.asarray(outputs)
            self._check(out.shape[1])
            ids = np.argsort(-out, axis=1, kind="stable")[:, : self.k]
        return ClassTarget(ids)


class Segmentation(Target):
    """The sum of one class's score over a mask of output pixels.

    ``score_i = sum_{h, w} mask_i[h, w] * outputs[i, class_i, h, w]`` (channels-first; the
    class axis is last for channels-last outputs).

    Parameters
    ----------
    class_index:
        The class, or one class per sample.
    mask:
        Which pixels count, at the output's resolution: (H, W) for every sample or
        (N, H, W); booleans, or float weights. None: the pixels the model predicts as the
        class (argmax over classes), chosen per sample from the outputs.
    layout:
        ``"channels_first"`` (N, C, H, W) or ``"channels_last"`` (N, H, W, C); None: the
        framework's convention (PyTorch first, Keras last).
    """

    traceable = False

    def __init__(self, class_index: int | Sequence[int], mask: Any = None, layout: str | None = None) -> None:
        self.classes = _class_array(class_index, "Segmentation class_index")
        self.mask = None if mask is None else np.asarray(mask)
        if self.mask is not None and self.mask.ndim not in (2, 3):
            raise TargetError(f"Segmentation mask must be (H, W) or (N, H, W); got shape {self.mask.shape}.")
        if layout not in (None, "channels_first", "channels_last"):
            raise TargetError(f"layout must be 'channels_first', 'channels_last' or None; got {layout!r}.")
        self.layout = layout

    def __repr__(self) -> str:
        mask = "predicted" if self.mask is None else f"mask {self.mask.shape}"
        return f"Segmentation({self.classes.tolist()}, {mask})"

    def _channels_last(self, ops: Any) -> bool:
        return bool(ops.channels_last) if self.layout is None else self.layout == "channels_last"

    def _geometry(self, shape: tuple[int, ...], cl: bool) -> tuple[int, int, int, int]:
        if len(shape) != 4:
            raise TargetError(
                f"a Segmentation target needs 4-D outputs ({'(N, H, W, C)' if cl else '(N, C, H, W)'}), "
                f"but the model gives {shape}."
            )
        n, c, h, w = (shape[0], shape[3], shape[1], shape[2]) if cl else shape
        classes = _per_sample(self.classes, n, "Segmentation class_index")
        bad = classes[(classes < 0) | (classes >= c)]
        if bad.size:
            raise TargetError(
                f"Segmentation class {int(bad[0])} is out of range: the output has {c} classes "
                f"({'last' if cl else 'second'} axis of {shape}); valid classes 0..{c - 1}."
            )
        if self.mask is not None and self.mask.shape not in ((h, w), (n, h, w)):
            raise TargetError(
                f"the Segmentation mask has shape {self.mask.shape}, but the model's output is {shape} "
                f"({'channels-last' if cl else 'channels-first'}), so the mask must be ({h}, {w}) or ({n}, {h}, {w}); "
                "resize it to the output's resolution (nearest neighbour)."
            )
        return n, c, h, w

    def fixed(self, outputs: Any, ops: Any, ids: np.ndarray | None = None) -> Segmentation:
        if self.mask is not None:
            return self
        out = np.asarray(outputs)
        cl = self._channels_last(ops)
        n, c, h, w = self._geometry(out.shape, cl)
        classes = _per_sample(self.classes, n, "Segmentation class_index")
        predicted = out.argmax(axis=3 if cl else 1) == classes[:, None, None]
        empty = np.flatnonzero(~predicted.reshape(n, -1).any(1))
        if empty.size:
            raise TargetError(
                f"no output pixel is predicted as class(es) {classes[empty].tolist()} in sample(s) {empty.tolist()[:10]}, "
                "so the Segmentation score would be 0 with a zero gradient; pass mask= (the pixels to explain) "
                "or choose a class the model predicts."
            )
        return Segmentation(self.classes, mask=predicted, layout="channels_last" if cl else "channels_first")

    def rows(self, start: int, stop: int) -> Segmentation:
        return Segmentation(_slice(self.classes, start, stop), _slice(self.mask, start, stop, 3), self.layout)

    def repeat(self, k: int) -> Segmentation:
        mask = self.mask if self.mask is None or self.mask.ndim == 2 else _tile(self.mask, k)
        return Segmentation(_tile(self.classes, k), mask, self.layout)

    def scores(self, outputs: Tensor, ops: Any) -> tuple[Tensor, Tensor]:
        if isinstance(outputs, (list, tuple)):
            raise TargetError(f"a Segmentation target needs one output tensor; {len(outputs)} were selected (output=).")
        cl = self._channels_last(ops)
        shape = tuple(ops.shape(outputs))
        n, c, h, w = self._geometry(shape, cl)
        frozen = self.fixed(ops.numpy(outputs), ops) if self.mask is None else self
        classes = _per_sample(self.classes, n, "Segmentation class_index")
        onehot = np.zeros((n, c), np.float32)
        onehot[np.arange(n), classes] = 1.0
        onehot = onehot.reshape((n, 1, 1, c) if cl else (n, c, 1, 1))
        # A one-hot weighting picks each sample's class map with ops every framework has.
        class_map = ops.sum(outputs * ops.from_numpy(onehot, outputs), axis=3 if cl else 1)
        mask = np.array(np.broadcast_to(np.asarray(frozen.mask, np.float32), (n, h, w)))  # a writable copy
        score = ops.sum(class_map * ops.from_numpy(mask, outputs), axis=(1, 2))
        return score, ops.as_index(classes, outputs)


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
        class_index: int | Sequence[int] | None = None,
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
        args = {"class_index": self.classes, "box": self.box, "iou": self.iou, "cells": self.cells}
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


class CallableTarget(Target):
    """Scores from a user function ``outputs -> (N,)`` in the model's framework."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        self.fn = fn

    def __repr__(self) -> str:
        return f"CallableTarget({getattr(self.fn, '__name__', self.fn)!r})"

    def scores(self, outputs: Tensor, ops: Any) -> tuple[Tensor, None]:
        s = self.fn(outputs)
        n = ops.batch_size(outputs[0] if isinstance(outputs, (list, tuple)) else outputs)
        shape = tuple(ops.shape(s)) if s is not None and hasattr(s, "shape") else None
        if shape != (n,):
            raise TargetError(
                f"the target callable must return one score per sample, shape ({n},); it returned "
                f"{'shape ' + str(shape) if shape is not None else type(s).__name__}."
            )
        return s, None


def as_target(target: Any) -> Target:
    """Turn a user's ``target`` argument into a :class:`Target`."""
    if isinstance(target, Target):
        return target
    if target is None or target == "top1":
        return ClassTarget(None)
    if callable(target):
        return CallableTarget(target)
    if isinstance(target, str):
        raise TargetError(f"unknown target {target!r}; use None or 'top1', an int, a list of ints, or a callable.")
    if np.ndim(target) > 1:  # k classes per sample only when asked for explicitly
        raise TargetError(
            f"target must be None, an int, a sequence of ints (one per sample) or a callable; got {target!r}. "
            "For several classes per sample use gs.targets.TopK(k) or gs.targets.ClassTarget(array of shape (N, k))."
        )
    return ClassTarget(target)


def _describe(outputs: Any) -> str:
    if isinstance(outputs, Mapping):
        return ", ".join(f"{k!r}: {tuple(getattr(v, 'shape', ()))}" for k, v in outputs.items())
    return ", ".join(f"[{i}]: {tuple(getattr(v, 'shape', ()))}" for i, v in enumerate(outputs))


def select_output(outputs: Any, output: int | str | Sequence[int | str] | None) -> Any:
    """Pick one output of a model that returns several (tuple, list or dict).

    ``output`` is an index or key, or a tuple/list of them (then a list of the chosen
    outputs is returned). Raises :class:`TargetError` listing the outputs when ``output``
    is needed and missing or does not name one of them.
    """
    several = isinstance(outputs, (tuple, list, Mapping))
    if isinstance(output, (tuple, list)):  # several outputs at once, e.g. every scale of a detector
        if not several:
            raise TargetError(f"output={output!r} selects several outputs but the model returns a single output.")
        return [select_output(outputs, o) for o in output]
    if not several:
        if output not in (None, 0):
            raise TargetError(f"output={output!r} was given but the model returns a single output.")
        return outputs
    if isinstance(outputs, Mapping):
        if output is None:
            raise TargetError(f"the model returns several outputs ({_describe(outputs)}); choose one with output=KEY.")
        if output not in outputs:
            raise TargetError(
                f"output={output!r} is not one of the model's outputs ({_describe(outputs)})."
                + close_matches(str(output), [str(k) for k in outputs])
            )
        return outputs[output]
    if len(outputs) == 1 and output is None:
        return outputs[0]
    if output is None:
        raise TargetError(f"the model returns {len(outputs)} outputs ({_describe(outputs)}); choose one with output=INDEX.")
    if not isinstance(output, int) or not -len(outputs) <= output < len(outputs):
        raise TargetError(f"output={output!r} is out of range for the model's outputs ({_describe(outputs)}).")
    return outputs[output]
