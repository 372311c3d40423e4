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
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ...errors import EagerFallbackWarning, GradsightError, ModelError, NotDifferentiableError, warn
from ...rules import Rule, layer_switch
from ...targets import CallableTarget, ClassTarget, Target, select_output
from .capture import PATCHING, capture, capture_auto, chosen, named_layers
from .models import strip_softmax
from .ops import FedClassOps, KerasOps
from .rules import apply_rule

__all__ = ["Request", "run", "forward", "traces", "MAX_ENTRIES"]

MAX_ENTRIES = 32
"""Compiled functions kept per model (least recently used dropped first)."""


@dataclass(frozen=True)
class Request:
    """What one gradient computation is asked for (everything but the input and the classes)."""

    rule: Rule | None = None
    layer: str | None = None  # a layer path, "auto", or None
    call: int = -1
    wrt_input: bool = True
    output: int | str | None = None
    training: bool | None = False
    logits: bool = False
    layer_rule: Rule | None = None  # the gradient at the layer by this rule, the input's by ``rule``


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


def _check_tensors(outputs: Any) -> Any:
    """The selected output: a tensor, or a list of tensors when ``output=`` named several."""
    for o in outputs if isinstance(outputs, list) else [outputs]:
        if not tf.is_tensor(o):
            raise ModelError(f"the model output is a {type(o).__name__}, not a tensor; use output= to pick one.")
    return outputs


def _gradients(tape: tf.GradientTape, scores: tf.Tensor, total: tf.Tensor | None, sources: list) -> list:
    """d scores / d sources; for (N, k) scores one gradient per column, stacked after the batch axis."""
    if total is not None:
        return tape.gradient(total, sources)
    k = scores.shape[1]
    cols = [
        tape.gradient(scores, sources, output_gradients=tf.broadcast_to(tf.one_hot(j, k, dtype=scores.dtype), scores.shape))
        for j in range(k)
    ]
    return [None if cols[0][i] is None else tf.stack([c[i] for c in cols], axis=1) for i in range(len(sources))]


def compute(model: keras.Model, req: Request, x: tf.Tensor, target: Target, ops: KerasOps) -> tuple[dict, dict]:
    """Tensors ``outputs, scores, [idx], [input_grad], [activation, layer_grad]`` and Python ``meta``.

    Scores (N, k) give gradients (N, k, ...): column j is the gradient of ``scores[:, j]``.
    With a ``layer_rule`` unlike ``rule`` the forward pass is recorded once with a
    :class:`~gradsight.rules.RuleSwitch` and the tape differentiated twice (to the layer,
    then to the input); a custom gradient's Python runs at each ``tape.gradient`` call
    (while tracing, when compiled), so each pass sees the rule current at that call.
    """
    layer = dict(named_layers(model)).get(req.layer) if req.layer not in (None, "auto") else None
    switch = layer_switch(req.rule, req.layer_rule) if req.layer is not None else None
    rule = switch if switch is not None else req.rule
    with PATCHING, ExitStack() as stack:
        report = stack.enter_context(apply_rule(model, rule)) if rule is not None else None
        if req.logits:
            stack.enter_context(strip_softmax(model))
        auto = stack.enter_context(capture_auto(model)) if req.layer == "auto" else None
        cap = stack.enter_context(capture(layer, req.layer)) if layer is not None else None
        # persistent: (N, k) scores take one backward pass per column
        with tf.GradientTape(watch_accessed_variables=False, persistent=True) as tape:
            tape.watch(x)
            outputs = _check_tensors(select_output(model(x, training=req.training), req.output))
            scores, idx = target.scores(outputs, ops)
            total = tf.reduce_sum(scores) if scores.shape.rank == 1 else None
    activation, name = chosen(model, auto, cap, req.call)

    what = (["input"] if req.wrt_input else []) + ([f"layer {name!r}"] if activation is not None else [])
    sources = ([x] if req.wrt_input else []) + ([activation] if activation is not None else [])
    if switch is None or activation is None:
        grads = _gradients(tape, scores, total, sources) if sources else []
    else:
        switch.current = switch.layer
        grads = _gradients(tape, scores, total, [activation])
        if req.wrt_input:
            switch.current = switch.input
            grads = _gradients(tape, scores, total, [x]) + grads
    del tape
    for g, w in zip(grads, what):
        if g is None:
            raise NotDifferentiableError(
                f"the target score does not depend differentiably on the {w} (no gradient path: an integer "
                "cast, argmax or numpy step inside the model?)."
                + (" Choose a layer whose output feeds the model's output (or another call=)." if w != "input" else "")
            )
    detached = [tf.stop_gradient(o) for o in outputs] if isinstance(outputs, list) else tf.stop_gradient(outputs)
    out = {"outputs": detached, "scores": tf.stop_gradient(scores)}
    if idx is not None:
        out["idx"] = idx
    if req.wrt_input:
        out["input_grad"] = grads[0]
    if activation is not None:
        out["activation"], out["layer_grad"] = tf.stop_gradient(activation), grads[-1]
    shape = None if isinstance(outputs, list) else tuple(outputs.shape)
    meta = {"layer": name, "report": report, "num_classes": shape[1] if shape and len(shape) == 2 else None}
    return out, meta


class _Body:
    """The Python function ``tf.function`` traces. A callable object rather than a closure:
    TF counts traces per code object and would warn about "retracing" across entries."""

    def __init__(self, owner: _Compiled, model: keras.Model, req: Request) -> None:
        self.owner, self.req = owner, req
        self.model = weakref.ref(model)  # the cache is keyed by the model: never hold it strongly

    def __call__(self, xt: tf.Tensor, classes: tf.Tensor) -> dict:
        owner = self.owner
        owner.traces += 1
        ops = FedClassOps(classes) if _fed(owner.target) else KerasOps()
        out, owner.meta = compute(self.model(), self.req, xt, owner.target, ops)
        return out


class _Compiled:
    """One traced computation for one model, request, target kind and input signature."""

    def __init__(self, model: keras.Model, req: Request, x: tf.Tensor, feed: tuple[int, ...]) -> None:
        self.meta: dict[str, Any] = {}
        self.traces = 0
        self.ok = False
        self.target: Target | None = None
        self.feed = feed
        spec = [tf.TensorSpec(x.shape, x.dtype), tf.TensorSpec(feed, tf.int64)]
        self.fn = tf.function(_Body(self, model, req), input_signature=spec, autograph=False)

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
            out = self.fn(x, tf.constant(classes))
        finally:
            self.target = None
        self.ok = True
        return out


_CACHE: weakref.WeakKeyDictionary[keras.Model, OrderedDict] = weakref.WeakKeyDictionary()
_WARNED: weakref.WeakSet[keras.Model] = weakref.WeakSet()  # models already warned about the eager fallback


def run(model: keras.Model, req: Request, x: tf.Tensor, target: Target) -> tuple[dict, dict]:
    """``compute`` through the cache; see the module docstring."""
    n = int(x.shape[0])
    tkey = _target_key(target, n)
    if tkey is None:
        return compute(model, req, x, target, KerasOps())
    entries = _CACHE.setdefault(model, OrderedDict())
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


def forward(model: keras.Model, x: tf.Tensor, output: int | str | None, training: bool | None, logits: bool) -> Any:
    """The selected output for ``x``, eagerly, nothing recorded."""
    with PATCHING, ExitStack() as stack:
        if logits:
            stack.enter_context(strip_softmax(model))
        return _check_tensors(select_output(model(x, training=training), output))
