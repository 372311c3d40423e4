"""Keras models for the benchmarks, built by hand with random weights (no downloads)."""

from __future__ import annotations

from typing import Any

CIFAR_LAYER = "stage3_out"  # the last stage's output (the Grad-CAM layer, as ``layer3`` in PyTorch)


def cifar_resnet(n: int = 3, num_classes: int = 10, seed: int = 0) -> Any:
    """A CIFAR ResNet-(6n+2) (ResNet-20 for n=3): input (N, 32, 32, 3), logits (N, classes), random weights."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input((32, 32, 3))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(16, 3, padding="same", use_bias=False)(inp)))
    planes_in = 16
    for stage, planes in enumerate((16, 32, 64)):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            y = layers.Conv2D(planes, 3, strides=stride, padding="same", use_bias=False)(x)
            y = layers.ReLU()(layers.BatchNormalization()(y))
            y = layers.BatchNormalization()(layers.Conv2D(planes, 3, padding="same", use_bias=False)(y))
            short = x
            if stride != 1 or planes_in != planes:
                short = layers.BatchNormalization()(layers.Conv2D(planes, 1, strides=stride, use_bias=False)(x))
            last = stage == 2 and i == n - 1
            x = layers.ReLU(name=CIFAR_LAYER if last else None)(layers.Add()([y, short]))
            planes_in = planes
    out = layers.Dense(num_classes)(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inp, out, name="cifar_resnet20")
