"""What kind of input a batch is, by its rank and the model: a table, a signal, an image or a volume.

Every method asks :func:`input_kind` instead of guessing from the rank alone:

========  ===========================  ===========================  ======================
rank      PyTorch (channels first)     Keras (channels last)        kind
========  ===========================  ===========================  ======================
2         (N, F)                       (N, F)                       ``"table"``
3         (N, C, L)                    (N, L, C)                    ``"signal"`` (a model whose first convolution is 1-D)
3         (N, H, W)                    (N, H, W)                    ``"image"``, gray, no channel axis (any other model)
4         (N, C, H, W)                 (N, H, W, C)                 ``"image"``
5         (N, C, D, H, W)              (N, D, H, W, C)              ``"volume"`` (3-D scans, video)
========  ===========================  ===========================  ======================

A rank-3 batch is the one ambiguous case: a 1-D convolution decides for a signal
(:meth:`Backend.conv_rank`); a model without a convolution keeps the gray-image reading,
which changes only how heat maps are drawn, not the attributions. Heat maps are per
sample at the input's resolution: (N, L) for signals, (N, H, W) for images,
(N, D, H, W) for volumes, none for tables (features have no neighbours to colour).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import maps
from ..backends.base import Backend
from ..errors import InputError, ModelError

__all__ = ["InputKind", "cam_input", "check_layer_rank", "input_kind", "normalized"]

_LAYER_SHAPES = {
    "signal": ("(N, C, l)", "(N, l, C)"),
    "image": ("(N, C, h, w)", "(N, h, w, C)"),
    "volume": ("(N, C, d, h, w)", "(N, d, h, w, C)"),
}


@dataclass(frozen=True)
class InputKind:
    """How a batch's axes read.

    Attributes
    ----------
    kind:
        ``"table"``, ``"signal"``, ``"image"``, ``"volume"``, ``"packed"`` (several inputs in
        one (N, D) batch), or ``"other"`` (rank 6 and up).
    channel_axis:
        The axis of ``x`` holding channels (1 or the last), None for tables, gray (N, H, W)
        images and other ranks.
    size:
        The spatial size maps are resized to: (L,), (H, W) or (D, H, W); () for tables.
    """

    kind: str
    channel_axis: int | None
    size: tuple[int, ...]

    @property
    def spatial(self) -> bool:
        """True for signals, images and volumes (inputs a CAM map can be laid over)."""
        return self.kind in ("signal", "image", "volume") or (self.kind == "packed" and bool(self.size))


def input_kind(bk: Backend, model: Any, shape: tuple[int, ...]) -> InputKind:
    """The :class:`InputKind` of a batch of ``shape`` (in the model's layout) for ``model``.

    Several inputs packed into one (N, D) batch (``bk.settings.inputs``) are ``"packed"``:
    their size is the first image-shaped input's (H, W), () when none is.
    """
    rank = len(shape)
    first = bk.input_layout(model) == "channels_first"
    packing = getattr(bk.settings, "inputs", None)
    if packing is not None and rank == 2 and shape[1] == packing.width:  # not one input's own part of it
        return InputKind("packed", None, packing.image_size(not first) or ())
    if rank == 2:
        return InputKind("table", None, ())
    if rank == 3:
        if bk.conv_rank(model) == 1:
            return InputKind("signal", 1, (shape[2],)) if first else InputKind("signal", 2, (shape[1],))
        return InputKind("image", None, (shape[1], shape[2]))
    if rank in (4, 5):
        kind = "image" if rank == 4 else "volume"
        return InputKind(kind, 1, tuple(shape[2:])) if first else InputKind(kind, rank - 1, tuple(shape[1:-1]))
    return InputKind("other", None, ())


def normalized(a: np.ndarray) -> np.ndarray:
    """Each sample of ``a`` (N, ...) min-max scaled to [0, 1] over all its values (0 for a constant one)."""
    return maps.normalize(a.reshape(len(a), 1, -1)).reshape(a.shape)


def cam_input(bk: Backend, model: Any, x: Any, method: str) -> InputKind:
    """The input's kind for a CAM method; an :class:`InputError` for a table, which has no spatial axes."""
    kind = input_kind(bk, model, tuple(bk.ops.shape(x)))
    if kind.kind == "table":
        raise InputError(
            f"{method} weighs a layer's spatial positions and lays the map over the input, but x has shape "
            f"{tuple(bk.ops.shape(x))}: a table (N samples, F features; or a flattened image) has no spatial axes "
            "(its features have no order and no neighbours), so there is no map to make. Use a gradient method: "
            "guided_backprop or saliency, smoothgrad, integrated_gradients, input_x_gradient ((N, F) attributions, "
            "drawn by gs.render.feature_bars)."
        )
    return kind


def check_layer_rank(bk: Backend, kind: InputKind, shape: tuple[int, ...], layer: str | None, method: str) -> None:
    """A :class:`ModelError` unless a layer output of ``shape`` has the input's spatial rank (signals: 3-D, ...)."""
    want = {"signal": 3, "image": 4, "volume": 5}.get(kind.kind)
    if want is None or len(shape) == want:
        return
    layout = _LAYER_SHAPES[kind.kind][0 if bk.activation_channel_axis() == 1 else 1]
    raise ModelError(
        f"{method} on a {kind.kind} input needs a layer with a {want}-D output {layout}; layer {layer!r} gives "
        f"{tuple(shape)}. Pick a convolutional layer (`gradsight layers --model ...` lists them)."
    )
