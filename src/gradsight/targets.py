"""What to explain: turning a model's outputs into one score per sample.

A target is anything :func:`as_target` accepts:

- ``None``: each sample's top-1 class;
- an ``int``: the same class for every sample;
- a sequence of ``N`` ints: one class per sample;
- a callable ``outputs -> (N,)`` scores, written in the model's own framework;
- a :class:`Target` instance.

Targets are written once against the backend's small array API (``ops``), so the same
object works for PyTorch and Keras, inside or outside a traced function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import TargetError, close_matches

__all__ = ["Target", "ClassTarget", "CallableTarget", "as_target", "select_output"]

Tensor = Any


class Target:
    """Base class: ``scores(outputs, ops)`` returns ``(scores (N,), class ids (N,) or None)``."""

    def scores(self, outputs: Tensor, ops: Any) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def repeat(self, k: int) -> Target:
        """The same target for a batch made of ``k`` stacked copies of the samples."""
        return self


class ClassTarget(Target):
    """Class scores ``outputs[i, c_i]``; ``classes=None`` means each sample's top-1.

    Parameters
    ----------
    classes:
        ``None``, an int, or ``N`` ints.
    """

    def __init__(self, classes: int | Sequence[int] | np.ndarray | None = None) -> None:
        if classes is None:
            self.classes: np.ndarray | None = None
        else:
            arr = np.asarray(classes)
            if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer) or arr.ndim > 1:
                raise TargetError(
                    f"target must be None, an int, a sequence of ints (one per sample) or a callable; got {classes!r}."
                )
            self.classes = arr.astype(np.int64)

    def __repr__(self) -> str:
        return f"ClassTarget({'top-1' if self.classes is None else self.classes.tolist()})"

    def repeat(self, k: int) -> ClassTarget:
        if self.classes is None or self.classes.ndim == 0:
            return self
        return ClassTarget(np.tile(self.classes, k))

    def check(self, n: int, num_classes: int) -> None:
        """Raise :class:`TargetError` unless the classes fit ``n`` samples of ``num_classes``."""
        if self.classes is None:
            return
        if self.classes.ndim == 1 and len(self.classes) != n:
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
        shape = tuple(ops.shape(outputs))
        if len(shape) != 2:
            raise TargetError(
                f"a class target needs outputs of shape (N, classes), but the model gives {shape}. "
                "For segmentation or detection heads use gs.targets.Segmentation / Detection, "
                "or pass target=callable(outputs) -> (N,) scores."
            )
        n, c = shape
        self.check(n, c)
        if self.classes is None:
            idx = ops.argmax(outputs, axis=1)
        else:
            idx = ops.as_index(np.array(np.broadcast_to(self.classes, (n,))), outputs)
        return ops.take_rows(outputs, idx), idx


class CallableTarget(Target):
    """Scores from a user function ``outputs -> (N,)`` in the model's framework."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        self.fn = fn

    def __repr__(self) -> str:
        return f"CallableTarget({getattr(self.fn, '__name__', self.fn)!r})"

    def scores(self, outputs: Tensor, ops: Any) -> tuple[Tensor, None]:
        s = self.fn(outputs)
        n = ops.batch_size(outputs)
        shape = tuple(ops.shape(s)) if s is not None and hasattr(s, "shape") else None
        if shape not in ((n,),):
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
    return ClassTarget(target)


def _describe(outputs: Any) -> str:
    if isinstance(outputs, Mapping):
        return ", ".join(f"{k!r}: {tuple(getattr(v, 'shape', ()))}" for k, v in outputs.items())
    return ", ".join(f"[{i}]: {tuple(getattr(v, 'shape', ()))}" for i, v in enumerate(outputs))


def select_output(outputs: Any, output: int | str | None) -> Any:
    """Pick one output of a model that returns several (tuple, list or dict).

    Raises :class:`TargetError` listing the outputs when ``output`` is needed and missing
    or does not name one of them.
    """
    several = isinstance(outputs, (tuple, list, Mapping))
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
