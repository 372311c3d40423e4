"""Loading a model from a command-line SPEC.

A SPEC is one of:

- the name of a bundled model (:data:`gradsight.demo.registry.BUNDLED`): ``demo`` (the
  shapes CNN), ``demo-vit`` (the shapes ViT), ``demo-detector`` (the tiny YOLO detector), ``demo-mlp`` (the two-moons
  MLP); ``framework="keras"`` gives the Keras twin;
- ``package.module:factory``: ``factory()`` is imported and called; it returns a
  ``torch.nn.Module`` or a ``keras.Model``. An optional weights file is loaded into it
  (PyTorch: a ``state_dict`` read with ``torch.load(weights_only=True)``; Keras:
  ``model.load_weights``);
- ``FILE.pt`` / ``FILE.pth``: a whole pickled PyTorch model. Unpickling runs code from
  the file, so it is refused unless ``trust_pickle=True``;
- ``FILE.keras`` / ``FILE.h5`` / ``FILE.hdf5``: a saved Keras model (Keras 2 and TF1-era
  ``.h5`` files too);
- ``ARCH.json`` with ``weights``: a Keras ``model.to_json()`` architecture and its
  ``save_weights()`` file.

Neither torch nor tensorflow is imported until a SPEC needs it. Preparing images for
the model is :func:`gradsight.inputs.preprocess` (re-exported here); what a loaded model
takes (channels, rank, preprocessing) is :func:`input_spec` / :func:`default_preprocessing`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..demo.registry import BUNDLED, describe_bundled, load_bundled
from ..errors import InputError, ModelError, close_matches
from ..inputs import PREPROCESSING, InputSpec, ModelInfo, preprocess
from ._files import load_factory, load_keras_file, load_pickled_torch, load_weights, pretty
from ._inputs import default_preprocessing, input_spec

__all__ = [
    "ModelInfo", "load_model", "PREPROCESSING", "preprocess", "FRAMEWORKS", "InputSpec", "input_spec",
    "default_preprocessing",
]

FRAMEWORKS = ("torch", "keras")

_TORCH_SUFFIXES = (".pt", ".pth")
_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
_SPEC_FORMS = (
    "use 'demo', 'package.module:factory' (a function that returns the model), "
    "a pickled PyTorch model FILE.pt/.pth (with --trust-pickle), a Keras FILE.keras/.h5, or a Keras "
    "ARCH.json with --weights FILE.h5"
)


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
        A bundled model's name, ``package.module:factory``, ``FILE.pt``/``.pth`` or
        ``FILE.keras``/``.h5``, or ``ARCH.json`` (with ``weights``).
    weights:
        Optional weights file for bundled and ``package.module:factory`` models; required
        with ``ARCH.json``.
    trust_pickle:
        Allow unpickling a whole PyTorch model from ``FILE.pt``/``.pth`` (runs code from
        the file: only for files you trust).
    framework:
        ``"torch"`` or ``"keras"``: picks a bundled model's framework; for other specs, a
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
    if spec in BUNDLED:
        bundled = BUNDLED[spec]
        if not bundled.accepts_weights and (weights is not None or trust_pickle):
            raise InputError(f"--weights and --trust-pickle are for model files and factories, not '{spec}'.")
        model, info = load_bundled(spec, framework or "torch")
        if weights is not None:
            load_weights(model, info.framework, weights)
        return model, info

    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix == ".json":  # a Keras to_json() architecture with its save_weights() file
        model, info = load_keras_file(path, weights)
    elif suffix in _TORCH_SUFFIXES + _KERAS_SUFFIXES or path.exists():
        if weights is not None:
            raise ModelError(
                f"--weights is for 'demo' and 'package.module:factory' models; {spec!r} is a whole saved model "
                "that already holds its weights."
            )
        if not path.is_file():
            raise ModelError(f"model file not found: {spec!r}; check the path ({_SPEC_FORMS}).")
        if suffix in _TORCH_SUFFIXES:
            model, info = load_pickled_torch(path, trust_pickle)
        elif suffix in _KERAS_SUFFIXES:
            model, info = load_keras_file(path)
        else:
            raise ModelError(
                f"cannot tell what kind of model file {spec!r} is from its suffix {suffix!r}; "
                f"PyTorch: {'/'.join(_TORCH_SUFFIXES)}, Keras: {'/'.join(_KERAS_SUFFIXES)}."
            )
    elif ":" in spec:
        model, info = load_factory(spec)
        if weights is not None:
            load_weights(model, info.framework, weights)
    else:
        raise ModelError(
            f"cannot understand the model spec {spec!r};{close_matches(spec, BUNDLED, n=3)} bundled models: "
            f"{', '.join(BUNDLED)}; {_SPEC_FORMS}."
        )

    if framework is not None and info.framework != framework:
        raise ModelError(
            f"--framework {framework} was given but {spec!r} is a {pretty(info.framework)} model; "
            f"drop --framework or pass --framework {info.framework}."
        )
    return model, info


def model_help() -> str:
    """The ``--model`` help text: every bundled model, then the other spec forms."""
    return (f"{describe_bundled()}, 'package.module:factory' (a function returning the model), a pickled "
            "PyTorch model FILE.pt/.pth (needs --trust-pickle), a Keras FILE.keras/.h5, or a Keras ARCH.json "
            "with --weights FILE.h5")
