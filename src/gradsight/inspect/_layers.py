"""Picking a layer of a given kind, the final dense layer's input, and a quiet session."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..backends.base import Backend
from ..errors import LayerNotCalledError, LayerNotFoundError, ModelError, SaturationWarning, close_matches

__all__ = ["pick_layer", "session", "input_of_final_dense"]


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
        with bk.session(model, eval_mode=eval_mode) as run:
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
