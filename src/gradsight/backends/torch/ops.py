"""The array operations methods and targets need, written with torch ops."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..base import Ops

__all__ = ["TorchOps"]


class TorchOps(Ops):
    channels_last = False

    def numpy(self, t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().float().numpy() if t.is_floating_point() else t.detach().cpu().numpy()

    def is_tensor(self, t: Any) -> bool:
        return isinstance(t, torch.Tensor)

    def detach(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach()

    def shape(self, t: torch.Tensor) -> tuple[int, ...]:
        return tuple(t.shape)

    def batch_size(self, t: torch.Tensor) -> int:
        return int(t.shape[0])

    def argmax(self, t: torch.Tensor, axis: int) -> torch.Tensor:
        return t.detach().argmax(dim=axis)

    def as_index(self, idx: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(idx), dtype=torch.long, device=like.device)

    def take_rows(self, t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return t.gather(1, idx[:, None])[:, 0]

    def mean(self, t: torch.Tensor, axis: tuple[int, ...], keepdims: bool = False) -> torch.Tensor:
        return t.mean(dim=axis, keepdim=keepdims)

    def sum(self, t: torch.Tensor, axis: int | tuple[int, ...], keepdims: bool = False) -> torch.Tensor:
        return t.sum(dim=axis, keepdim=keepdims)

    def relu(self, t: torch.Tensor) -> torch.Tensor:
        return torch.relu(t)

    def step(self, t: torch.Tensor) -> torch.Tensor:
        return (t > 0).to(t.dtype)

    def from_numpy(self, a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(a, device=like.device, dtype=like.dtype)
        # new batches keep a channels-last input's memory layout (mixing layouts is slow)
        return t.contiguous(memory_format=torch.channels_last) if a.ndim == 4 and _channels_last(like) else t

    def tile_batch(self, t: torch.Tensor, k: int) -> torch.Tensor:
        if not _channels_last(t):
            return t.repeat(k, *([1] * (t.dim() - 1)))
        out = torch.empty((k * t.shape[0],) + tuple(t.shape[1:]), dtype=t.dtype, device=t.device,
                          memory_format=torch.channels_last)  # repeat() would return NCHW
        out.view((k,) + tuple(t.shape)).copy_(t)
        return out

    def tiled_plus(self, a: np.ndarray, t: torch.Tensor, k: int) -> torch.Tensor:
        out = self.from_numpy(a, t)  # a's memory (or a copy of it on t's device / dtype / layout)
        try:
            copies = out.view((k,) + tuple(t.shape))
        except RuntimeError:  # strides that do not split: the plain way
            return self.tile_batch(t, k) + out
        copies.add_(t.detach())  # k copies of t added in place: no tiled copy of t
        return out

    def reshape(self, t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        return t.reshape(shape)

    def sigmoid(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(t)

    def concat(self, ts: list[torch.Tensor], axis: int = 0) -> torch.Tensor:
        return ts[0] if len(ts) == 1 else torch.cat(ts, dim=axis)

    def topk(self, t: torch.Tensor, k: int) -> torch.Tensor:
        return t.detach().topk(k, dim=1).indices

    def take_along(self, t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return t.gather(1, idx)

    def min(self, t: torch.Tensor, axis: int | tuple[int, ...], keepdims: bool = False) -> torch.Tensor:
        return t.amin(dim=axis, keepdim=keepdims)

    def max(self, t: torch.Tensor, axis: int | tuple[int, ...], keepdims: bool = False) -> torch.Tensor:
        return t.amax(dim=axis, keepdim=keepdims)

    def safe_div(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(b != 0, a / torch.where(b != 0, b, torch.ones_like(b)), torch.zeros_like(b))

    def resize(self, maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        out = torch.nn.functional.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)
        return out[:, 0]

    def principal_projection(self, a: torch.Tensor, channel_axis: int) -> torch.Tensor:
        last = torch.movedim(a.detach(), channel_axis % 4, -1)  # (N, h, w, C)
        n, h, w, c = last.shape
        m = last.reshape(n, h * w, c).double()
        m = m - m.mean(1, keepdim=True)
        if c <= h * w:
            proj = m @ torch.linalg.eigh(m.transpose(1, 2) @ m).eigenvectors[..., -1:]
        else:
            val, vec = torch.linalg.eigh(m @ m.transpose(1, 2))
            proj = vec[..., -1:] * val[:, -1:, None].clamp_min(0).sqrt()
        return proj.reshape(n, h, w).float()


def _channels_last(t: torch.Tensor) -> bool:
    """True for a 4-D tensor stored NHWC (``memory_format=torch.channels_last``) and not NCHW."""
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)
