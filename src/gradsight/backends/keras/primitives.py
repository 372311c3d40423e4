"""The pipeline's Keras/TensorFlow edge: a gradient tape around forward and target.

TensorFlow records gradients on a tape, so the forward pass and the target score must
run inside one recording: :meth:`KerasPrimitives.record` opens the tape (and holds the
patching lock while gradsight's wrappers shadow layer attributes), the shared pipeline
(:mod:`gradsight.backends.pipeline`) runs forward and target inside it, and
:meth:`~KerasPrimitives.vjp` differentiates the closed tape. One object per call:
the tape and the session's settings live here, never on the backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

import keras
import tensorflow as tf

from ...rules import Rule, RuleReport, RuleSwitch
from ..base import Captured, LayerRef, Primitives, Settings
from .capture import PATCHING, capture_layer
from .models import strip_softmax
from .ops import KerasOps
from .rules import apply_rule

__all__ = ["KerasPrimitives", "training_flag"]


def training_flag(settings: Settings) -> bool | None:
    """``training=`` for model calls: False in eval mode, else Keras' own default (None)."""
    return False if settings.eval_mode else None


class KerasPrimitives(Primitives):
    ops: KerasOps

    def __init__(self, model: keras.Model, ops: KerasOps, settings: Settings) -> None:
        self.model, self.ops, self.settings = model, ops, settings
        self.tape: tf.GradientTape | None = None

    @contextmanager
    def record(self, x: tf.Tensor) -> Iterator[tf.Tensor]:
        # persistent: (N, k) scores take one backward pass per column, a rule switch two
        with PATCHING, ExitStack() as stack:
            if self.settings.logits:  # before any capture, which then records the stripped output
                stack.enter_context(strip_softmax(self.model))
            tape = stack.enter_context(tf.GradientTape(watch_accessed_variables=False, persistent=True))
            tape.watch(x)
            self.tape = tape
            yield x

    def forward(self, model: keras.Model, x: tf.Tensor) -> Any:
        return self.settings.call(model, x, training=training_flag(self.settings))

    def rule_scope(self, model: keras.Model, rule: Rule | RuleSwitch) -> AbstractContextManager[RuleReport]:
        return apply_rule(model, rule)

    def capture(self, model: keras.Model, layer: LayerRef) -> AbstractContextManager[Captured]:
        return capture_layer(model, layer)

    def vjp(self, scores: tf.Tensor, wrt: list[tf.Tensor], retain: bool) -> list[tf.Tensor | None]:
        tape = self.tape
        assert tape is not None, "vjp before record"
        if scores.shape.rank == 1:
            return list(tape.gradient(scores, wrt))
        k = scores.shape[1]
        cols = [
            tape.gradient(
                scores, wrt, output_gradients=tf.broadcast_to(tf.one_hot(j, k, dtype=scores.dtype), scores.shape)
            )
            for j in range(k)
        ]
        return [None if cols[0][i] is None else tf.stack([c[i] for c in cols], axis=1) for i in range(len(wrt))]
