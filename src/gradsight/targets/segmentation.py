"""Segmentation targets: one class's score summed over a mask of output pixels."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import TargetError
from .base import ClassIndex, Target, Tensor, _class_array, _per_sample, _slice, _tile

__all__ = ["Segmentation"]


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

    def __init__(self, class_index: ClassIndex, mask: Any = None, layout: str | None = None) -> None:
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
        pick = onehot.reshape((n, 1, 1, c) if cl else (n, c, 1, 1))
        # A one-hot weighting picks each sample's class map with ops every framework has.
        class_map = ops.sum(outputs * ops.from_numpy(pick, outputs), axis=3 if cl else 1)
        mask = np.array(np.broadcast_to(np.asarray(frozen.mask, np.float32), (n, h, w)))  # a writable copy
        score = ops.sum(class_map * ops.from_numpy(mask, outputs), axis=(1, 2))
        return score, ops.as_index(classes, outputs)
