"""Framework backends: the registry (a backend per model, imported lazily).

See :mod:`gradsight.backends.base` for the protocol and how to add a backend, and
:mod:`gradsight.backends.pipeline` for the gradient pipeline every backend shares.
"""

from __future__ import annotations

import sys
from typing import Any

from ..errors import ModelError
from .base import AUTO, Backend, Gradients, LayerRef, Ops
from .outputs import select_output

__all__ = ["AUTO", "Backend", "Gradients", "LayerRef", "Ops", "backend_for", "select_output"]


def _framework_of(model: Any) -> str | None:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return "torch"
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model):
        return "keras"
    tf_keras = sys.modules.get("tf_keras")
    if tf_keras is not None and isinstance(model, tf_keras.Model):
        return "keras"
    return None


def backend_for(model: Any) -> Backend:
    """The backend for ``model``, imported on first use."""
    kind = _framework_of(model)
    if kind == "torch":
        from .torch import TorchBackend

        return TorchBackend()
    if kind == "keras":
        try:
            from .keras import KerasBackend
        except ImportError as exc:  # TensorFlow/Keras missing or broken
            raise ModelError(f"Keras models need gradsight's Keras backend, which could not load: {exc}") from exc
        return KerasBackend()
    raise ModelError(
        f"gradsight cannot explain a {type(model).__module__}.{type(model).__name__}: "
        "pass a torch.nn.Module or a keras.Model."
    )
