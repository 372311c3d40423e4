"""Attention probabilities of a Keras model, for attention rollout: every
``MultiHeadAttention`` layer is called with ``return_attention_scores=True`` for one
forward pass (its caller still gets only the output), and the scores are kept."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import keras
import tensorflow as tf

from ...errors import ModelError
from ..base import Settings
from ..outputs import check_tensors, select_output
from .capture import PATCHING, named_layers, wrap_call
from .primitives import training_flag

__all__ = ["attentions"]


def attentions(model: keras.Model, x: tf.Tensor, output: Any, settings: Settings) -> tuple[Any, list[Any]]:
    """``(selected output, [scores (N, heads, T, T) per MultiHeadAttention call, in call order])``."""
    found: list[tf.Tensor] = []

    def make(call: Callable) -> Callable:
        def recording(*args: Any, **kwargs: Any) -> Any:
            asked = kwargs.pop("return_attention_scores", False)
            out, scores = call(*args, return_attention_scores=True, **kwargs)
            found.append(scores)
            return (out, scores) if asked else out

        return recording

    with PATCHING, ExitStack() as stack:
        for _, layer in named_layers(model):
            if isinstance(layer, keras.layers.MultiHeadAttention):
                stack.enter_context(wrap_call(layer, make))
        raw = settings.call(model, x, training=training_flag(settings))
        out = check_tensors(select_output(raw, output), tf.is_tensor)
    if not found:
        raise ModelError(
            f"no keras.layers.MultiHeadAttention layer ran in this {type(model).__name__}'s forward pass, so "
            "there are no attention probabilities for attention rollout."
        )
    return out, found
