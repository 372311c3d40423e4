"""The user's Keras model and the process are exactly as before explain(): success and every
failure kind, for every method (a generated matrix comparing a full fingerprint).

Every cell reaches the model's forward pass (checked); errors raised before the model
runs (an unknown layer name or option, a channels-first input) are checked separately."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from keras_nets import batch  # noqa: E402

import gradsight as gs  # noqa: E402
from gradsight.backends.keras import ACTIVATION_OPS  # noqa: E402
from gradsight.backends.keras.capture import named_layers  # noqa: E402
from helpers import assert_rel  # noqa: E402


class Boom(keras.layers.Layer):
    """Raises mid-forward when armed (a layer failing inside the user's model); counts its calls."""

    calls = 0  # on the class: an instance attribute would show in the fingerprint

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)
        self.armed: type[BaseException] | None = None

    def call(self, x: tf.Tensor) -> tf.Tensor:
        Boom.calls += 1
        if self.armed is not None:
            raise self.armed("boom")
        return x


def stateful_net() -> keras.Model:
    keras.utils.set_random_seed(30)
    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(6, 3, padding="same", name="conv")(inp)
    h = keras.layers.ReLU(name="relu")(keras.layers.BatchNormalization(name="bn")(h))
    h = Boom(name="boom")(keras.layers.Dropout(0.5, name="drop")(h))
    h = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    model = keras.Model(inp, keras.layers.Dense(4, name="fc")(h))
    model.get_layer("fc").trainable = False  # a frozen layer must stay frozen
    bn = model.get_layer("bn")  # non-trivial moving statistics
    bn.moving_mean.assign(np.linspace(-0.5, 0.5, 6).astype(np.float32))
    bn.moving_variance.assign(np.linspace(0.5, 2.0, 6).astype(np.float32))
    return model


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def process_settings() -> dict:
    import importlib

    refs = {}
    for dotted in ACTIVATION_OPS:
        module, _, attr = dotted.rpartition(".")
        refs[dotted] = getattr(importlib.import_module(module), attr)
    return {
        "refs": refs,
        "policy": keras.config.dtype_policy().name,
        "floatx": keras.config.floatx(),
        "data_format": keras.config.image_data_format(),
        "run_eagerly": tf.config.functions_run_eagerly(),
        "eager": tf.executing_eagerly(),
        "KERAS_BACKEND": os.environ.get("KERAS_BACKEND"),
        "backend": keras.backend.backend(),
    }


def fingerprint(model: keras.Model) -> dict:
    layers = []
    for path, layer in [("", model)] + named_layers(model):
        layers.append(
            (
                path,
                id(layer),
                type(layer).__name__,
                layer.__dict__.get("call", "class call"),
                getattr(layer, "activation", None),
                layer.trainable,
                layer.built,
                tuple(sorted(vars(layer))),
            )
        )
    weights = [(v.path, v.trainable, v.dtype, _digest(v.numpy())) for v in model.variables]
    return {"layers": layers, "weights": weights, "settings": process_settings()}


def _target_fails(outputs: tf.Tensor) -> tf.Tensor:
    raise ValueError("the user's target function fails")


METHODS = ["saliency", "smoothgrad", "deconvnet", "guided_backprop", "gradcam", "guided_gradcam"]
FAILURES = {
    "none": ({}, None, None),
    "eval_mode_false": ({"eval_mode": False}, None, None),
    "target_out_of_range": ({"target": 99}, None, gs.TargetError),
    "layer_not_called": ({"layer": "conv2", "call": 5}, None, gs.LayerNotCalledError),  # known after the forward
    "target_function_raises": ({"target": _target_fails}, None, ValueError),
    "layer_raises": ({}, RuntimeError, RuntimeError),
    "keyboard_interrupt": ({}, KeyboardInterrupt, KeyboardInterrupt),
}


@pytest.fixture()
def model() -> keras.Model:
    # A fresh model per case: a compiled (cached) computation never re-runs the Python of a layer,
    # so each failure is met where it can happen, on the first (tracing) call.
    return stateful_net()


CELLS = [(m, k) for m in METHODS for k in FAILURES if k != "layer_not_called" or gs.METHODS[m].uses_layer]
BEFORE_FORWARD = {
    "unknown_layer": ("gradcam", {"layer": "conv3"}, gs.LayerNotFoundError),
    "unknown_option": ("saliency", {"layer": "conv2"}, gs.UnknownOptionError),
    "channels_first_input": ("smoothgrad", {"x": "nchw"}, gs.InputError),
}


@pytest.mark.parametrize("method, kind", CELLS)
def test_model_and_process_unchanged(model: keras.Model, method: str, kind: str) -> None:
    kwargs, armed, error = FAILURES[kind]
    kwargs = dict(kwargs)
    x = batch(2)
    if kwargs.pop("x", None) == "nchw":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if method == "smoothgrad":
        kwargs.update(samples=2, seed=0)
    x_before = x.copy()
    before = fingerprint(model)
    model.get_layer("boom").armed = armed
    calls = Boom.calls
    try:
        if error is None:
            exp = gs.explain(model, x, method=method, **kwargs)
            assert np.isfinite(exp.attributions).all()
        else:
            with pytest.raises(error):
                gs.explain(model, x, method=method, **kwargs)
    finally:
        model.get_layer("boom").armed = None
    assert Boom.calls > calls, "the cell never reached the model's forward pass"
    assert fingerprint(model) == before
    np.testing.assert_array_equal(x, x_before)  # the input is never modified


@pytest.mark.parametrize("kind", list(BEFORE_FORWARD))
def test_errors_before_the_forward_pass_touch_nothing(model: keras.Model, kind: str) -> None:
    method, kwargs, error = BEFORE_FORWARD[kind]
    kwargs = dict(kwargs)
    x = batch(2)
    if kwargs.pop("x", None) == "nchw":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    before = fingerprint(model)
    calls = Boom.calls
    with pytest.raises(error):
        gs.explain(model, x, method=method, **kwargs)
    assert Boom.calls == calls
    assert fingerprint(model) == before


def test_rule_not_applied_leaves_everything_unchanged() -> None:
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.Conv2D(2, 3)(inp))))
    before = fingerprint(model)
    for method in ("deconvnet", "guided_backprop", "guided_gradcam"):
        with pytest.raises(gs.RuleNotAppliedError):
            gs.explain(model, batch(1), method=method)
    assert fingerprint(model) == before


def test_importing_gradsight_imports_no_tensorflow() -> None:
    code = (
        "import sys, gradsight, gradsight.api, gradsight.methods, gradsight.targets;"
        "bad = [m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules];"
        "assert not bad, bad"
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_threads_explaining_one_model_leave_it_unchanged() -> None:
    from concurrent.futures import ThreadPoolExecutor

    model = stateful_net()
    before = fingerprint(model)
    x = batch(2)
    jobs = [("saliency", {}), ("guided_backprop", {}), ("gradcam", {"layer": "conv2"}), ("deconvnet", {})] * 2
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda job: gs.explain(model, x, method=job[0], target=1, **job[1]), jobs))
    for a, b in zip(results[:4], results[4:]):
        np.testing.assert_array_equal(a.attributions, b.attributions)
    assert_rel(results[1].attributions, gs.guided_backprop(model, x, target=1).attributions, 1e-6)
    assert fingerprint(model) == before
