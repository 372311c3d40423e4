"""Class targets: one class per sample, the top-k classes, a user's callable; :func:`as_target`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import TargetError
from .base import Target, Tensor, _tile

__all__ = ["ClassTarget", "TopK", "CallableTarget", "as_target"]


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
        if self.classes is not None or _one_score(np.shape(outputs)):
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
        if not isinstance(outputs, (list, tuple)) and _one_score(tuple(ops.shape(outputs))):
            return self._one_score(outputs, ops)
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


    def _one_score(self, outputs: Tensor, ops: Any) -> tuple[Tensor, Tensor | None]:
        """One score per sample, (N,) or (N, 1): a regressor or a single-logit binary classifier.

        ``classes=None`` explains the score itself; class 1 the logit and class 0 its negation
        (the logit of class 0 in the equivalent two-logit model, up to a constant).
        """
        score = ops.reshape(outputs, (-1,))
        if self.classes is None:
            return score, None
        if self.classes.ndim == 2:
            raise TargetError("the model gives one score per sample; k classes per sample (TopK) do not apply.")
        n = ops.batch_size(outputs)
        self.check(n, 2)
        cls = np.array(np.broadcast_to(self.classes, (n,)))
        sign = ops.from_numpy(np.where(cls == 0, -1.0, 1.0).astype(np.float32), score)
        return score * sign, ops.as_index(cls, score)


def _one_score(shape: tuple[int, ...]) -> bool:
    return len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)


def _class_shape(outputs: Any, ops: Any, what: str) -> tuple[int, int]:
    shape = tuple(ops.shape(outputs)) if not isinstance(outputs, (list, tuple)) else None
    if shape is None or len(shape) != 2:
        got = shape if shape is not None else f"{len(outputs)} tensors"
        raise TargetError(
            f"{what} needs outputs of shape (N, classes), but the model gives {got}. "
            "For segmentation or detection heads use gs.targets.Segmentation / Detection, "
            "or pass target=callable(outputs) -> (N,) scores."
        )
    return shape


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
