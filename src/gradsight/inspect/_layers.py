"""Picking a layer of a given kind, the final dense layer's input, a quiet session, and the
table of a model's layer calls (``gradsight layers`` and the viewer's layer list)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..backends import backend_for
from ..backends.base import Backend
from ..errors import (
    GradsightError,
    GradsightWarning,
    LayerNotCalledError,
    LayerNotFoundError,
    ModelError,
    SaturationWarning,
    close_matches,
)

__all__ = ["LayerCall", "layer_calls", "pick_layer", "session", "input_of_final_dense"]


@dataclass(frozen=True)
class LayerCall:
    """One layer call of a forward pass: ``name``, layer ``kind`` (its type), output ``shape`` (None when
    the output is not one tensor); ``spatial``: a 4-D output with more than one position (a CAM layer);
    ``tokens``: a 3-D output of an image model (a transformer's patch tokens)."""

    name: str
    kind: str
    shape: tuple[int, ...] | None
    spatial: bool
    tokens: bool


def layer_calls(model: Any, x: Any) -> tuple[list[LayerCall], int | None]:
    """Every layer call of ``model`` on the batch ``x`` (the model's layout; a blank image will do), in call
    order, and the index of the call that ``layer="auto"`` explains: the backend's own automatic choice
    (``backends/autolayer.py``; a ViT: its last attention's input), at its last call; None when no
    layer has a map to explain. One forward for the table and one for the choice, in eval mode, with
    the model's lock held; explanation warnings (a saturating softmax) are not raised here."""
    bk = backend_for(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradsightWarning)
        with session(bk, model) as run:  # eval mode: a train-mode BatchNorm would learn from the blank input
            xt = run.prepare_input(model, x)
            rows = run.layers(model, xt)
            try:
                _, auto_name = run.activations(model, xt, "auto")
            except GradsightError:
                auto_name = None
    ch = bk.activation_channel_axis() % 4
    h, w = [a for a in (1, 2, 3) if a != ch]
    image = len(tuple(bk.ops.shape(xt))) == 4
    calls = [
        LayerCall(
            name, kind, None if s is None else tuple(int(v) for v in s),
            spatial=s is not None and len(s) == 4 and s[h] * s[w] > 1, tokens=s is not None and len(s) == 3 and image,
        )
        for name, kind, s in rows
    ]
    auto = max((k for k, c in enumerate(calls) if c.name == auto_name and (c.spatial or c.tokens)), default=None)
    return calls, auto


def pick_layer(bk: Backend, model: Any, layer: Any, among: list[tuple[str, Any]], kind: str) -> tuple[str, Any]:
    """``(name, layer)`` for ``layer`` (a name or a layer object), which must be one of ``among``.

    ``None`` picks the first of ``among``. Unknown names raise
    :class:`~gradsight.errors.LayerNotFoundError` (from the backend, with close matches); a
    layer of another kind raises :class:`~gradsight.errors.ModelError` listing those of ``kind``.
    """
    names = ", ".join(repr(n) for n, _ in among) or "none"
    if layer is None:
        if not among:
            raise ModelError(f"this {type(model).__name__} has no {kind} layer.")
        return among[0]
    found = bk.find_layer(model, layer)
    obj = found.obj
    for n, lay in among:
        if lay is obj:
            return n, lay
    what = found.name
    hint = close_matches(str(what), [n for n, _ in among]) if among else ""
    raise ModelError(
        f"layer {what!r} is a {type(obj).__name__}, not a {kind} layer; this model's {kind} layers: {names}.{hint}"
    )


@contextmanager
def session(bk: Backend, model: Any, eval_mode: bool = True) -> Iterator[Backend]:
    """``bk.session`` without its saturated-softmax warning, which is about gradients (inspect takes none).

    Yields the backend bound to the session, as ``bk.session`` does."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaturationWarning)
        from .._locks import locked

        with locked(model), bk.session(model, eval_mode=eval_mode) as run:  # one call per model at a time
            yield run


def input_of_final_dense(bk: Backend, model: Any, x: Any, name: str | None) -> tuple[Any, str]:
    """``(input of the model's final dense layer for the batch x, that layer's name)``.

    The final layer is the last dense layer *called* in the forward pass (the order in
    which layers are defined can differ), found with ``name=None``; pass the returned
    name for the following batches so that only that layer is recorded. Its input need
    not be any layer's output (a functional op may come between), hence the recording
    of inputs rather than the backend's capture of outputs.
    """
    layers = bk.dense_layers(model)
    if name is not None:
        layers = [(n, lay) for n, lay in layers if n == name]
    if not layers:
        raise LayerNotFoundError(
            f"this {type(model).__name__} has no {bk.dense_kind} layer, so it has no 'input of the final classifier "
            "layer'; pass layer=NAME (`gradsight layers --model ...` lists the layers)."
        )
    seen = bk.layer_inputs(model, x, layers)
    if not seen:
        raise LayerNotCalledError(
            f"no {bk.dense_kind} layer of this {type(model).__name__} was called in the forward pass; pass layer=NAME."
        )
    return seen[-1][1], seen[-1][0]
