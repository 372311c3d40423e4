"""Reading the Keras model files users bring into Keras 3: ``.keras``, Keras 2.x ``.h5``
(the TF1-era layout included) and ``to_json()`` + ``save_weights()`` pairs.

Keras 3 reads most Keras 2 ``.h5`` files itself. Two common kinds it cannot read:

- the TF1-era layout (Keras <= 2.2.x, standalone or ``tf.keras`` 1.x): a ``Sequential``
  whose first layer carries ``batch_input_shape`` and which has no ``InputLayer``. Keras 3
  turns that shape into a layer ``input_shape`` *with* the batch axis, and the first
  convolution fails with "Kernel shape must have the same length as input". The config
  is rewritten with an explicit ``InputLayer`` (and a few renamed fields, see
  :func:`fix_legacy_config`) and the model rebuilt from it; the weights are then read
  from the file by Keras' own order-based reader, which checks layer and weight counts
  and every shape against the rebuilt model;
- ``model.to_json()`` files of Keras 2, which ``keras.models.model_from_json`` refuses
  (no ``module`` keys); they are rebuilt the same way and take their weights from a
  ``save_weights()`` file.

When a file cannot be read, the error names the cause: not an HDF5 file (and what it
is instead, when that can be told), weights only (no architecture), a custom layer
class (by name), a Keras 1 file, or the Keras error met while rebuilding.
"""

from __future__ import annotations

import json
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from ...errors import ModelError
from .legacy_config import fix_legacy_config, layer_configs, strip_modules

__all__ = ["H5Info", "fix_legacy_config", "load_file", "load_json", "read_h5_info", "unknown_classes"]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
_MODEL_CLASSES = {"Sequential", "Model", "Functional", "InputLayer"}
# Keras 2 (tf.keras) layer classes that Keras 3 has no counterpart for.
_KERAS2_ONLY = {
    "TFOpLambda": "TensorFlow ops called on Keras tensors (tf.keras turned them into TFOpLambda layers)",
    "SlicingOpLambda": "tensor slicing on Keras tensors (tf.keras turned it into SlicingOpLambda layers)",
    "LocallyConnected1D": "a Keras 2 layer that Keras 3 removed",
    "LocallyConnected2D": "a Keras 2 layer that Keras 3 removed",
    "ThresholdedReLU": "a Keras 2 layer that Keras 3 removed (a ReLU with threshold= does the same)",
    "CuDNNLSTM": "a Keras 2 layer that Keras 3 removed (LSTM uses cuDNN by itself)",
    "CuDNNGRU": "a Keras 2 layer that Keras 3 removed (GRU uses cuDNN by itself)",
    "DenseFeatures": "a tf.keras feature-column layer that Keras 3 removed",
}


@dataclass(frozen=True)
class H5Info:
    """What an HDF5 file holds, read from its attributes (no weights are read)."""

    config: dict[str, Any] | None
    """The model config (``model_config`` attribute), or None for a weights-only file."""
    keras_version: str | None
    weight_layers: int
    """Layers with stored weights (``layer_names``), 0 when unknown."""


def load_file(
    path: str | Path,
    weights: str | Path | None = None,
    custom_objects: dict[str, Any] | None = None,
    safe_mode: bool = True,
) -> keras.Model:
    """A ``keras.Model`` from ``.keras``, ``.h5``/``.hdf5``, or ``.json`` (with ``weights``) files.

    See the module docstring; every failure is a :class:`~gradsight.errors.ModelError`
    naming its cause.
    """
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model file {str(p)!r} does not exist.")
    suffix = p.suffix.lower()
    if p.is_dir() or suffix not in (".keras", ".h5", ".hdf5", ".json"):
        raise ModelError(
            f"{str(p)!r} is not a Keras model file: Keras 3 loads '.keras' and legacy '.h5' files, and "
            "gradsight a Keras 2 'to_json()' file with its weights (a TF SavedModel folder can be wrapped with "
            "keras.layers.TFSMLayer)."
        )
    if suffix == ".json":
        if weights is None:
            raise ModelError(
                f"{str(p)!r} is a model architecture (JSON) without weights; pass the weights file written by "
                "save_weights() too: load_model(ARCH.json, weights='WEIGHTS.h5') or --model ARCH.json --weights "
                "WEIGHTS.h5."
            )
        return load_json(p, weights, custom_objects=custom_objects, safe_mode=safe_mode)
    if weights is not None:
        raise ModelError(
            f"{str(p)!r} is a whole saved model that holds its own weights; weights= (--weights) goes with an "
            "architecture file (ARCH.json) or a factory."
        )
    if suffix == ".keras":
        return _keras_load(p, custom_objects, safe_mode, version=None)
    return _load_h5(p, custom_objects, safe_mode)


def load_json(
    arch: str | Path,
    weights: str | Path,
    custom_objects: dict[str, Any] | None = None,
    safe_mode: bool = True,
) -> keras.Model:
    """Rebuild a ``model.to_json()`` architecture (Keras 2 or 3) and load ``save_weights()`` into it."""
    a, w = Path(arch), Path(weights)
    if not w.is_file():
        raise ModelError(f"weights file not found: {str(w)!r}.")
    try:
        config = json.loads(a.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{str(a)!r} is not a JSON file ({exc}); pass the file written from model.to_json().") from exc
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise ModelError(
            f"{str(a)!r} is JSON but not a Keras model architecture (no 'class_name'/'config'); pass the file "
            "written from model.to_json()."
        )
    _check_classes(config, custom_objects, str(a))
    written_by = str(config.get("keras_version") or "")
    if "module" in config and not written_by.startswith(("1.", "2.")):  # Keras 3: its own reader understands it
        try:
            model = keras.models.model_from_json(json.dumps(config), custom_objects=custom_objects)
        except Exception as exc:
            raise ModelError(f"Keras could not rebuild the architecture in {str(a)!r}: {_cause(exc)}") from exc
    else:
        fixed, _ = fix_legacy_config(strip_modules(config))  # tf.keras >= 2.13 added Keras 3-like 'module' keys
        model = _rebuild(fixed, custom_objects, safe_mode, str(a), version=written_by or None)
    _load_weights(model, w, f"the architecture in {str(a)!r}")
    return model


def read_h5_info(path: Path) -> H5Info:
    """The model config and Keras version in an HDF5 file; :class:`ModelError` if it is no HDF5 file."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head != HDF5_SIGNATURE:
        raise ModelError(f"{str(path)!r} is not an HDF5 file, so not a Keras .h5 model{_what_else(path, head)}")
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ModelError(f"{str(path)!r} is an HDF5 file that h5py cannot open ({exc}); is it complete?") from exc
    with f:
        raw = f.attrs.get("model_config")
        version = _text(f.attrs.get("keras_version"))
        group = f["model_weights"] if "model_weights" in f else f
        names = group.attrs.get("layer_names")
        version = version or _text(group.attrs.get("keras_version"))
    config = None
    if raw is not None:
        try:
            config = json.loads(_text(raw) or "")
        except json.JSONDecodeError as exc:
            raise ModelError(f"the model config stored in {str(path)!r} is not valid JSON ({exc}).") from exc
    return H5Info(config, version, 0 if names is None else len(names))


def unknown_classes(config: dict[str, Any], custom_objects: dict[str, Any] | None = None) -> list[str]:
    """Layer class names in ``config`` that neither Keras 3 nor ``custom_objects`` knows, in order."""
    known = set(custom_objects or ())
    out: list[str] = []
    for layer in layer_configs(config):
        name = layer.get("class_name")
        if not isinstance(name, str) or name in known or name in out:
            continue
        short = name.rsplit(">", 1)[-1]  # registered names look like 'package>Class'
        if name in _MODEL_CLASSES or (name == short and isinstance(getattr(keras.layers, name, None), type)):
            continue
        out.append(name)
    return out


# --------------------------------------------------------------------------- internals


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _what_else(path: Path, head: bytes) -> str:
    if head.startswith(ZIP_SIGNATURE):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except zipfile.BadZipFile:
            names = []
        if "config.json" in names or "metadata.json" in names:
            return ": it is a Keras 3 '.keras' archive with the wrong suffix; rename it to .keras."
        if any(n.endswith("data.pkl") for n in names):
            return ": it is a PyTorch file written by torch.save; load it with the PyTorch model it belongs to."
        return ": it is a zip archive."
    if head.lstrip()[:1] in (b"{", b"["):
        return (
            ": it looks like JSON, e.g. a model.to_json() architecture; pass it with its weights "
            "(--model ARCH.json --weights WEIGHTS.h5)."
        )
    if head[:1] == b"\x80":
        return ": it looks like a Python pickle."
    return "."


def _load_h5(path: Path, custom_objects: dict[str, Any] | None, safe_mode: bool) -> keras.Model:
    info = read_h5_info(path)
    where = str(path)
    version = info.keras_version
    if info.config is None:
        stored = f" for {info.weight_layers} layer(s)" if info.weight_layers else ""
        raise ModelError(
            f"{where!r} holds only weights{stored} (written by save_weights, no model config), so the "
            "architecture is needed to use it: build the model in code and load the weights into it "
            "(--model package.module:factory --weights FILE; Python: model.load_weights(FILE)), or pass the "
            "architecture saved with to_json() (--model ARCH.json --weights FILE)."
        )
    if version and version.split(".")[0] == "1":
        raise ModelError(
            f"{where!r} was written by Keras {version}; Keras 3 reads files from Keras 2 on. Load it with Keras 2 "
            "(the tf-keras package) and save it again, or rebuild the model and load its weights."
        )
    _check_classes(info.config, custom_objects, where)
    fixed, changes = fix_legacy_config(info.config)
    if not changes:
        return _keras_load(path, custom_objects, safe_mode, version)
    model = _rebuild(fixed, custom_objects, safe_mode, where, version)
    _load_weights(model, path, f"the model config in {where!r}")
    return model


def _keras_load(path: Path, custom_objects: dict[str, Any] | None, safe_mode: bool, version: str | None) -> keras.Model:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Keras' notes on how layers were configured
            model = keras.models.load_model(path, custom_objects=custom_objects, compile=False, safe_mode=safe_mode)
    except Exception as exc:
        missing = re.search(r"Could not locate (?:class|function) '([^']+)'", str(exc))
        if missing:
            raise ModelError(_custom_message(missing.group(1), str(path))) from exc
        written = f" (written by Keras {version})" if version else ""
        raise ModelError(f"Keras could not load the model in {str(path)!r}{written}: {_cause(exc)}") from exc
    if not isinstance(model, keras.Model):
        raise ModelError(f"{str(path)!r} holds a {type(model).__name__}, not a keras.Model.")
    return model


def _rebuild(
    config: dict[str, Any], custom_objects: dict[str, Any] | None, safe_mode: bool, where: str, version: str | None
) -> keras.Model:
    try:  # Keras 3's reader of Keras 2 configs (what keras.models.load_model uses for .h5)
        from keras.src.legacy.saving import saving_options, saving_utils
        from keras.src.saving import serialization_lib
    except ImportError as exc:
        raise ModelError(
            f"Keras {keras.__version__} has no reader for Keras 2 model configs, needed for {where!r}; use "
            "Keras 3.0 to 3.15, or rebuild the model in code and load its weights."
        ) from exc
    written = f" (written by Keras {version})" if version else ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            with saving_options.keras_option_scope(use_legacy_config=True), serialization_lib.SafeModeScope(safe_mode):
                model = saving_utils.model_from_config(config, custom_objects=custom_objects)
    except Exception as exc:
        raise ModelError(f"Keras could not rebuild the model in {where!r}{written}: {_cause(exc)}") from exc
    if not isinstance(model, keras.Model):
        raise ModelError(f"{where!r} describes a {type(model).__name__}, not a keras.Model.")
    return model


def _load_weights(model: keras.Model, path: Path, what: str) -> None:
    """Keras' order-based reader: layer count, weight count per layer and every shape are checked."""
    import h5py

    with open(path, "rb") as fh:
        head = fh.read(8)
    if head != HDF5_SIGNATURE:
        raise ModelError(f"the weights file {str(path)!r} is not an HDF5 file{_what_else(path, head)}")
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
            if "layer_names" in group.attrs:  # Keras 2 layout (save_weights / model.save)
                from keras.src.legacy.saving import legacy_h5_format

                legacy_h5_format.load_weights_from_hdf5_group(group, model)
                return
        model.load_weights(str(path))  # Keras 3 '.weights.h5'
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"the weights in {str(path)!r} do not fit {what}: {_cause(exc)}") from exc


def _cause(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 400:
        text = text[:400] + " ..."
    return f"{type(exc).__name__}: {text}"


def _custom_message(name: str, where: str) -> str:
    short = name.rsplit(">", 1)[-1]
    if name in _KERAS2_ONLY:
        return (
            f"{where!r} holds {name} layers: {_KERAS2_ONLY[name]}, which Keras 3 cannot rebuild. Rebuild the "
            "model in code with Keras 3 layers and load the weights, or load it with Keras 2 (tf-keras)."
        )
    return (
        f"{where!r} uses the custom layer class {name!r}, which is not a Keras layer: pass the class, "
        f"load_model(path, custom_objects={{'{name}': {short}}}) (from the command line: a factory "
        "'package.module:factory' that loads the file that way)."
    )


def _check_classes(config: dict[str, Any], custom_objects: dict[str, Any] | None, where: str) -> None:
    unknown = unknown_classes(config, custom_objects)
    if unknown:
        msg = _custom_message(unknown[0], where)
        if len(unknown) > 1:
            msg += f" Other unknown classes: {', '.join(repr(u) for u in unknown[1:])}."
        raise ModelError(msg)
