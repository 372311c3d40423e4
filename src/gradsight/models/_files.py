"""Loading user models: a ``package.module:factory``, a weights file, a pickled PyTorch
model, a saved Keras model; and describing what was loaded (:class:`ModelInfo`)."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ModelError, close_matches
from ..inputs import ModelInfo

__all__ = ["load_factory", "load_weights", "load_pickled_torch", "load_keras_file", "info_for", "pretty"]


def pretty(framework: str) -> str:
    return {"torch": "PyTorch", "keras": "Keras"}.get(framework, framework)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ModelError(
            f"this model needs PyTorch, which is not installed ({exc}); pip install 'gradsight[torch]'."
        ) from exc
    return torch


def _framework(model: Any) -> str | None:
    from ..backends import _framework_of

    return _framework_of(model)


def info_for(model: Any, description: str) -> ModelInfo:
    """Describe a model that came from a factory or a file: layout, size, class names."""
    from ..backends import backend_for

    kind = _framework(model)
    if kind is None:
        raise ModelError(
            f"{description} gave a {type(model).__module__}.{type(model).__name__}, which is neither a "
            "torch.nn.Module nor a keras.Model."
        )
    layout = "NCHW" if backend_for(model).input_layout(model) == "channels_first" else "NHWC"
    size = None
    if kind == "keras":
        shape = getattr(model, "input_shape", None)
        # A single image input (None, H, W, C) with a fixed square size tells us the size.
        h, w = (2, 3) if layout == "NCHW" else (1, 2)
        if isinstance(shape, tuple) and len(shape) == 4 and isinstance(shape[h], int) and shape[h] == shape[w]:
            size = int(shape[h])
    declared = getattr(model, "input_size", None)  # a model may say it: model.input_size = 224
    if isinstance(declared, int) and not isinstance(declared, bool) and declared > 0:
        size = declared
    names = getattr(model, "class_names", None)
    class_names = tuple(str(n) for n in names) if isinstance(names, Sequence) and not isinstance(names, str) else None
    return ModelInfo(
        framework=kind,
        layout=layout,
        input_size=size,
        preprocessing="imagenet",
        class_names=class_names,
        description=description,
    )


def load_factory(spec: str) -> tuple[Any, ModelInfo]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ModelError(f"the model spec {spec!r} must look like 'package.module:factory'.")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        raise ModelError(
            f"cannot import {module_name!r} for the model spec {spec!r}: no module named {missing!r}. "
            "Install the package, or run from the folder that holds it (or add that folder to PYTHONPATH)."
        ) from exc
    except Exception as exc:  # the user's module failed while importing: say where
        raise ModelError(
            f"importing {module_name!r} for the model spec {spec!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise ModelError(
                f"{module_name!r} has no attribute {attr!r}; the part after ':' must name a function (or class) "
                f"that returns the model.{close_matches(part, names)}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelError(f"{spec!r} names a {type(obj).__name__}, not a function that returns the model.")
    try:
        model = obj()
    except TypeError as exc:
        raise ModelError(
            f"calling {spec}() failed: {exc}. The factory is called with no arguments; wrap it in a function "
            "that supplies them."
        ) from exc
    except Exception as exc:  # the user's factory failed: say which, keep the cause for --debug
        raise ModelError(f"calling {spec}() failed: {type(exc).__name__}: {exc}") from exc
    return model, info_for(model, f"{spec}()")


def load_weights(model: Any, framework: str, weights: str) -> None:
    path = Path(weights)
    if not path.is_file():
        raise ModelError(f"weights file not found: {weights!r}.")
    if framework == "keras":
        try:
            model.load_weights(str(path))
        except Exception as exc:
            raise ModelError(f"cannot load the Keras weights {weights!r} into the model: {exc}") from exc
        return
    torch = _import_torch()
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # unpickling errors come in many types
        raise ModelError(
            f"cannot read {weights!r} with torch.load(weights_only=True){_unpickler_reason(exc)}. --weights takes a "
            "file written by torch.save(model.state_dict(), FILE); a whole pickled model goes in --model FILE.pt "
            "with --trust-pickle."
        ) from exc
    if isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        # checkpoints often wrap the state_dict: {"state_dict": ..., "epoch": ...}
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise ModelError(f"{weights!r} holds a {type(state).__name__}, not a state_dict (a dict of tensors).")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        lines = [s.strip() for s in str(exc).splitlines() if s.strip()]
        detail = " ".join(lines[1:3]) if len(lines) > 1 else lines[0] if lines else ""
        raise ModelError(
            f"the weights in {weights!r} do not fit the model from the spec: {detail} "
            "Check that the factory builds the same architecture the weights were saved from."
        ) from exc


def _unpickler_reason(exc: BaseException) -> str:
    """The informative part of torch's long weights-only error (e.g. the class it refused)."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        reason = text.split(marker, 1)[1].strip().splitlines()[0]
        reason = reason.split(" was not an allowed global")[0].replace("Unsupported global: GLOBAL ", "it holds a ")
        if reason.startswith("Unsupported operand"):
            reason = "it is not a file written by torch.save"
        return f": {reason}"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f": it is not a file written by torch.save ({type(exc).__name__}: {first})"


def load_pickled_torch(path: Path, trust_pickle: bool) -> tuple[Any, ModelInfo]:
    if not trust_pickle:
        raise ModelError(
            f"{str(path)!r} is a pickled PyTorch model; unpickling runs code stored in the file, so it could do "
            "anything. Pass --trust-pickle only if you trust where the file came from, or save a state_dict and "
            "use --model package.module:factory --weights FILE."
        )
    torch = _import_torch()
    try:
        model = torch.load(path, weights_only=False, map_location="cpu")
    except Exception as exc:
        raise ModelError(f"cannot unpickle the model in {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    if isinstance(model, dict):
        raise ModelError(
            f"{str(path)!r} holds a state_dict (weights only), not a whole model; use "
            f"--model package.module:factory --weights {path}."
        )
    return model, info_for(model, f"the PyTorch model in {path}")


def load_keras_file(path: Path, weights: str | None = None) -> tuple[Any, ModelInfo]:
    """A Keras model file, or an architecture ``.json`` with its ``save_weights()`` file (``weights``)."""
    loader = None
    try:
        from ..backends import keras as keras_backend

        loader = getattr(keras_backend, "load_model", None)
    except ImportError:
        pass
    if loader is None:
        try:
            import keras
        except ImportError as exc:
            raise ModelError(
                f"{str(path)!r} is a Keras model, and Keras is not installed ({exc}); "
                "pip install 'gradsight[tensorflow]'."
            ) from exc
        loader = keras.models.load_model
    try:
        model = loader(str(path), weights=weights) if weights is not None else loader(str(path))
    except ModelError:
        raise  # gradsight's Keras loader already names the cause
    except Exception as exc:
        raise ModelError(f"cannot load the Keras model {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    return model, info_for(model, f"the Keras model in {path}")
