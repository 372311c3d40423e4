"""Backward rules for Keras / TensorFlow rectifiers, however they are written.

Keras reaches every rectifier through a few function references that it looks up at
call time: ``ReLU`` / ``LeakyReLU`` layers call ``keras.src.activations.relu`` /
``leaky_relu``; ``activation="relu"`` arguments, ``Activation("relu")`` and ``keras.ops.relu``
end in the backend primitives ``keras.src.backend.nn.relu`` / ``relu6`` / ``leaky_relu``;
custom layers may call ``keras.activations.relu`` or ``tf.nn.relu`` / ``tf.nn.leaky_relu``
directly. There is no hook API that sees all of these (``tf.RegisterGradient`` plus
``gradient_override_map`` is TF1-only and silently ignored in TF2), so for the duration of
an explanation those module attributes are replaced by wrappers and put back in
``finally``. A wrapper overrides only calls made *inside the chosen model's forward pass
on this thread* (the model's ``call`` is wrapped to count its depth); any other call,
and any call nested inside an activation already being overridden, goes to the original.
Installation is reference-counted under a lock, so concurrent explanations on several
threads restore the originals exactly once. Inside a ``tf.function`` the wrappers only
run while tracing; the compiled graph keeps the ``tf.custom_gradient`` ops.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import keras
import keras.src.activations as _keras_activations_src
import keras.src.backend as _keras_backend
import tensorflow as tf

from ...rules import Rule, RuleReport, RuleSwitch
from .capture import wrap_call

__all__ = ["apply_rule", "rectifier", "ACTIVATION_OPS"]

# (slope below threshold, max_value or None, threshold): Keras' generalised ReLU.
Params = tuple[float, "float | None", float]


def _relu(t: tf.Tensor) -> tf.Tensor:
    # tf.maximum, not tf.nn.relu: it must not go through the wrappers below.
    return tf.maximum(t, tf.zeros_like(t))


def _generalised(t: tf.Tensor, p: Params) -> tf.Tensor:
    """Keras' ``relu(t, negative_slope, max_value, threshold)`` from plain ops."""
    slope, max_value, threshold = p
    thr = tf.cast(threshold, t.dtype)
    y = tf.where(t > thr, t, tf.zeros_like(t))
    if max_value is not None:
        y = tf.minimum(y, tf.cast(max_value, t.dtype))
    if slope:
        y = y + tf.cast(slope, t.dtype) * tf.minimum(t - thr, tf.zeros_like(t))
    return y


def _derivative(x: tf.Tensor, dtype: tf.DType, p: Params) -> tf.Tensor:
    """f'(x): 1 on (threshold, max_value), ``slope`` below the threshold, 0 above max_value."""
    slope, max_value, threshold = p
    above = x > tf.cast(threshold, x.dtype)
    if max_value is not None:
        inside = tf.logical_and(above, x < tf.cast(max_value, x.dtype))
    else:
        inside = above
    d = tf.cast(inside, dtype)
    if slope:
        d = d + tf.cast(slope, dtype) * tf.cast(tf.logical_not(above), dtype)
    return d


def rectifier(x: tf.Tensor, forward: Callable[[tf.Tensor], tf.Tensor], p: Params, rule: Rule | RuleSwitch) -> tf.Tensor:
    """``forward(x)`` whose gradient is ``rule.backward(g, t -> t * f'(x), f, relu)`` (dtype of ``g``)."""

    @tf.custom_gradient
    def run(t: tf.Tensor) -> Any:
        def grad(g: tf.Tensor) -> tf.Tensor:
            return rule.backward(g, lambda u: u * _derivative(t, g.dtype, p), lambda u: _generalised(u, p), _relu)

        return forward(t), grad

    return run(x)


@dataclass
class _Active:
    """One rule in force on this thread: for one model, counting into one report."""

    rule: Rule | RuleSwitch
    report: RuleReport
    depth: int = 0  # > 0 while the model's forward runs
    busy: int = 0  # > 0 inside an activation being overridden or counted


_local = threading.local()


def _current() -> _Active | None:
    stack = getattr(_local, "stack", None)
    st = stack[-1] if stack else None
    return st if st is not None and st.depth > 0 and not st.busy else None


def rules_active() -> bool:
    """Whether a ``backward_rule`` block is open on this thread (its rule must reach every
    forward pass inside it, so nothing is taken from or put into the compiled cache)."""
    return bool(getattr(_local, "stack", None))


def _first(args: tuple, kwargs: dict, names: tuple[str, ...]) -> tuple[Any, Callable[[Any], tuple[tuple, dict]]]:
    """The first argument and a function rebuilding (args, kwargs) around a new one."""
    if args:
        return args[0], lambda t: ((t,) + args[1:], kwargs)
    for n in names:
        if n in kwargs:
            return kwargs[n], lambda t, n=n: (args, {**kwargs, n: t})
    return None, lambda t: (args, kwargs)


def _get(args: tuple, kwargs: dict, pos: int, name: str, default: Any) -> Any:
    return kwargs[name] if name in kwargs else (args[pos] if len(args) > pos else default)


def _params(kind: str, args: tuple, kwargs: dict) -> Params:
    if kind == "relu":
        return (0.0, None, 0.0)
    if kind == "relu6":
        return (0.0, 6.0, 0.0)
    if kind == "leaky_relu":  # keras backend: (x, negative_slope=0.2); tf.nn: (features, alpha=0.2)
        return (float(_get(args, kwargs, 1, "alpha" if "alpha" in kwargs else "negative_slope", 0.2)), None, 0.0)
    slope = float(_get(args, kwargs, 1, "negative_slope", 0.0))  # keras.activations.relu
    max_value = _get(args, kwargs, 2, "max_value", None)
    return (slope, None if max_value is None else float(max_value), float(_get(args, kwargs, 3, "threshold", 0.0)))


def _label(kind: str, p: Params) -> str:
    if kind != "generalised":
        return kind
    slope, max_value, threshold = p
    if max_value is None and threshold == 0:
        return "leaky_relu" if slope else "relu"
    return f"relu(negative_slope={slope}, max_value={max_value}, threshold={threshold})"


@contextmanager
def _busy(st: _Active) -> Iterator[None]:
    st.busy += 1
    try:
        yield
    finally:
        st.busy -= 1


def _rectifier_wrapper(original: Callable, kind: str) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        st = _current()
        x, rebuild = _first(args, kwargs, ("x", "features", "inputs"))
        if st is None or not (tf.is_tensor(x) and x.dtype.is_floating):
            return original(*args, **kwargs)
        p = _params(kind, args, kwargs)
        st.report.overridden[_label(kind, p)] += 1
        for outer in _local.stack[:-1]:  # the innermost rule wins; outer blocks are told
            outer.report.superseded[_label(kind, p)] += 1

        def forward(t: tf.Tensor) -> tf.Tensor:
            a, k = rebuild(t)
            with _busy(st):
                return original(*a, **k)

        return rectifier(tf.convert_to_tensor(x), forward, p, st.rule)

    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    return wrapper


def _counting_wrapper(original: Callable, name: str) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        st = _current()
        if st is None:
            return original(*args, **kwargs)
        st.report.unsupported[name] += 1
        with _busy(st):
            return original(*args, **kwargs)

    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    return wrapper


_OTHERS = ("elu", "selu", "gelu", "silu", "swish", "celu", "softplus", "hard_silu", "mish", "crelu")


def _patch_points() -> list[tuple[ModuleType, str, str | None]]:
    """(module, attribute, rectifier kind or None for a counted-only activation)."""
    points: list[tuple[ModuleType, str, str | None]] = [
        (_keras_activations_src, "relu", "generalised"),  # ReLU layers
        (keras.activations, "relu", "generalised"),  # custom layers, with parameters
    ]
    for module in (_keras_backend.nn, tf.nn):  # primitives: everything else ends here
        points += [(module, "relu", "relu"), (module, "relu6", "relu6"), (module, "leaky_relu", "leaky_relu")]
        points += [(module, name, None) for name in _OTHERS if hasattr(module, name)]
    return [(m, a, k) for m, a, k in points if callable(getattr(m, a, None))]


ACTIVATION_OPS = tuple(f"{m.__name__}.{a}" for m, a, _ in _patch_points())
"""The function references replaced (and restored) while a rule is in force."""

_lock = threading.Lock()
_installed: list[tuple[ModuleType, str, Any]] = []
_users = 0


def _install() -> None:
    global _users
    with _lock:
        if _users == 0:
            for module, attr, kind in _patch_points():
                original = getattr(module, attr)
                wrapped = _counting_wrapper(original, attr) if kind is None else _rectifier_wrapper(original, kind)
                _installed.append((module, attr, original))
                setattr(module, attr, wrapped)
        _users += 1


def _uninstall() -> None:
    global _users
    with _lock:
        _users -= 1
        if _users == 0:
            while _installed:
                module, attr, original = _installed.pop()
                setattr(module, attr, original)


@contextmanager
def apply_rule(model: keras.Model, rule: Rule | RuleSwitch) -> Iterator[RuleReport]:
    """Within the block, rectifiers run by ``model``'s forward back-propagate by ``rule``.

    Yields the :class:`~gradsight.rules.RuleReport` (what was overridden). On exit every
    replaced reference and ``model.call`` are restored, whatever happened. The rule is
    part of what a forward pass records, so it reaches eager calls and functions traced
    inside the block; a ``tf.function`` traced before the block keeps its old graph.
    """
    st = _Active(rule, RuleReport(rule))

    stack = _local.__dict__.setdefault("stack", [])

    def scoped(call: Callable) -> Callable:
        def run(*args: Any, **kwargs: Any) -> Any:
            if st not in getattr(_local, "stack", ()):  # another thread calling the same model
                return call(*args, **kwargs)
            st.depth += 1
            try:
                return call(*args, **kwargs)
            finally:
                st.depth -= 1

        return run

    _install()
    stack.append(st)
    try:
        with wrap_call(model, scoped):
            yield st.report
    finally:
        stack.remove(st)
        _uninstall()
