"""The Keras 3 / TensorFlow backend: session, input checks, and the traced vjp."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import tensorflow as tf

from ...errors import InputError, ModelError, SaturationWarning, warn
from ...rules import Rule, RuleReport, RuleSwitch
from ..base import Backend, Gradients, LayerRef, Request, Settings
from ..saturation import saturation_message
from . import inspect as params
from . import params as sanity
from .attention import attentions
from .capture import PATCHING, capture_layer, find_layer, named_layers, wrap_call
from .compiled import forward as compiled_forward
from .compiled import forward_with_activation as compiled_forward_with_activation
from .models import conv_rank, final_softmax, input_info, require_final_softmax
from .ops import KerasOps
from .primitives import training_flag
from .rules import apply_rule, rules_active
from .trace import Key, compute, run, to_gradients

if TYPE_CHECKING:
    from ...targets import Target

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

def _tensor(x: Any, expected: tuple[int | None, ...] | None, fmt: str | None, in_dtype: Any, name: str = "x") -> tf.Tensor:
    """``x`` as a tensor of ``in_dtype``, checked against the model's ``expected`` input shape."""
    if not (isinstance(x, np.ndarray) or tf.is_tensor(x)):
        raise InputError(f"{name} must be a numpy array or a tf.Tensor, got {type(x).__name__}.")
    dtype = tf.as_dtype(x.dtype)
    if not dtype.is_floating:
        raise InputError(
            f"{name} has dtype {dtype.name}; gradients need a floating-point input. Convert and normalise it as the "
            "model expects (e.g. x.astype('float32') / 255, or keras.applications.<net>.preprocess_input)."
        )
    shape = tuple(x.shape)
    if len(shape) < 2:
        raise InputError(f"{name} must be a batch with a leading batch axis; got shape {shape} (use x[None]).")
    if expected is not None:
        if len(expected) == len(shape) + 1 and all(e in (None, s) for e, s in zip(expected[1:], shape)):
            raise InputError(
                f"{name} has shape {shape} but the model takes batches {_shape_str(expected)}; add the batch axis "
                "with x[None]."
            )
        c = expected[-1]
        if len(shape) == len(expected) in _LAYOUTS and fmt != "channels_first" and c is not None:
            if shape[-1] != c and shape[1] == c:
                first, last = _LAYOUTS[len(shape)]
                order = (0,) + tuple(range(2, len(shape))) + (1,)
                raise InputError(
                    f"{name} has shape {shape}, which looks channels-first {first}, but this Keras model takes "
                    f"channels-last {last} with C={c}; pass np.transpose(x, {order}) "
                    f"(or tf.transpose(x, {list(order)}))."
                )
        if len(expected) != len(shape) or any(e not in (None, s) for e, s in zip(expected[1:], shape[1:])):
            raise InputError(f"{name} has shape {shape} but the model takes batches {_shape_str(expected)}.")
    # tf tensors are immutable: the user's array is never modified.
    return tf.cast(tf.convert_to_tensor(x), in_dtype)


_LAYOUTS = {3: ("(N, C, L)", "(N, L, C)"), 4: ("(N, C, H, W)", "(N, H, W, C)"), 5: ("(N, C, D, H, W)", "(N, D, H, W, C)")}


class KerasBackend(Backend):
    """Backend for ``keras.Model`` (Keras 3 on TensorFlow); inputs channels-last, NHWC."""

    name = "keras"
    ops = KerasOps()
    layout = "(N, H, W, C)"
    dense_kind = "Dense"
    spreads_inputs = False  # several inputs go to the model as one list (or dict)
    parameter_layers = staticmethod(sanity.parameter_layers)
    randomized = staticmethod(sanity.randomized)

    @contextmanager
    def session(
        self, model: keras.Model, eval_mode: bool = True, logits: bool = False, forward_args: tuple[Any, ...] = (),
        forward_kwargs: Any = None,
    ) -> Iterator[KerasBackend]:
        """Calls run with ``training=False`` (``eval_mode=False``: Keras' own default, ``training=None``).

        ``logits=True`` skips a final softmax (see :func:`~.models.strip_softmax`); without
        it a final softmax gets a :class:`~gradsight.errors.SaturationWarning`. Keras layers
        have no mode flag to flip, so nothing about the model changes.
        """
        _check_model(model)
        softmax = require_final_softmax(model) if logits else final_softmax(model)
        if softmax is not None and not logits:
            warn(saturation_message(f"its last layer {softmax.name!r}, a softmax"), SaturationWarning)
        run = KerasBackend(Settings(eval_mode, logits, tuple(forward_args), forward_kwargs))
        run._memo = {}
        yield run

    _memo: dict[Hashable, tuple[keras.Model, Any]] | None = None
    """A session's answers about the model's structure (its input, a layer by name): a call asks
    several times (each method step, the checks), the session asks the model once. Only
    session backends (one call) have it, so an edited model is never answered from an old call."""

    def _once(self, what: Hashable, model: keras.Model, make: Callable[[], Any]) -> Any:
        if self._memo is None:
            return make()
        key = (what, id(model))
        hit = self._memo.get(key)
        if hit is None or hit[0] is not model:
            hit = self._memo[key] = (model, make())
        return hit[1]

    def _input_info(self, model: keras.Model) -> tuple[tuple[int | None, ...] | None, str | None, Any]:
        info: tuple[tuple[int | None, ...] | None, str | None, Any] = self._once(
            "input_info", model, lambda: input_info(model, self._layers(model))  # the session's one walk
        )
        return info

    def _named(self, model: keras.Model) -> list[tuple[str, keras.layers.Layer]]:
        named: list[tuple[str, keras.layers.Layer]] = self._once("named", model, lambda: named_layers(model))
        return named

    def _layers(self, model: keras.Model) -> list[keras.layers.Layer]:
        layers: list[keras.layers.Layer] = self._once("layers", model, lambda: [lay for _, lay in self._named(model)])
        return layers

    def compute_threads(self, n: int | None = None) -> int | None:
        """None: TensorFlow sizes its thread pools once, when it starts (tf.config.threading), not per call."""
        return None

    def prepare_input(self, model: keras.Model, x: Any) -> tf.Tensor:
        return _tensor(x, *self._input_info(model))

    def prepare_inputs(self, model: keras.Model, xs: list[Any], names: tuple[str, ...]) -> list[tf.Tensor]:
        """Each input checked against the model's symbolic input of its position (a dict: of its name)."""
        fmt, dtype = self._input_info(model)[1:]
        try:
            inputs = list(getattr(model, "inputs", None) or [])
        except (AttributeError, ValueError):  # subclassed models have no symbolic inputs
            inputs = []
        by_name = {str(getattr(t, "name", "")): t for t in inputs}
        if all(n in by_name for n in names):
            chosen: list[Any] = [by_name[n] for n in names]
        elif len(inputs) == len(xs) and all(n.startswith("x[") for n in names):
            chosen = inputs
        else:
            chosen = [None] * len(xs)
        return [
            _tensor(x, None if t is None else tuple(t.shape), fmt, dtype if t is None else t.dtype, n)
            for x, n, t in zip(xs, names, chosen)
        ]

    def input_layout(self, model: keras.Model) -> str:
        return "channels_first" if self._input_info(model)[1] == "channels_first" else "channels_last"

    def conv_rank(self, model: keras.Model) -> int | None:
        rank: int | None = self._once("conv_rank", model, lambda: conv_rank(model))
        return rank

    def activation_channel_axis(self) -> int:
        return -1

    def find_layer(self, model: keras.Model, layer: Any) -> LayerRef:
        if isinstance(layer, str):  # a name or path: looked up once per session
            ref: LayerRef = self._once(("layer", layer), model, lambda: find_layer(model, layer, self._named(model)))
            return ref
        return find_layer(model, layer, self._named(model))

    def resolve_layer(self, model: keras.Model, layer: Any) -> LayerRef:
        """As :meth:`Backend.resolve_layer`; "auto" on a vision transformer (a model with an
        attention layer) is the input of its last attention layer, whose tokens carry location."""
        ref = super().resolve_layer(model, layer)
        if not ref.auto or isinstance(layer, LayerRef):
            return ref
        attention = [(p, lay) for p, lay in named_layers(model) if type(lay).__name__.endswith("Attention")]
        return LayerRef(attention[-1][0], attention[-1][1], input=True) if attention else ref

    def compute(self, model: keras.Model, x: tf.Tensor, target: Target, request: Request) -> Gradients:
        key = Key.of(request, self.settings)
        if self.settings.forward_args or self.settings.forward_kwargs or rules_active():
            # eager: tensors a traced function would freeze; a user's rule block, which a
            # cached trace would either miss or keep after the block
            out, meta = compute(model, key, x, target, self.ops)
        else:
            out, meta = run(model, key, x, target, self._layers(model))
        return to_gradients(model, out, meta)

    def forward(self, model: keras.Model, x: tf.Tensor, output: int | str | None = None) -> tf.Tensor:
        return compiled_forward(model, x, output, self.settings, self._layers(model))  # traced when repeated

    def forward_with_activation(
        self, model: keras.Model, x: tf.Tensor, layer: Any, call: int = -1, output: int | str | None = None
    ) -> tuple[Any, tf.Tensor, str]:
        ref = self.resolve_layer(model, layer)
        return compiled_forward_with_activation(model, x, ref, call, output, self.settings)

    def activations(self, model: keras.Model, x: tf.Tensor, layer: Any, call: int = -1) -> tuple[tf.Tensor, str]:
        with PATCHING, capture_layer(model, self.resolve_layer(model, layer)) as cap:
            self.settings.call(model, x, training=training_flag(self.settings))
        return cap.get(call)

    def rule_scope(self, model: keras.Model, rule: Rule | RuleSwitch) -> AbstractContextManager[RuleReport]:
        _check_model(model)
        return apply_rule(model, rule)

    def final_softmax(self, model: keras.Model, x: tf.Tensor) -> str | None:
        layer = final_softmax(model)
        return None if layer is None else f"its last layer {layer.name!r}, a softmax"

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

    def dense_layers(self, model: keras.Model) -> list[tuple[str, Any]]:
        return params.dense_layers(model)

    def dense_params(self, layer: Any) -> tuple[np.ndarray, np.ndarray]:
        return params.dense_params(layer)

    def conv_layers(self, model: keras.Model) -> list[tuple[str, Any]]:
        return params.conv_layers(model)

    def conv_kernel(self, layer: Any) -> np.ndarray:
        return params.conv_kernel(layer)

    def weights(self, model: keras.Model) -> list[tuple[str, str, np.ndarray, bool]]:
        return params.weights(model)

    def attentions(self, model: keras.Model, x: tf.Tensor, output: Any = None) -> tuple[Any, list[Any]]:
        return attentions(model, x, output, self.settings)

    def layer_inputs(self, model: keras.Model, x: tf.Tensor, layers: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        with PATCHING, params.record_inputs(layers) as seen:
            model(x, training=False)
        return seen
