"""The array operations methods need, per framework (part of the backend protocol)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

__all__ = ["Ops", "Tensor"]

Tensor = Any


class Ops(ABC):
    """Array operations the methods need, per framework. All take and return tensors.

    ``channels_last`` is the framework's convention for image-like tensors (PyTorch
    False: (N, C, H, W); Keras True: (N, H, W, C)); targets on segmentation and detection
    outputs use it unless told a layout. Every method is abstract: a backend that misses
    one cannot be instantiated.
    """

    channels_last: bool = False

    def fuse(self, fn: Callable[..., Tensor], *static: Hashable) -> Callable[..., Tensor]:
        """``fn(ops, *tensors, *static)`` as one call on tensors: a few element-wise ops on a
        layer's tensors run as one compiled function where a framework's eager ops each cost
        a fixed overhead (Keras: ``tf.function``, traced once per ``fn`` and ``static``);
        here, as they are. ``fn`` must use only these ops (no host copies) and be a module-level
        function: compiled functions are kept per ``fn``, so a closure made per call would be
        traced again at every call and kept."""
        return lambda *tensors: fn(self, *tensors, *static)

    def tiled_plus(self, a: np.ndarray, t: Tensor, k: int) -> Tensor:
        """``a + tile_batch(t, k)`` as a tensor in ``t``'s layout: ``a`` (k * rows, ...) numpy, e.g.
        SmoothGrad's noise. ``a`` is the caller's scratch: a backend may add ``t`` into it in
        place (PyTorch: no tiled copy of ``t``); the sum is the same (float addition commutes)."""
        return self.tile_batch(t, k) + self.from_numpy(a, t)

    @abstractmethod
    def numpy(self, t: Tensor) -> np.ndarray: ...

    def view(self, t: Tensor) -> np.ndarray:
        """``t`` as a numpy array to read, not to keep or write: shares the tensor's memory where the
        framework allows (a host tensor), else a copy. For checks on large tensors (zero gradients)."""
        return self.numpy(t)

    @abstractmethod
    def is_tensor(self, t: Any) -> bool: ...
    @abstractmethod
    def detach(self, t: Tensor) -> Tensor: ...
    @abstractmethod
    def shape(self, t: Tensor) -> tuple[int, ...]: ...
    @abstractmethod
    def batch_size(self, t: Tensor) -> int: ...
    @abstractmethod
    def argmax(self, t: Tensor, axis: int) -> Tensor: ...
    @abstractmethod
    def as_index(self, idx: np.ndarray, like: Tensor) -> Tensor: ...
    @abstractmethod
    def take_rows(self, t: Tensor, idx: Tensor) -> Tensor: ...
    @abstractmethod
    def mean(self, t: Tensor, axis: tuple[int, ...], keepdims: bool = False) -> Tensor: ...
    @abstractmethod
    def sum(self, t: Tensor, axis: int | tuple[int, ...], keepdims: bool = False) -> Tensor: ...
    @abstractmethod
    def relu(self, t: Tensor) -> Tensor: ...
    @abstractmethod
    def step(self, t: Tensor) -> Tensor: ...
    @abstractmethod
    def from_numpy(self, a: np.ndarray, like: Tensor) -> Tensor: ...
    @abstractmethod
    def tile_batch(self, t: Tensor, k: int) -> Tensor: ...
    @abstractmethod
    def reshape(self, t: Tensor, shape: tuple[int, ...]) -> Tensor: ...
    @abstractmethod
    def sigmoid(self, t: Tensor) -> Tensor: ...
    @abstractmethod
    def concat(self, ts: list[Tensor], axis: int = 0) -> Tensor: ...
    @abstractmethod
    def topk(self, t: Tensor, k: int) -> Tensor:
        """Indices (N, k) of the k largest values of each row of ``t`` (N, C), largest first; no gradient."""
    @abstractmethod
    def take_along(self, t: Tensor, idx: Tensor) -> Tensor:
        """``t[i, idx[i, j]]`` for ``t`` (N, C) and ``idx`` (N, k): (N, k), differentiable in ``t``."""
    @abstractmethod
    def min(self, t: Tensor, axis: int | tuple[int, ...], keepdims: bool = False) -> Tensor: ...
    @abstractmethod
    def max(self, t: Tensor, axis: int | tuple[int, ...], keepdims: bool = False) -> Tensor: ...
    @abstractmethod
    def safe_div(self, a: Tensor, b: Tensor) -> Tensor:
        """``a / b`` where ``b != 0``, 0 where ``b == 0`` (broadcasting)."""
    @abstractmethod
    def resize(self, maps: Tensor, size: tuple[int, int]) -> Tensor:
        """Bilinear resize of (B, h, w) maps to (B, H, W), ``align_corners=False`` (as :func:`gradsight.maps.resize`)."""
    @abstractmethod
    def principal_projection(self, a: Tensor, channel_axis: int) -> Tensor:
        """(N, h, w) float32: each sample's (h*w x C) activations ``a`` (4-D, channels at
        ``channel_axis``), centred over positions, projected on their first right singular
        vector; the sign is arbitrary (the caller fixes it). Computed in float64 from the
        smaller Gram matrix (C x C, or h*w x h*w when h*w < C) by a symmetric eigensolver:
        ``M v`` for the top eigenvector v of ``MᵀM``, or ``sqrt(λ) u`` for the top (λ, u) of ``MMᵀ``."""
