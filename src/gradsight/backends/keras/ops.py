"""The array operations methods and targets need, written with TensorFlow ops.

Every operation works on eager tensors and inside ``tf.function`` (shapes are static
there because gradsight traces with the exact input shape).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from ..base import Ops

__all__ = ["KerasOps", "FedClassOps"]


_FUSED: dict[tuple[Any, ...], Any] = {}


class KerasOps(Ops):
    channels_last = True

    def fuse(self, fn: Any, *static: Any) -> Any:
        """One ``tf.function`` per (``fn``, ``static``): eager ops cost ~0.1 ms
        each in TensorFlow, a dozen of them a tenth of a small model's Grad-CAM. Traced per input
        shape (static shapes: ``principal_projection`` reads them)."""
        key = (fn, static)
        compiled = _FUSED.get(key)
        if compiled is None:
            ops = KerasOps()
            compiled = _FUSED[key] = tf.function(
                lambda *tensors: fn(ops, *tensors, *static), autograph=False
            )
        return compiled

    def numpy(self, t: tf.Tensor) -> np.ndarray:
        a = t.numpy() if hasattr(t, "numpy") else np.asarray(t)
        return a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) and a.dtype != np.float32 else a

    def view(self, t: tf.Tensor) -> np.ndarray:
        """A host float32 tensor's memory through ``__array__`` (``Tensor.numpy()`` copies it), read-only."""
        if hasattr(t, "_numpy") and t.dtype == tf.float32 and "CPU" in t.device:  # an eager tensor on the host
            a = np.asarray(t)
            a.flags.writeable = False
            return a
        return self.numpy(t)

    def is_tensor(self, t: Any) -> bool:
        return bool(tf.is_tensor(t))

    def detach(self, t: tf.Tensor) -> tf.Tensor:
        return tf.stop_gradient(t)

    def shape(self, t: tf.Tensor) -> tuple[int, ...]:
        return tuple(t.shape)

    def batch_size(self, t: tf.Tensor) -> int:
        return int(t.shape[0])

    def argmax(self, t: tf.Tensor, axis: int) -> tf.Tensor:
        return tf.argmax(tf.stop_gradient(t), axis=axis, output_type=tf.int64)

    def as_index(self, idx: np.ndarray, like: tf.Tensor) -> tf.Tensor:
        return tf.constant(np.ascontiguousarray(idx), dtype=tf.int64)

    def take_rows(self, t: tf.Tensor, idx: tf.Tensor) -> tf.Tensor:
        return tf.gather(t, idx, axis=1, batch_dims=1)

    def topk(self, t: tf.Tensor, k: int) -> tf.Tensor:
        return tf.cast(tf.math.top_k(tf.stop_gradient(t), k=k).indices, tf.int64)  # ties: lower index first

    def take_along(self, t: tf.Tensor, idx: tf.Tensor) -> tf.Tensor:
        return tf.gather(t, idx, axis=1, batch_dims=1)

    def mean(self, t: tf.Tensor, axis: tuple[int, ...], keepdims: bool = False) -> tf.Tensor:
        return tf.reduce_mean(t, axis=axis, keepdims=keepdims)

    def sum(self, t: tf.Tensor, axis: int | tuple[int, ...], keepdims: bool = False) -> tf.Tensor:
        return tf.reduce_sum(t, axis=axis, keepdims=keepdims)

    def relu(self, t: tf.Tensor) -> tf.Tensor:
        return tf.maximum(t, tf.zeros_like(t))

    def step(self, t: tf.Tensor) -> tf.Tensor:
        return tf.cast(t > 0, t.dtype)

    def from_numpy(self, a: np.ndarray, like: tf.Tensor) -> tf.Tensor:
        return tf.constant(a, dtype=like.dtype)

    def tile_batch(self, t: tf.Tensor, k: int) -> tf.Tensor:
        return tf.tile(t, [k] + [1] * (t.shape.rank - 1))

    def reshape(self, t: tf.Tensor, shape: tuple[int, ...]) -> tf.Tensor:
        return tf.reshape(t, shape)

    def sigmoid(self, t: tf.Tensor) -> tf.Tensor:
        return tf.sigmoid(t)

    def concat(self, ts: list[tf.Tensor], axis: int = 0) -> tf.Tensor:
        return ts[0] if len(ts) == 1 else tf.concat(ts, axis=axis)

    def min(self, t: tf.Tensor, axis: int | tuple[int, ...], keepdims: bool = False) -> tf.Tensor:
        return tf.reduce_min(t, axis=axis, keepdims=keepdims)

    def max(self, t: tf.Tensor, axis: int | tuple[int, ...], keepdims: bool = False) -> tf.Tensor:
        return tf.reduce_max(t, axis=axis, keepdims=keepdims)

    def safe_div(self, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        return tf.math.divide_no_nan(a, b)

    def resize(self, maps: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
        # half-pixel centres, no antialiasing: PyTorch's bilinear with align_corners=False
        return tf.image.resize(maps[..., None], tuple(size), method="bilinear")[..., 0]

    def principal_projection(self, a: tf.Tensor, channel_axis: int) -> tf.Tensor:
        last = tf.stop_gradient(a if channel_axis % 4 == 3 else tf.experimental.numpy.moveaxis(a, channel_axis, -1))
        _, h, w, c = last.shape
        m = tf.cast(tf.reshape(last, (-1, h * w, c)), tf.float64)
        m = m - tf.reduce_mean(m, axis=1, keepdims=True)
        if c <= h * w:
            _, vec = tf.linalg.eigh(tf.matmul(m, m, transpose_a=True))
            proj = tf.matmul(m, vec[..., -1:])
        else:
            val, vec = tf.linalg.eigh(tf.matmul(m, m, transpose_b=True))
            proj = vec[..., -1:] * tf.sqrt(tf.maximum(val[:, -1:, None], 0.0))
        return tf.cast(tf.reshape(proj, (-1, h, w)), tf.float32)


class FedClassOps(KerasOps):
    """Ops for tracing a class target: the class ids come from a function argument.

    :class:`~gradsight.targets.ClassTarget` checks its classes (in numpy) and then asks
    ``as_index`` for the index tensor, (N,) or (N, k); handing back the traced function's
    ``classes`` argument (of that shape) instead of a constant lets one trace serve every
    choice of classes.
    """

    def __init__(self, classes: tf.Tensor) -> None:
        self.classes = classes

    def as_index(self, idx: np.ndarray, like: tf.Tensor) -> tf.Tensor:
        return self.classes
