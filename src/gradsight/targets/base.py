"""The target protocol: :class:`Target` turns a model's outputs into one score per sample."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import numpy as np

from ..errors import TargetError

__all__ = ["Target", "Tensor", "Outputs", "ClassIndex", "outputs_numpy"]

Tensor = Any
Outputs = Any  # one tensor, or a list of tensors when several outputs are selected
ClassIndex = int | Sequence[int] | np.ndarray  # one class, or one per sample


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


@overload
def _tile(arr: np.ndarray, k: int) -> np.ndarray: ...
@overload
def _tile(arr: np.ndarray | None, k: int) -> np.ndarray | None: ...
def _tile(arr: np.ndarray | None, k: int) -> np.ndarray | None:
    """``k`` stacked copies along the batch axis; scalars stay."""
    if arr is None or arr.ndim == 0:
        return arr
    return np.tile(arr, (k,) + (1,) * (arr.ndim - 1))


@overload
def _slice(arr: np.ndarray, start: int, stop: int, batch_ndim: int = 1) -> np.ndarray: ...
@overload
def _slice(arr: np.ndarray | None, start: int, stop: int, batch_ndim: int = 1) -> np.ndarray | None: ...
def _slice(arr: np.ndarray | None, start: int, stop: int, batch_ndim: int = 1) -> np.ndarray | None:
    """Rows ``start:stop`` of a per-sample array (one with ``batch_ndim`` dimensions or more)."""
    if arr is None or arr.ndim < batch_ndim:
        return arr
    return arr[start:stop]
