"""Small Keras models for the Keras backend tests, and their hand-written references.

Every way a rectifier is written appears once in :func:`rectifier_net`; ``twin=rule``
builds the same network with each rectifier replaced by :class:`RefAct`, an independent
three-line ``tf.custom_gradient`` implementation of the rule (the reference).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf


class RefAct(keras.layers.Layer):
    """max(x, 0) + slope * min(x, 0) whose gradient follows ``rule`` ("guided" or "deconvnet")."""

    def __init__(self, slope: float = 0.0, rule: str = "guided", **kw: Any) -> None:
        super().__init__(**kw)
        self.slope, self.rule = slope, rule

    def call(self, x: tf.Tensor) -> tf.Tensor:
        slope, rule = self.slope, self.rule

        @tf.custom_gradient
        def f(x: tf.Tensor) -> Any:
            def grad(g: tf.Tensor) -> tf.Tensor:
                if rule == "guided":
                    return tf.maximum(g, 0.0) * tf.where(x > 0, 1.0, slope)
                return tf.where(g > 0, g, slope * g)  # deconvnet: f(g)

            return tf.where(x > 0, x, slope * x), grad

        return f(x)


class TfRelu(keras.layers.Layer):
    """A custom layer calling tf.nn.relu."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.nn.relu(x)


class TfLeaky(keras.layers.Layer):
    """A custom layer calling tf.nn.leaky_relu (alpha 0.2)."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return tf.nn.leaky_relu(x, alpha=0.2)


class OpsRelu(keras.layers.Layer):
    """A custom layer calling keras.ops.relu."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return keras.ops.relu(x)


class ActsRelu(keras.layers.Layer):
    """A custom layer calling keras.activations.relu."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return keras.activations.relu(x)


def _act(form: str, twin: str | None, name: str) -> keras.layers.Layer:
    slope = {"leaky_layer": 0.1, "tf_leaky": 0.2}.get(form, 0.0)
    if twin is not None:
        return RefAct(slope, twin, name=name)
    return {
        "relu_layer": lambda: keras.layers.ReLU(name=name),
        "activation_layer": lambda: keras.layers.Activation("relu", name=name),
        "leaky_layer": lambda: keras.layers.LeakyReLU(0.1, name=name),
        "tf_relu": lambda: TfRelu(name=name),
        "tf_leaky": lambda: TfLeaky(name=name),
    }[form]()


def rectifier_net(twin: str | None = None, size: int = 8) -> keras.Model:
    """A classifier around a nested base model; every rectifier form appears once.

    ``twin="guided"`` / ``"deconvnet"``: the reference twin (copy weights with :func:`copy_weights`).
    """
    def conv(filters: int, name: str, act: bool = False) -> keras.layers.Layer:
        return keras.layers.Conv2D(filters, 3, padding="same", name=name, activation="relu" if act and twin is None else None)

    inp = keras.Input((size, size, 3))
    h = conv(6, "b_conv1", act=True)(inp)  # activation="relu" argument
    if twin is not None:
        h = RefAct(0.0, twin, name="b_arg")(h)
    h = _act("leaky_layer", twin, "b_leaky")(conv(6, "b_conv2")(h))
    h = _act("tf_leaky", twin, "b_tfleaky")(conv(6, "b_conv3")(h))
    base = keras.Model(inp, h, name="base")

    x = keras.Input((size, size, 3))
    h = base(x)
    h = _act("activation_layer", twin, "act")(conv(8, "conv4")(h))
    h = _act("tf_relu", twin, "tfrelu")(conv(8, "conv5")(h))
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    h = _act("relu_layer", twin, "relu")(keras.layers.Dense(12, name="fc1")(h))
    return keras.Model(x, keras.layers.Dense(4, name="fc2")(h), name="classifier")


def copy_weights(src: keras.Model, dst: keras.Model) -> None:
    """Copy every weighted layer's weights by path (nested models opened)."""
    from gradsight.backends.keras.capture import named_layers

    target = dict(named_layers(dst))
    for path, layer in named_layers(src):
        if layer.weights and not isinstance(layer, keras.Model):
            target[path].set_weights(layer.get_weights())


class SubclassedNet(keras.Model):
    """A subclassed CNN: features (conv-ReLU x2, one conv reused) then a head."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.conv1 = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")
        self.conv2 = keras.layers.Conv2D(6, 3, padding="same", name="conv2")
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.fc = keras.layers.Dense(3, name="fc")

    def features(self, x: tf.Tensor) -> tf.Tensor:
        return tf.nn.relu(self.conv2(self.conv1(x)))

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return self.fc(self.pool(self.features(x)))


def vgg_style(size: int = 32, classes: int = 4, softmax: bool = True) -> keras.Model:
    """A tiny VGG-shaped Functional model with VGG16's layer names (``block5_conv3`` included)."""
    convs = {1: 2, 2: 2, 3: 3, 4: 3, 5: 3}
    x = inp = keras.Input((size, size, 3), name="input_1")
    for block, n in convs.items():
        for i in range(1, n + 1):
            x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name=f"block{block}_conv{i}")(x)
        if block < 5:
            x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(classes, activation="softmax" if softmax else None, name="predictions")(x)
    return keras.Model(inp, out, name="custom_model")


def batch(n: int = 2, size: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, size, size, 3)).astype(np.float32)
