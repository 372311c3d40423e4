"""Finding layers in (nested) Keras models and capturing their outputs.

Keras calls every layer through ``Layer.__call__``, which looks up ``self.call`` on the
instance. Capture shadows that attribute with a recording wrapper for the duration of a
``with`` block and removes it in ``finally``; no sub-model is built, so nested models
(a base network inside a classifier), subclassed models and layers called several times
all work, and there is no "Graph disconnected" error.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

import keras
import tensorflow as tf

from ...errors import LayerNotFoundError, ModelError, close_matches
from ..autolayer import auto_layer_error, pick, spatial_hint
from ..base import Capture, Captured, LayerRef

__all__ = [
    "PATCHING",
    "Capture",
    "capture",
    "capture_auto",
    "iter_layers",
    "named_layers",
    "find_layer",
    "is_spatial",
    "shadow",
    "wrap_call",
    "LAYOUT",
    "capture_layer",
]

LAYOUT = "(N, H, W, C)"


PATCHING = threading.RLock()
"""Held while gradsight's wrappers shadow layer attributes (capture, rules, logits): one
thread at a time, so two threads running the Python side of the same model restore
each other's patches in order. Compiled (traced) calls run no Python and never take it."""


def _children(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    if isinstance(layer, keras.Model):
        kids = list(layer.layers)
    else:
        flatten = getattr(layer, "_flatten_layers", None)  # sub-layers of custom layers
        kids = list(flatten(include_self=False, recursive=False)) if flatten else []
    return [k for k in kids if not isinstance(k, keras.layers.InputLayer)]


def named_layers(model: keras.Model) -> list[tuple[str, keras.layers.Layer]]:
    """``(path, layer)`` for every layer below ``model``, depth first; paths join names with ``/``; a layer
    shared by two nested models is listed once, at its first path. Built without a generator per layer:
    every call of a compiled model checks its layers against its traces' (:mod:`.structure`)."""
    out: list[tuple[str, keras.layers.Layer]] = []
    seen: set[int] = set()

    def visit(parent: keras.layers.Layer, prefix: str) -> None:
        for child in _children(parent):
            if id(child) not in seen:
                seen.add(id(child))
                path = prefix + child.name
                out.append((path, child))
                # most layers track no sub-layers: _flatten_layers would find none, skip its walk
                if isinstance(child, keras.Model) or getattr(child, "_layers", True):
                    visit(child, path + "/")

    visit(model, "")
    return out


def iter_layers(model: keras.Model) -> Iterator[tuple[str, keras.layers.Layer]]:
    """:func:`named_layers`, iterated (one walk of the model, whichever form the caller wants)."""
    return iter(named_layers(model))


def find_layer(
    model: keras.Model, layer: Any, named: list[tuple[str, keras.layers.Layer]] | None = None
) -> LayerRef:
    """The layer named by a name, a path such as ``"base/block5_conv3"``, or a layer object.

    A bare name may match a layer at any depth; it must be unique there (otherwise the
    error lists the paths to choose from). ``named``: :func:`named_layers` of the model, if at hand.
    """
    named = named_layers(model) if named is None else named
    if isinstance(layer, keras.layers.Layer):
        for path, found in named:
            if found is layer:
                return LayerRef(path, found)
        raise LayerNotFoundError(
            f"the layer object {layer.name!r} ({type(layer).__name__}) is not a layer of this model; pass one "
            "of its layers, a layer name or path (e.g. 'base/block5_conv3'), or None for the automatic choice."
        )
    if not isinstance(layer, str):
        raise LayerNotFoundError(f"layer must be a name, a keras layer or None; got {type(layer).__name__}.")
    by_path = dict(named)
    if layer in by_path:
        return LayerRef(layer, by_path[layer])
    hits = [(p, lay) for p, lay in named if lay.name == layer]
    if len(hits) == 1:
        return LayerRef(*hits[0])
    if len(hits) > 1:
        raise LayerNotFoundError(
            f"{len(hits)} layers are named {layer!r} in this model's nested models; pass a path: "
            + ", ".join(repr(p) for p, _ in hits)
            + "."
        )
    names = sorted({lay.name for _, lay in named} | set(by_path))
    # no close name: list the convolutional layers instead
    hint = close_matches(layer, names) or spatial_hint([(p, type(lay).__name__) for p, lay in named])
    raise LayerNotFoundError(f"the model has no layer named {layer!r}." + hint)


def is_spatial(t: Any) -> bool:
    """A feature map Grad-CAM can use: (N, L, C), (N, H, W, C) or (N, D, H, W, C), more than one position."""
    if not tf.is_tensor(t) or t.shape.rank not in (3, 4, 5):
        return False
    sizes = t.shape[1:-1]
    return any(s is None for s in sizes) or math.prod(sizes) > 1


@contextmanager
def shadow(layer: keras.layers.Layer, attr: str, value: Any) -> Iterator[None]:
    """Set the instance attribute ``attr`` inside the block; restore it exactly on exit.

    ``object.__setattr__`` bypasses Keras' attribute tracking, so nothing but the one
    instance attribute changes (and it is deleted again, or its old value put back).
    """
    had, old = attr in layer.__dict__, layer.__dict__.get(attr)
    object.__setattr__(layer, attr, value)
    try:
        yield
    finally:
        if had:
            object.__setattr__(layer, attr, old)
        else:
            object.__delattr__(layer, attr)


def wrap_call(layer: keras.layers.Layer, make: Callable[[Callable], Callable]) -> AbstractContextManager[None]:
    """Shadow ``layer.call`` with ``make(layer.call)`` inside the block (``Layer.__call__`` looks it up)."""
    return shadow(layer, "call", make(layer.call))


@contextmanager
def capture(layer: keras.layers.Layer, name: str, inputs: bool = False) -> Iterator[Capture]:
    """Record ``layer``'s output (``inputs``: its first input) at every call inside the block."""
    cap = Capture(name)

    def make(call: Callable) -> Callable:
        def recording(*args: Any, **kwargs: Any) -> Any:
            if inputs:
                first = args[0] if args else next(iter(kwargs.values()), None)
                if not tf.is_tensor(first):
                    raise ModelError(
                        f"layer {name!r} takes a {type(first).__name__} as its first input, not a tensor; "
                        "layer_input=True needs a layer whose first input is one tensor."
                    )
                cap.outputs.append(first)
                return call(*args, **kwargs)
            out = call(*args, **kwargs)
            if not tf.is_tensor(out):
                raise ModelError(
                    f"layer {name!r} returns a {type(out).__name__}, not a tensor; choose a layer whose output "
                    "is one tensor."
                )
            cap.outputs.append(out)
            return out

        return recording

    with wrap_call(layer, make):
        yield cap


@contextmanager
def capture_auto(model: keras.Model) -> Iterator[list[tuple[str, tf.Tensor]]]:
    """Record ``(path, output)`` of every spatial layer output, in completion order.

    Nested models are not recorded themselves: their last layer gives the same tensor
    under a more precise name.
    """
    seen: list[tuple[str, tf.Tensor]] = []

    def make(path: str) -> Callable[[Callable], Callable]:
        def wrap(call: Callable) -> Callable:
            def recording(*args: Any, **kwargs: Any) -> Any:
                out = call(*args, **kwargs)
                if is_spatial(out):
                    seen.append((path, out))
                return out

            return recording

        return wrap

    with ExitStack() as stack:
        for path, layer in named_layers(model):
            if not isinstance(layer, keras.Model):
                stack.enter_context(wrap_call(layer, make(path)))
        yield seen


class _Captured(Captured):
    def __init__(self, model: keras.Model, cap: Capture | None, auto: list[tuple[str, tf.Tensor]] | None) -> None:
        self.model, self.cap, self.auto = model, cap, auto

    def get(self, call: int) -> tuple[tf.Tensor, str]:
        if self.cap is not None:
            return self.cap.get(call), self.cap.name
        auto = self.auto or []
        if not auto:
            raise auto_layer_error(self.model, LAYOUT)
        kinds = {p: type(lay).__name__ for p, lay in iter_layers(self.model)}
        name = auto[pick([kinds.get(p, "") for p, _ in auto], [tuple(t.shape[1:-1]) for _, t in auto]) or 0][0]
        return Capture(name, [t for p, t in auto if p == name]).get(call), name  # same range check as a named layer


@contextmanager
def capture_layer(model: keras.Model, layer: LayerRef) -> Iterator[Captured]:
    """:func:`capture` of ``layer``, or :func:`capture_auto` for :data:`~gradsight.backends.base.AUTO`."""
    if layer.auto:
        with capture_auto(model) as seen:
            yield _Captured(model, None, seen)
    else:
        obj = layer.obj if layer.obj is not None else dict(named_layers(model))[layer.name]
        with capture(obj, layer.name, layer.input) as cap:
            yield _Captured(model, cap, None)
