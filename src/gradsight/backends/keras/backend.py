"""The Keras 3 / TensorFlow backend: session, input checks, and the traced vjp."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ...errors import InputError, ModelError, SaturationWarning, warn
from ...rules import Rule, RuleReport
from ...targets import Target
from ..base import Backend, Gradients
from .compiled import forward as compiled_forward
from .compiled import forward_with_activation as compiled_forward_with_activation
from .capture import PATCHING, capture, capture_auto, chosen, named_layers, resolve_layer, wrap_call
from .models import final_softmax, input_info, require_final_softmax
from .ops import KerasOps
from .rules import apply_rule
from .trace import Request, run

__all__ = ["KerasBackend"]


def _check_model(model: keras.Model) -> None:
    if not isinstance(model, keras.Model):  # e.g. a tf_keras (Keras 2) model
        raise ModelError(
            f"gradsight's Keras backend supports Keras 3 models; this is a {type(model).__module__}."
            f"{type(model).__name__}. Load or rebuild it with Keras 3 (keras.models.load_model reads .h5 files)."
        )
    if keras.backend.backend() != "tensorflow":
        raise ModelError(
            f"gradsight's Keras backend needs Keras running on TensorFlow; this process uses the "
            f"{keras.backend.backend()!r} backend (set KERAS_BACKEND=tensorflow before importing keras)."
        )
    if not model.built:
        raise ModelError(
            f"this {type(model).__name__} has no weights yet (it was never built or called); call it once on a "
            "batch, or call model.build(input_shape), before explaining it."
        )


def _shape_str(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("N" if i == 0 else ("?" if d is None else str(d)) for i, d in enumerate(shape)) + ")"


class KerasBackend(Backend):
    """Backend for ``keras.Model`` (Keras 3 on TensorFlow); inputs channels-last, NHWC."""

    name = "keras"
    ops = KerasOps()

    def __init__(self) -> None:
        self._training: bool | None = False
        self._logits = False

    @contextmanager
    def session(self, model: keras.Model, eval_mode: bool = True, logits: bool = False) -> Iterator[None]:
        """Calls run with ``training=False`` (``eval_mode=False``: Keras' own default, ``training=None``).

        ``logits=True`` skips a final softmax (see :func:`~.models.strip_softmax`); without
        it a final softmax gets a :class:`~gradsight.errors.SaturationWarning`. Keras layers
        have no mode flag to flip, so nothing about the model changes.
        """
        _check_model(model)
        softmax = require_final_softmax(model) if logits else final_softmax(model)
        if softmax is not None and not logits:
            warn(
                f"the model's last layer {softmax.name!r} applies a softmax: gradients of probabilities saturate "
                "(near-zero or misleading maps). Pass logits=True to explain the pre-softmax scores.",
                SaturationWarning,
            )
        saved = self._training, self._logits
        self._training, self._logits = (False if eval_mode else None), logits
        try:
            yield
        finally:
            self._training, self._logits = saved

    def prepare_input(self, model: keras.Model, x: Any) -> tf.Tensor:
        if not (isinstance(x, np.ndarray) or tf.is_tensor(x)):
            raise InputError(f"x must be a numpy array or a tf.Tensor, got {type(x).__name__}.")
        dtype = tf.as_dtype(x.dtype)
        if not dtype.is_floating:
            raise InputError(
                f"x has dtype {dtype.name}; gradients need a floating-point input. Convert and normalise it as the "
                "model expects (e.g. x.astype('float32') / 255, or keras.applications.<net>.preprocess_input)."
            )
        shape = tuple(x.shape)
        if len(shape) < 2:
            raise InputError(f"x must be a batch with a leading batch axis; got shape {shape} (use x[None]).")
        expected, fmt, in_dtype = input_info(model)
        if expected is not None:
            if len(expected) == len(shape) + 1 and all(e in (None, s) for e, s in zip(expected[1:], shape)):
                raise InputError(
                    f"x has shape {shape} but the model takes batches {_shape_str(expected)}; add the batch axis "
                    "with x[None]."
                )
            c = expected[-1]
            if len(shape) == 4 == len(expected) and fmt != "channels_first" and c is not None:
                if shape[-1] != c and shape[1] == c:
                    raise InputError(
                        f"x has shape {shape}, which looks channels-first (N, C, H, W), but this Keras model takes "
                        f"channels-last (N, H, W, C) with C={c}; pass np.transpose(x, (0, 2, 3, 1)) "
                        "(or tf.transpose(x, [0, 2, 3, 1]))."
                    )
            if len(expected) != len(shape) or any(e not in (None, s) for e, s in zip(expected[1:], shape[1:])):
                raise InputError(f"x has shape {shape} but the model takes batches {_shape_str(expected)}.")
        # tf tensors are immutable: the user's array is never modified.
        return tf.cast(tf.convert_to_tensor(x), in_dtype)

    def input_layout(self, model: keras.Model) -> str:
        return "channels_first" if input_info(model)[1] == "channels_first" else "channels_last"

    def activation_channel_axis(self) -> int:
        return -1

    def resolve_layer(self, model: keras.Model, layer: Any) -> Any:
        found = resolve_layer(model, layer)
        return "auto" if found is None else found

    def gradients(
        self,
        model: keras.Model,
        x: tf.Tensor,
        target: Target,
        *,
        rule: Rule | None = None,
        layer: Any = None,
        call: int = -1,
        wrt_input: bool = True,
        output: int | str | None = None,
        layer_rule: Rule | None = None,
    ) -> Gradients:
        path = layer if layer is None or layer == "auto" else layer[0]
        if isinstance(output, list):
            output = tuple(output)  # part of the (hashable) cache key
        req = Request(rule, path, call, wrt_input, output, self._training, self._logits, layer_rule)
        out, meta = run(model, req, x, target)
        report: RuleReport | None = meta.get("report")
        if report is not None:
            report.check(f"{report.rule.name} rule on {type(model).__name__}")
        return Gradients(
            outputs=out["outputs"],
            scores=out["scores"],
            targets=out.get("idx"),
            input_grad=out.get("input_grad"),
            activation=out.get("activation"),
            layer_grad=out.get("layer_grad"),
            layer=meta.get("layer"),
        )

    def forward(self, model: keras.Model, x: tf.Tensor, output: int | str | None = None) -> tf.Tensor:
        return compiled_forward(model, x, output, self._training, self._logits)  # traced when repeated

    def forward_with_activation(
        self, model: keras.Model, x: tf.Tensor, layer: Any, call: int = -1, output: int | str | None = None
    ) -> tuple[Any, tf.Tensor, str]:
        return compiled_forward_with_activation(model, x, layer, call, output, self._training, self._logits)

    def activations(self, model: keras.Model, x: tf.Tensor, layer: Any, call: int = -1) -> tuple[tf.Tensor, str]:
        with PATCHING, ExitStack() as stack:
            auto = stack.enter_context(capture_auto(model)) if layer == "auto" else None
            cap = None if auto is not None else stack.enter_context(capture(layer[1], layer[0]))
            model(x, training=self._training)
        activation, name = chosen(model, auto, cap, call)
        return activation, name

    @contextmanager
    def backward_rule(self, model: keras.Model, rule: Rule) -> Iterator[Any]:
        _check_model(model)
        with apply_rule(model, rule) as report:
            yield report
        report.check(f"backward_rule({type(model).__name__}, {rule.name!r})")

    def layers(self, model: keras.Model, x: tf.Tensor) -> list[tuple[str, str, tuple[int, ...] | None]]:
        rows: list[tuple[str, str, tuple[int, ...] | None]] = []

        def recorder(path: str, layer: keras.layers.Layer) -> Any:
            def make(call: Any) -> Any:
                def run_layer(*args: Any, **kwargs: Any) -> Any:
                    out = call(*args, **kwargs)
                    rows.append((path, type(layer).__name__, tuple(out.shape) if tf.is_tensor(out) else None))
                    return out

                return run_layer

            return make

        with PATCHING, ExitStack() as stack:
            for path, layer in named_layers(model):
                stack.enter_context(wrap_call(layer, recorder(path, layer)))
            model(x, training=False)
        return rows
