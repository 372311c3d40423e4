"""Loading a model from a command-line SPEC, and preparing pictures for it.

A SPEC is one of:

- ``demo``: the bundled shapes CNN (PyTorch ``ShapesNet``; ``framework="keras"`` gives
  its Keras twin);
- ``demo-detector``: the bundled tiny YOLO detector (``framework="keras"``: its twin);
- ``package.module:factory``: ``factory()`` is imported and called; it returns a
  ``torch.nn.Module`` or a ``keras.Model``. An optional weights file is loaded into it
  (PyTorch: a ``state_dict`` read with ``torch.load(weights_only=True)``; Keras:
  ``model.load_weights``);
- ``FILE.pt`` / ``FILE.pth``: a whole pickled PyTorch model. Unpickling runs code from
  the file, so it is refused unless ``trust_pickle=True``;
- ``FILE.keras`` / ``FILE.h5`` / ``FILE.hdf5``: a saved Keras model.

Neither torch nor tensorflow is imported until a SPEC needs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, ModelError, close_matches

__all__ = ["ModelInfo", "load_model", "PREPROCESSING", "preprocess", "FRAMEWORKS"]

FRAMEWORKS = ("torch", "keras")

PREPROCESSING = ("imagenet", "demo", "none")
"""Names :func:`preprocess` knows: ImageNet mean/std, the demo's own mean/std, or [0, 1]."""

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

_TORCH_SUFFIXES = (".pt", ".pth")
_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
_SPEC_FORMS = (
    "use 'demo', 'package.module:factory' (a function that returns the model), "
    "a pickled PyTorch model FILE.pt/.pth (with --trust-pickle), a Keras FILE.keras/.h5, or a Keras "
    "ARCH.json with --weights FILE.h5"
)


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model expects as input.

    Attributes
    ----------
    framework:
        ``"torch"`` or ``"keras"``.
    layout:
        ``"NCHW"`` (PyTorch) or ``"NHWC"`` (Keras): the layout of an image batch.
    input_size:
        Side in pixels of the square images the model expects, or None when unknown
        (the CLI then uses 224).
    preprocessing:
        Name of the default preprocessing, one of :data:`PREPROCESSING`.
    class_names:
        One name per output class, or None when unknown.
    description:
        A short human-readable description of what was loaded.
    """

    framework: str
    layout: str
    input_size: int | None
    preprocessing: str
    class_names: tuple[str, ...] | None
    description: str

    def class_name(self, k: int) -> str | None:
        """The name of class ``k``, or None."""
        if self.class_names is not None and 0 <= k < len(self.class_names):
            return self.class_names[k]
        return None


def load_model(
    spec: str,
    weights: str | None = None,
    trust_pickle: bool = False,
    framework: str | None = None,
) -> tuple[Any, ModelInfo]:
    """Load the model named by ``spec`` (see the module docstring).

    Parameters
    ----------
    spec:
        ``demo``, ``package.module:factory``, ``FILE.pt``/``.pth`` or ``FILE.keras``/``.h5``.
    weights:
        Optional weights file for ``demo`` and ``package.module:factory`` models.
    trust_pickle:
        Allow unpickling a whole PyTorch model from ``FILE.pt``/``.pth`` (runs code from
        the file: only for files you trust).
    framework:
        ``"torch"`` or ``"keras"``: picks the demo model's framework; for other specs, a
        check on what was loaded. None: whatever the spec gives.

    Returns
    -------
    (model, ModelInfo)

    Raises
    ------
    ModelError
        The spec, the file or the weights cannot be used; the message says what to do.
    """
    if framework is not None and framework not in FRAMEWORKS:
        raise ModelError(f"unknown framework {framework!r}; use one of {', '.join(FRAMEWORKS)}.")
    spec = str(spec).strip()
    if not spec:
        raise ModelError(f"empty model spec; {_SPEC_FORMS}.")
    if spec == "demo-detector":
        from .detection_cli import load_demo_detector

        model, info = load_demo_detector(framework or "torch")
        if weights is not None:
            _load_weights(model, info.framework, weights)
        return model, info
    if spec == "demo":
        model, info = _load_demo(framework or "torch")
        if weights is not None:
            _load_weights(model, info.framework, weights)
        return model, info

    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix == ".json":  # a Keras to_json() architecture with its save_weights() file
        model, info = _load_keras_file(path, weights)
    elif suffix in _TORCH_SUFFIXES + _KERAS_SUFFIXES or path.exists():
        if weights is not None:
            raise ModelError(
                f"--weights is for 'demo' and 'package.module:factory' models; {spec!r} is a whole saved model "
                "that already holds its weights."
            )
        if not path.is_file():
            raise ModelError(f"model file not found: {spec!r}; check the path ({_SPEC_FORMS}).")
        if suffix in _TORCH_SUFFIXES:
            model, info = _load_pickled_torch(path, trust_pickle)
        elif suffix in _KERAS_SUFFIXES:
            model, info = _load_keras_file(path)
        else:
            raise ModelError(
                f"cannot tell what kind of model file {spec!r} is from its suffix {suffix!r}; "
                f"PyTorch: {'/'.join(_TORCH_SUFFIXES)}, Keras: {'/'.join(_KERAS_SUFFIXES)}."
            )
    elif ":" in spec:
        model, info = _load_factory(spec)
        if weights is not None:
            _load_weights(model, info.framework, weights)
    else:
        raise ModelError(f"cannot understand the model spec {spec!r}; {_SPEC_FORMS}.")

    if framework is not None and info.framework != framework:
        raise ModelError(
            f"--framework {framework} was given but {spec!r} is a {_pretty(info.framework)} model; "
            f"drop --framework or pass --framework {info.framework}."
        )
    return model, info


def _pretty(framework: str) -> str:
    return {"torch": "PyTorch", "keras": "Keras"}.get(framework, framework)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ModelError(
            f"this model needs PyTorch, which is not installed ({exc}); pip install 'gradsight[torch]'."
        ) from exc
    return torch


def _load_demo(framework: str) -> tuple[Any, ModelInfo]:
    from .demo.shapes import CLASSES, IMAGE_SIZE

    if framework == "keras":
        try:
            from .demo.keras_model import load_keras_demo_model
        except ImportError as exc:
            raise ModelError(
                f"the Keras demo model is not available ({exc}). It needs TensorFlow/Keras "
                "(pip install 'gradsight[tensorflow]'); or use --framework torch."
            ) from exc
        model = load_keras_demo_model()
        layout = "NHWC"
    else:
        _import_torch()
        from .demo.model import load_demo_model

        try:
            model = load_demo_model()
        except FileNotFoundError as exc:
            raise ModelError(str(exc)) from exc
        layout = "NCHW"
    return model, ModelInfo(
        framework=framework,
        layout=layout,
        input_size=IMAGE_SIZE,
        preprocessing="demo",
        class_names=tuple(CLASSES),
        description=f"the bundled shapes demo model ({_pretty(framework)})",
    )


def _framework(model: Any) -> str | None:
    from .backends.base import _framework_of

    return _framework_of(model)


def _info_for(model: Any, description: str) -> ModelInfo:
    """Describe a model that came from a factory or a file: layout, size, class names."""
    from .backends.base import backend_for

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


def _load_factory(spec: str) -> tuple[Any, ModelInfo]:
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
    return model, _info_for(model, f"{spec}()")


def _load_weights(model: Any, framework: str, weights: str) -> None:
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


def _load_pickled_torch(path: Path, trust_pickle: bool) -> tuple[Any, ModelInfo]:
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
    return model, _info_for(model, f"the PyTorch model in {path}")


def _load_keras_file(path: Path, weights: str | None = None) -> tuple[Any, ModelInfo]:
    loader = None
    try:
        from .backends import keras as keras_backend

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
        raise  # already names the cause
    except Exception as exc:
        raise ModelError(f"cannot load the Keras model {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    return model, _info_for(model, f"the Keras model in {path}")


def preprocess(images: np.ndarray, name: str, layout: str) -> np.ndarray:
    """Turn uint8 RGB images into a float32 model batch.

    Parameters
    ----------
    images:
        uint8 (N, H, W, 3).
    name:
        ``"imagenet"``: ``(x / 255 - mean) / std`` with the ImageNet statistics;
        ``"demo"``: the same with the shapes benchmark's statistics;
        ``"none"``: ``x / 255`` in [0, 1].
    layout:
        ``"NCHW"`` or ``"NHWC"``: the output layout.

    Returns
    -------
    float32 (N, 3, H, W) or (N, H, W, 3).
    """
    if name not in PREPROCESSING:
        raise InputError(f"unknown preprocessing {name!r}; use one of {', '.join(PREPROCESSING)}.")
    if layout not in ("NCHW", "NHWC"):
        raise InputError(f"layout must be 'NCHW' or 'NHWC'; got {layout!r}.")
    x = np.asarray(images, dtype=np.float32) / np.float32(255.0)
    if name == "imagenet":
        x = (x - IMAGENET_MEAN) / IMAGENET_STD
    elif name == "demo":
        from .demo.shapes import MEAN, STD

        x = (x - MEAN) / STD
    if layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x, dtype=np.float32)
