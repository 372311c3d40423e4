"""The registry of bundled models: one name per model, used by every command.

``gradsight <command> --model NAME`` and :func:`gradsight.models.load_model` look a
name up here before reading it as a file or a ``package.module:factory`` spec.

Adding a bundled model is one :func:`register` call with a loader
``framework -> (model, ModelInfo)``; the loader imports its framework lazily, so this
module (and the CLI's ``--help``) imports neither torch nor tensorflow.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ModelError
from ..inputs import ModelInfo

__all__ = ["BundledModel", "BUNDLED", "register", "load_bundled", "describe_bundled"]

FRAMEWORK_NAMES = {"torch": "PyTorch", "keras": "Keras"}


@dataclass(frozen=True)
class BundledModel:
    """One bundled model.

    Attributes
    ----------
    name: the ``--model`` name.
    help: a few words for ``--help``.
    load: ``framework ("torch" | "keras") -> (model, ModelInfo)``; raises
        :class:`~gradsight.errors.ModelError` when the framework is missing.
    accepts_weights: whether ``--weights FILE`` may replace the bundled weights.
    """

    name: str
    help: str
    load: Callable[[str], tuple[Any, ModelInfo]]
    accepts_weights: bool = True


BUNDLED: dict[str, BundledModel] = {}
"""Every bundled model by name, in registration order."""


def register(model: BundledModel) -> BundledModel:
    """Add ``model`` to :data:`BUNDLED` (a name can be registered once)."""
    if model.name in BUNDLED:
        raise ValueError(f"a bundled model named {model.name!r} is already registered")
    BUNDLED[model.name] = model
    return model


def load_bundled(name: str, framework: str = "torch") -> tuple[Any, ModelInfo]:
    """Load the bundled model ``name`` for ``framework``: ``(model, ModelInfo)``."""
    if name not in BUNDLED:
        raise ModelError(f"no bundled model named {name!r}; bundled: {', '.join(BUNDLED)}.")
    if framework not in FRAMEWORK_NAMES:
        raise ModelError(f"unknown framework {framework!r}; use one of {', '.join(FRAMEWORK_NAMES)}.")
    return BUNDLED[name].load(framework)


def describe_bundled() -> str:
    """``'demo' (the bundled shapes CNN), ...`` for help texts."""
    return ", ".join(f"'{m.name}' ({m.help})" for m in BUNDLED.values())


def _needs(framework: str, exc: BaseException) -> ModelError:
    what, extra = ("TensorFlow/Keras", "tensorflow") if framework == "keras" else ("PyTorch", "torch")
    return ModelError(f"this model needs {what}, which is not installed ({exc}); pip install 'gradsight[{extra}]'.")


def _shapes_info(framework: str, size: int, what: str) -> ModelInfo:
    """The input of the models trained on the shapes images: the demo's preprocessing and classes."""
    from .shapes import CLASSES

    return ModelInfo(
        framework=framework,
        layout="NHWC" if framework == "keras" else "NCHW",
        input_size=size,
        preprocessing="demo",
        class_names=tuple(CLASSES),
        description=f"the bundled {what} ({FRAMEWORK_NAMES[framework]})",
    )


def _load_shapes_net(framework: str) -> tuple[Any, ModelInfo]:
    return _shapes_model(framework, "demo", "model:load_demo_model", "keras_model:load_keras_demo_model",
                         "shapes demo model")


def _shapes_model(framework: str, name: str, torch_at: str, keras_at: str | None, what: str) -> tuple[Any, ModelInfo]:
    """A bundled model on the shapes images: ``gradsight.demo.<module>.<loader>()`` from ``torch_at`` or
    ``keras_at`` ("module:loader"; None: the model has no Keras twin)."""
    from .shapes import IMAGE_SIZE

    at = keras_at if framework == "keras" else torch_at
    if at is None:
        raise ModelError(f"{name!r} is a PyTorch model only (it has no Keras twin); use --framework torch.")
    module, loader = at.split(":")
    try:  # import_module, not ``from . import``: it honours sys.modules like any import of the module
        load = getattr(importlib.import_module(f"{__package__}.{module}"), loader)
    except ImportError as exc:
        if framework != "keras":
            raise _needs("torch", exc) from exc
        raise ModelError(
            f"the Keras demo model is not available ({exc}). It needs TensorFlow/Keras "
            "(pip install 'gradsight[tensorflow]'); or use --framework torch."
        ) from exc
    try:
        model = load()
    except FileNotFoundError as exc:
        raise ModelError(str(exc)) from exc
    return model, _shapes_info(framework, IMAGE_SIZE, what)


def _load_shapes_net_fine(framework: str) -> tuple[Any, ModelInfo]:
    return _shapes_model(framework, "demo-fine", "fine_model:load_fine_model", None,
                         "shapes demo model with a 16x16 last stage")


def _load_shapes_net_loc(framework: str) -> tuple[Any, ModelInfo]:
    return _shapes_model(framework, "demo-loc", "model:load_loc_model", "keras_model:load_keras_loc_model",
                         "shapes demo model fine-tuned with a localisation signal")


def _load_detector(framework: str) -> tuple[Any, ModelInfo]:
    try:
        if framework == "keras":
            from .keras_detector import INPUT_SIZE, load_keras_detector

            model = load_keras_detector()
        else:
            from .detector import INPUT_SIZE
            from .detector import load_demo_detector as load

            model = load()
    except ImportError as exc:
        raise ModelError(
            f"the {framework} demo detector needs {'TensorFlow/Keras' if framework == 'keras' else 'PyTorch'}: {exc}"
        ) from exc
    except FileNotFoundError as exc:
        raise ModelError(str(exc)) from exc
    return model, _shapes_info(framework, INPUT_SIZE, "tiny YOLO demo detector")


def _load_vit(framework: str) -> tuple[Any, ModelInfo]:
    return _shapes_model(framework, "demo-vit", "vit:load_demo_vit", None, "shapes demo ViT")


def _load_mlp(framework: str) -> tuple[Any, ModelInfo]:
    from . import mlp

    try:
        model = mlp.load_keras_mlp_model() if framework == "keras" else mlp.load_mlp_model()
    except ImportError as exc:
        raise _needs(framework, exc) from exc
    return model, ModelInfo(
        framework=framework,
        layout="NC",
        input_size=None,
        preprocessing="none",
        class_names=tuple(mlp.CLASSES),
        description=f"the bundled two-moons MLP ({FRAMEWORK_NAMES[framework]})",
    )


register(BundledModel("demo", "the bundled shapes CNN", _load_shapes_net))
register(BundledModel("demo-detector", "the bundled tiny YOLO", _load_detector))
register(BundledModel("demo-mlp", "the bundled 2-D MLP", _load_mlp, accepts_weights=False))
register(BundledModel("demo-vit", "the bundled shapes ViT", _load_vit))
register(BundledModel("demo-fine", "the shapes CNN with a 16x16 last stage, for finer CAMs", _load_shapes_net_fine))
register(BundledModel("demo-loc", "the shapes CNN fine-tuned to localise (CAM trained towards the masks)", _load_shapes_net_loc))
