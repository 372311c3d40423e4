"""What gradsight needs to know about a Keras model: its file, its input, its last layer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras

from ...errors import ModelError
from .capture import iter_layers, shadow, wrap_call

__all__ = ["load_model", "conv_rank", "input_info", "final_softmax", "require_final_softmax", "strip_softmax"]


def load_model(
    path: str | Path,
    custom_objects: dict[str, Any] | None = None,
    safe_mode: bool = True,
    weights: str | Path | None = None,
) -> keras.Model:
    """Load a ``.keras``, Keras 2 ``.h5`` (TF1-era layout too) or ``.json`` + ``weights`` model (uncompiled).

    Parameters
    ----------
    path:
        The model file; a ``model.to_json()`` architecture needs ``weights``.
    custom_objects:
        Custom layers / functions the file refers to, as for ``keras.models.load_model``.
    safe_mode:
        Passed to Keras (``.keras`` files with lambda layers need ``False``).
    weights:
        With an architecture ``.json``: the ``save_weights()`` file.

    Raises
    ------
    ModelError
        The file cannot be loaded; the message names the cause (see :mod:`.legacy`).
    """
    from .legacy import load_file

    return load_file(path, weights=weights, custom_objects=custom_objects, safe_mode=safe_mode)


def input_info(
    model: keras.Model, layers: list[keras.layers.Layer] | None = None
) -> tuple[tuple[int | None, ...] | None, str | None, Any]:
    """``(input shape with batch axis or None, data_format of the first conv or None, input dtype)``.

    ``layers``: the model's layers in :func:`~.capture.iter_layers` order, if at hand (else walked)."""
    shape = dtype = None
    inputs = getattr(model, "inputs", None)
    try:
        if inputs and len(inputs) == 1:
            shape, dtype = tuple(inputs[0].shape), inputs[0].dtype
    except (AttributeError, ValueError):  # subclassed models have no symbolic inputs
        pass
    fmt, channels = None, None
    for layer in (lay for _, lay in iter_layers(model)) if layers is None else layers:  # stops at the first conv
        if isinstance(layer, _CONVS) and getattr(layer, "kernel", None) is not None:
            fmt = layer.data_format  # 1-D and 3-D convolutions say the layout of signals and volumes
            channels = int(layer.kernel.shape[-2]) if isinstance(layer, keras.layers.Conv2D) else None
            break
    if shape is None and channels is not None:
        shape = (None, None, None, channels) if fmt == "channels_last" else (None, channels, None, None)
    if dtype is None:
        dtype = model.dtype_policy.compute_dtype
    return shape, fmt, dtype


_CONVS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)


def conv_rank(model: keras.Model) -> int | None:
    """Spatial axes of the model's first convolution (Conv1D: 1, Conv2D and its kin: 2, Conv3D: 3), or None."""
    for _, layer in iter_layers(model):
        rank = getattr(layer, "rank", None)
        if "Conv" in type(layer).__name__ and isinstance(rank, int) and 1 <= rank <= 3:
            return rank
    return None


def _output_layer(model: keras.Model) -> keras.layers.Layer | None:
    """The layer producing the (single) output of a Functional/Sequential model, nested models opened."""
    layer: Any = model
    while isinstance(layer, keras.Model):
        try:
            outputs = layer.outputs
        except (AttributeError, ValueError):
            return None  # subclassed: the order of calls is not known statically
        if not outputs or len(outputs) != 1:
            return None
        history = getattr(outputs[0], "_keras_history", None)
        if history is None:
            return None
        layer = history[0]
    return layer


def final_softmax(model: keras.Model) -> keras.layers.Layer | None:
    """The last layer when it applies a softmax (``activation="softmax"`` or a ``Softmax`` layer)."""
    layer = _output_layer(model)
    if layer is None:
        return None
    if isinstance(layer, keras.layers.Softmax):
        return layer
    act = getattr(layer, "activation", None)
    return layer if getattr(act, "__name__", None) == "softmax" else None


def require_final_softmax(model: keras.Model) -> keras.layers.Layer:
    """:func:`final_softmax`, or a :class:`ModelError` saying why ``logits=True`` cannot apply."""
    layer = final_softmax(model)
    if layer is None:
        raise ModelError(
            "logits=True explains the pre-softmax scores of a model whose last layer applies a softmax "
            "(Dense/Conv with activation='softmax', Activation('softmax') or Softmax); this "
            f"{type(model).__name__}'s last layer does not (or, for a subclassed model, cannot be found). "
            "Drop logits=True."
        )
    return layer


@contextmanager
def strip_softmax(model: keras.Model) -> Iterator[None]:
    """Inside the block the final softmax is skipped, so the model returns pre-softmax scores."""
    layer = require_final_softmax(model)
    if isinstance(layer, keras.layers.Softmax) or type(layer) is keras.layers.Activation:
        with wrap_call(layer, lambda call: lambda inputs, *args, **kwargs: inputs):
            yield
        return
    with shadow(layer, "activation", keras.activations.linear):
        yield
