"""The framework-specific helpers for a model, and picking a layer of a given kind."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from ..backends.base import Backend
from ..errors import LayerNotCalledError, LayerNotFoundError, ModelError, SaturationWarning, close_matches

__all__ = ["helpers", "pick_layer", "session", "input_of_final_dense"]


def helpers(bk: Backend) -> ModuleType:
    """``_torch`` or ``_keras``: the module answering parameter questions for ``bk``'s models."""
    if bk.name == "torch":
        from . import _torch

        return _torch
    from . import _keras

    return _keras


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
    found = bk.resolve_layer(model, layer)
    obj = found[1] if isinstance(found, tuple) else found
    for n, lay in among:
        if lay is obj:
            return n, lay
    what = found[0] if isinstance(found, tuple) else layer
    hint = close_matches(str(what), [n for n, _ in among]) if among else ""
    raise ModelError(
        f"layer {what!r} is a {type(obj).__name__}, not a {kind} layer; this model's {kind} layers: {names}.{hint}"
    )


@contextmanager
def session(bk: Backend, model: Any, eval_mode: bool = True) -> Iterator[None]:
    """``bk.session`` without its saturated-softmax warning, which is about gradients (inspect takes none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SaturationWarning)
        from .._locks import locked

        with locked(model), bk.session(model, eval_mode=eval_mode):  # one call per model at a time
            yield


def input_of_final_dense(fw: ModuleType, model: Any, x: Any, name: str | None) -> tuple[Any, str]:
    """``(input of the model's final dense layer for the batch x, that layer's name)``.

    The final layer is the last dense layer *called* in the forward pass (the order in
    which layers are defined can differ), found with ``name=None``; pass the returned
    name for the following batches so that only that layer is recorded. Its input need
    not be any layer's output (a functional op may come between), hence the recording
    of inputs rather than the backend's capture of outputs.
    """
    layers = fw.dense_layers(model)
    if name is not None:
        layers = [(n, lay) for n, lay in layers if n == name]
    if not layers:
        raise LayerNotFoundError(
            f"this {type(model).__name__} has no {fw.DENSE} layer, so it has no 'input of the final classifier "
            "layer'; pass layer=NAME (`gradsight layers --model ...` lists the layers)."
        )
    with fw.record_inputs(layers) as seen:
        fw.run(model, x)
    if not seen:
        raise LayerNotCalledError(
            f"no {fw.DENSE} layer of this {type(model).__name__} was called in the forward pass; pass layer=NAME."
        )
    return seen[-1][1], seen[-1][0]
