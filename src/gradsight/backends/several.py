"""Several model inputs as one tensor, so that every method explains them unchanged.

``x`` may be a tuple, list or dict of inputs (an image and a vector, two images, ...).
gradsight flattens each input per sample and concatenates them into one (N, D) tensor,
the *packed* input; :meth:`Packing.call_args` cuts it back into the inputs (views of
the packed tensor, in the model's layout) right before the model is called (PyTorch
``model(*x)`` / ``model(**x)``; Keras ``model([x1, x2])`` / ``model({"a": ..})``). The
gradient of the packed input is then the gradients of all inputs at once; methods that
build new batches (SmoothGrad's noisy copies, Integrated Gradients' path points) treat
the packed row as one sample, so noise and path run on every input together.
:meth:`Packing.split` turns (N, [k,] D) attributions back into one array per input.

Framework-free: the cutting uses only slicing and :meth:`~gradsight.backends.ops.Ops.reshape`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from .ops import Ops, Tensor

__all__ = ["Packing", "structure"]


def structure(x: Any) -> tuple[str, tuple[str, ...], list[Any]] | None:
    """``(kind, names, values)`` of several inputs (a tuple, list or dict), or None for one input."""
    if isinstance(x, dict):
        return "dict", tuple(str(k) for k in x), list(x.values())
    if isinstance(x, (tuple, list)):
        return type(x).__name__, tuple(f"x[{i}]" for i in range(len(x))), list(x)
    return None


@dataclass(frozen=True)
class Packing:
    """How the packed (N, D) input is cut into the model's inputs (hashable: part of a session's settings).

    Attributes
    ----------
    kind: ``"tuple"``, ``"list"`` or ``"dict"``, as the user passed ``x``.
    names: ``"x[0]"``, ``"x[1]"``, ... or the dict's keys.
    shapes: each input's shape without the batch axis, in the model's layout.
    spread: PyTorch calls ``model(*inputs)`` (``model(**inputs)`` for a dict); Keras passes
        the list or dict as the model's one argument.
    """

    kind: str
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    spread: bool
    ops: Ops = field(compare=False, repr=False)

    @property
    def sizes(self) -> list[int]:
        return [int(np.prod(s, dtype=np.int64)) for s in self.shapes]

    @property
    def bounds(self) -> list[tuple[int, int]]:
        ends = np.cumsum([0] + self.sizes).tolist()
        return list(zip(ends[:-1], ends[1:]))

    @property
    def width(self) -> int:
        """D, the packed row's length."""
        return sum(self.sizes)

    def pack(self, tensors: list[Tensor]) -> Tensor:
        """The inputs (each (N, *shape)) as one (N, D) tensor."""
        ops = self.ops
        return ops.concat([ops.reshape(t, (ops.batch_size(t), -1)) for t in tensors], axis=1)

    def unpack(self, x: Tensor) -> list[Tensor]:
        """The inputs, in the model's layout, cut from the packed (rows, D) ``x`` (gradients flow through)."""
        n = self.ops.batch_size(x)
        return [self.ops.reshape(x[:, a:b], (n, *s)) for (a, b), s in zip(self.bounds, self.shapes)]

    def call_args(self, x: Tensor) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``(args, kwargs)`` that call the model on the inputs packed in ``x``."""
        parts = self.unpack(x)
        if self.kind == "dict":
            named = dict(zip(self.names, parts))
            return ((), named) if self.spread else ((named,), {})
        if self.spread:
            return tuple(parts), {}
        return ((parts[0] if len(parts) == 1 else parts),), {}

    def split(self, a: np.ndarray) -> list[np.ndarray]:
        """(N, [k,] D) numpy attributions -> one (N, [k,] *shape) array per input."""
        lead = a.shape[:-1]
        return [np.ascontiguousarray(a[..., lo:hi]).reshape(lead + s) for (lo, hi), s in zip(self.bounds, self.shapes)]

    def pack_numpy(self, values: Any, n: int, what: str) -> np.ndarray:
        """One value per input (a number or an array broadcastable to that input) as a packed (n, D) float32 array."""
        items = structure(values)
        if items is None or len(items[2]) != len(self.shapes):
            raise InputError(
                f"{what} for {len(self.shapes)} inputs must be a number, or a {self.kind} of {len(self.shapes)} "
                f"values (one per input: a number or an array broadcastable to it); got {type(values).__name__}."
            )
        vals = [values[k] for k in self.names] if self.kind == "dict" and items[0] == "dict" else items[2]
        out = []
        for name, v, s in zip(self.names, vals, self.shapes):
            if hasattr(v, "detach"):
                v = v.detach().cpu().numpy()
            try:
                out.append(np.broadcast_to(np.asarray(v, dtype=np.float32), (n, *s)).reshape(n, -1))
            except (TypeError, ValueError):
                raise InputError(
                    f"{what} for {name} must be a number or an array broadcastable to {(n, *s)}; got "
                    f"{np.shape(v)}."
                ) from None
        return np.ascontiguousarray(np.concatenate(out, axis=1), dtype=np.float32)

    def ranges(self, xn: np.ndarray) -> np.ndarray:
        """(N, D): each sample's max - min within each input, over that input's span (SmoothGrad's scale)."""
        out = np.empty_like(xn, dtype=np.float32)
        for a, b in self.bounds:
            seg = xn[:, a:b]
            out[:, a:b] = (seg.max(1) - seg.min(1))[:, None] if b > a else 0.0
        return out

    def image_size(self, channels_last: bool) -> tuple[int, int] | None:
        """(H, W) of the first image-shaped input ((C, H, W), or (H, W, C) when ``channels_last``), else None."""
        for s in self.shapes:
            if len(s) == 3:
                return (s[0], s[1]) if channels_last else (s[1], s[2])
        return None

    def rebuild(self, values: list[Any]) -> Any:
        """``values`` (one per input) in the user's structure: a tuple, list or dict."""
        if self.kind == "dict":
            return dict(zip(self.names, values))
        return list(values) if self.kind == "list" else tuple(values)
