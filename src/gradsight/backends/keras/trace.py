"""One forward and one backward pass, traced with ``tf.function`` and cached.

The whole computation -- rule wrappers, layer capture, forward, target score, tape
gradient -- is one Python function. Traced, its Python side (the patching and the
recording) runs once; later calls run the compiled graph, which touches no Python
object of the model. Compiled functions are kept per model in a
``weakref.WeakKeyDictionary`` (the entry disappears with the model; the traced function
holds the model only through a weak reference) and per (request, target kind, input
shape, dtype), at most :data:`MAX_ENTRIES` per model. Class targets are fed as a tensor
argument, so changing the classes does not retrace.

Where tracing fails (a model whose ``call`` needs eager tensors: ``.numpy()``, Python
``if`` on tensor values, ...) the same function runs eagerly from then on for that
request, with one warning per model.
"""

from __future__ import annotations

import re
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ...errors import EagerFallbackWarning, GradsightError, warn
from ...rules import RuleReport
from ...targets import CallableTarget, ClassTarget, Target
from .. import pipeline
from ..base import Gradients, Request, Settings
from ..outputs import check_tensors, select_output
from .capture import PATCHING, named_layers
from .models import strip_softmax
from .ops import FedClassOps, KerasOps
from .primitives import KerasPrimitives, training_flag
from .structure import Structure

__all__ = ["Key", "run", "forward", "traces", "MAX_ENTRIES"]

MAX_ENTRIES = 32
"""Compiled functions kept per model (least recently used dropped first)."""


@dataclass(frozen=True)
class Key:
    """What one compiled computation is for (everything but the input and the classes); hashable.

    The layer is kept by name only: a cache entry must not hold the model's layers.
    """

    request: Request
    settings: Settings

    @staticmethod
    def of(request: Request, settings: Settings) -> Key:
        layer = None if request.layer is None else request.layer.without_obj()
        return Key(replace(request, layer=layer), settings)


def _fed(target: Target | None) -> bool:
    """Class ids are fed to the traced function as a tensor (exactly ClassTarget: subclasses may differ)."""
    return type(target) is ClassTarget


def _feed_shape(target: Target, n: int) -> tuple[int, ...]:
    """Shape of the class-id argument: (N, k) for (N, k) classes, else (N,)."""
    classes = target.classes if _fed(target) else None  # type: ignore[attr-defined]
    return (n, classes.shape[1]) if classes is not None and classes.ndim == 2 else (n,)


def _target_key(target: Target, n: int) -> Hashable | None:
    if _fed(target):
        return ("class", target.classes is None, _feed_shape(target, n))  # type: ignore[attr-defined]
    if not getattr(target, "traceable", True):
        return None  # the target makes its choices in numpy: run eagerly
    obj = target.fn if isinstance(target, CallableTarget) else target
    try:
        hash(obj)
    except TypeError:
        return None  # cannot be cached: run eagerly
    return (type(target).__name__, obj)


_TENSORS = ("outputs", "scores", "targets", "input_grad", "activation", "layer_grad", "layer_map")


def compute(model: keras.Model, key: Key, x: tf.Tensor, target: Target, ops: KerasOps) -> tuple[dict, dict]:
    """The shared pipeline for ``key``: its tensors (a dict, what a traced function returns) and Python ``meta``.

    Scores (N, k) give gradients (N, k, ...): column j is the gradient of ``scores[:, j]``.
    With a ``layer_rule`` unlike ``rule`` the tape is differentiated twice (to the layer,
    then to the input); a custom gradient's Python runs at each ``tape.gradient`` call
    (while tracing, when compiled), so each pass sees the rule current at that call.
    """
    prims = KerasPrimitives(model, ops, key.settings)
    g, report = pipeline.gradients(prims, model, x, target, key.request, check_rules=False)
    out = {k: getattr(g, k) for k in _TENSORS if getattr(g, k) is not None}
    shape = None if isinstance(g.outputs, list) else tuple(g.outputs.shape)
    meta = {"layer": g.layer, "report": report, "num_classes": shape[1] if shape and len(shape) == 2 else None}
    return out, meta


def to_gradients(model: keras.Model, out: dict, meta: dict) -> Gradients:
    """:class:`Gradients` from :func:`compute`'s (possibly compiled) results; the rule report checked."""
    report: RuleReport | None = meta.get("report")
    if report is not None:
        report.check(f"{report.rule.name} rule on {type(model).__name__}")
    return Gradients(layer=meta.get("layer"), **{k: out.get(k) for k in _TENSORS})


class _Body:
    """The Python function ``tf.function`` traces. A callable object rather than a closure:
    TF counts traces per code object and would warn about "retracing" across entries."""

    def __init__(self, owner: _Compiled, model: keras.Model, key: Key) -> None:
        self.owner, self.key = owner, key
        self.model = weakref.ref(model)  # the cache is keyed by the model: never hold it strongly

    def __call__(self, xt: tf.Tensor, classes: tf.Tensor) -> dict:
        owner = self.owner
        owner.traces += 1
        target = owner.target
        assert target is not None, "traced outside _Compiled.__call__"
        ops = FedClassOps(classes) if _fed(target) else KerasOps()
        out, owner.meta = compute(self.model(), self.key, xt, target, ops)
        return out


class _Compiled:
    """One traced computation for one model, request, target kind and input signature."""

    def __init__(self, model: keras.Model, key: Key, x: tf.Tensor, feed: tuple[int, ...]) -> None:
        self.meta: dict[str, Any] = {}
        self.traces = 0
        self.ok = False
        self.target: Target | None = None
        self.feed = feed
        spec = [tf.TensorSpec(x.shape, x.dtype), tf.TensorSpec(feed, tf.int64)]
        self.fn = tf.function(_Body(self, model, key), input_signature=spec, autograph=False)
        self.concrete: Any = None  # the one trace, called directly once made (skips tf.function's dispatch)

    def __call__(self, x: tf.Tensor, target: Target) -> dict:
        n = int(x.shape[0])
        classes = np.zeros(self.feed, np.int64)
        given = target.classes if _fed(target) else None  # type: ignore[attr-defined]
        if given is not None:
            if self.ok and self.meta.get("num_classes") is not None:
                target.check(n, self.meta["num_classes"])  # type: ignore[attr-defined]  # traced: checked once
            if given.shape == self.feed or given.ndim == 0 or given.shape == (n,):
                classes = np.broadcast_to(given, self.feed).astype(np.int64)
        self.target = target
        try:
            out = (self.concrete or self.fn)(x, tf.constant(classes))
        finally:
            self.target = None
        if not self.ok:
            self.ok = True
            self.concrete = self.fn.get_concrete_function()  # the trace just made (fixed input_signature)
        return out


_CACHE: weakref.WeakKeyDictionary[keras.Model, OrderedDict] = weakref.WeakKeyDictionary()
_WARNED: weakref.WeakSet[keras.Model] = weakref.WeakSet()  # models already warned about the eager fallback
_STRUCTURE = Structure()


def run(
    model: keras.Model, req: Key, x: tf.Tensor, target: Target, layers: list[keras.layers.Layer] | None = None
) -> tuple[dict, dict]:
    """``compute`` through the cache; see the module docstring. ``layers``: the model's layers now
    (:func:`~.capture.named_layers` order; walked here when None): a model whose layers changed
    since its last call (``Sequential.pop``, a replaced activation) has its traces dropped."""
    n = int(x.shape[0])
    tkey = _target_key(target, n)
    if tkey is None:
        return compute(model, req, x, target, KerasOps())
    entries = _CACHE.setdefault(model, OrderedDict())
    if not _STRUCTURE.same(model, [lay for _, lay in named_layers(model)] if layers is None else layers):
        entries.clear()
    key = (req, tkey, tuple(x.shape), x.dtype.name)
    entry = entries.get(key)
    if entry == "eager":
        return compute(model, req, x, target, KerasOps())
    if entry is None:
        entry = entries[key] = _Compiled(model, req, x, _feed_shape(target, n))
        while len(entries) > MAX_ENTRIES:
            entries.popitem(last=False)
    entries.move_to_end(key)
    try:
        return entry(x, target), entry.meta
    except GradsightError:
        raise
    except Exception as exc:  # noqa: BLE001 - tracing failed: try eagerly, which raises the real error if any
        if entry.ok:
            raise
        result = compute(model, req, x, target, KerasOps())
        entries[key] = "eager"
        if model in _WARNED:
            return result
        _WARNED.add(model)
        why = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split())
        warn(
            f"gradsight could not trace this {type(model).__name__} with tf.function ({type(exc).__name__}: "
            f"{why[:300]}); it runs eagerly, which is slower. Models whose call uses .numpy() or Python control "
            "flow on tensor values cannot be traced.",
            EagerFallbackWarning,
        )
        return result


def traces(model: keras.Model) -> int:
    """How many times the model's cached functions were traced (for tests and benchmarks)."""
    entries = _CACHE.get(model)
    return sum(e.traces for e in entries.values() if isinstance(e, _Compiled)) if entries else 0


def forward(model: keras.Model, x: tf.Tensor, output: int | str | None, settings: Settings) -> Any:
    """The selected output for ``x``, eagerly, nothing recorded."""
    with PATCHING, ExitStack() as stack:
        if settings.logits:
            stack.enter_context(strip_softmax(model))
        raw = settings.call(model, x, training=training_flag(settings))
        return check_tensors(select_output(raw, output), tf.is_tensor)
