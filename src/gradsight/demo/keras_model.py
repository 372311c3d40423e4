"""The Keras twin of :class:`gradsight.demo.model.ShapesNet`, on the same trained weights.

Layer names match the PyTorch module names (``conv1`` ... ``relu4``, ``classifier``), and,
as in PyTorch, one ``ReLU`` layer named ``relu`` is called three times. Inputs are
channels-last: ``preprocess(images, layout="NHWC")``.

The weights are the PyTorch ``state_dict`` with layouts converted (conv OIHW -> HWIO,
linear transposed, BatchNorm running statistics as moving statistics with
``epsilon=1e-5``). They are read from ``weights/shapes_net_keras.npz`` (no torch needed),
which :func:`save_converted_weights` writes from ``weights/shapes_net.pt``; when the
``.npz`` is missing or was made from another ``.pt``, the ``.pt`` is converted on the fly
(that needs torch).

Examples
--------
>>> from gradsight.demo.keras_model import load_keras_demo_model
>>> from gradsight.demo.shapes import generate, preprocess
>>> model = load_keras_demo_model()
>>> logits = model(preprocess(generate(4, seed=1).images, layout="NHWC"))  # (4, 5)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from .shapes import CLASSES, IMAGE_SIZE

__all__ = ["build_keras_shapes_net", "convert_state_dict", "save_converted_weights", "load_keras_demo_model",
           "load_keras_loc_model", "NPZ_PATH", "LOC_NPZ_PATH"]

_WEIGHTS = Path(__file__).resolve().parent / "weights"
PT_PATH: Path = _WEIGHTS / "shapes_net.pt"
NPZ_PATH: Path = _WEIGHTS / "shapes_net_keras.npz"
"""Converted weights: ``"<layer>/<weight>"`` arrays plus the ``source_sha256`` of the ``.pt``."""
LOC_PT_PATH: Path = _WEIGHTS / "shapes_net_loc.pt"
LOC_NPZ_PATH: Path = _WEIGHTS / "shapes_net_loc_keras.npz"
"""``demo-loc``'s weights converted the same way (same architecture)."""
TWINS: dict[Path, Path] = {PT_PATH: NPZ_PATH, LOC_PT_PATH: LOC_NPZ_PATH}
"""Each bundled PyTorch weights file with a Keras twin -> its converted ``.npz``."""

_CONVS = ("conv1", "conv2", "conv3", "conv4")


def build_keras_shapes_net(num_classes: int = len(CLASSES)) -> keras.Model:
    """The ShapesNet architecture as a Functional Keras model (random weights).

    Input ``(N, 64, 64, 3)`` float32, output ``(N, num_classes)`` logits.
    """
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="input")
    relu = keras.layers.ReLU(name="relu")  # shared, like ShapesNet.relu
    x = inputs
    for i, filters in enumerate((16, 32, 64, 64), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=f"bn{i}")(x)
        if i < 4:
            x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(relu(x))
        else:
            x = keras.layers.ReLU(name="relu4")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name="shapes_net")


def convert_state_dict(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PyTorch ShapesNet ``state_dict`` (numpy values) -> ``{"<layer>/<weight>": array}`` for Keras."""
    out: dict[str, np.ndarray] = {}
    for i, conv in enumerate(_CONVS, start=1):
        out[f"{conv}/kernel"] = np.transpose(state[f"{conv}.weight"], (2, 3, 1, 0))  # OIHW -> HWIO
        bn = f"bn{i}"
        out[f"{bn}/gamma"] = state[f"{bn}.weight"]
        out[f"{bn}/beta"] = state[f"{bn}.bias"]
        out[f"{bn}/moving_mean"] = state[f"{bn}.running_mean"]
        out[f"{bn}/moving_variance"] = state[f"{bn}.running_var"]
    out["classifier/kernel"] = np.transpose(state["classifier.weight"])
    out["classifier/bias"] = state["classifier.bias"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _from_pt(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as exc:
        raise FileNotFoundError(
            f"the converted Keras demo weights {NPZ_PATH} are missing or stale, and converting {path} needs "
            f"torch ({exc}). Reinstall gradsight, or install torch."
        ) from exc
    state = torch.load(path, weights_only=True, map_location="cpu")
    return convert_state_dict({k: v.numpy() for k, v in state.items()})


def save_converted_weights(pt_path: Path = PT_PATH, npz_path: Path = NPZ_PATH) -> Path:
    """Convert the PyTorch demo weights into ``npz_path`` (needs torch). Returns the path."""
    arrays = _from_pt(pt_path)
    payload: dict[str, Any] = {"source_sha256": np.array(_sha256(pt_path)), **arrays}
    np.savez(npz_path, **payload)
    return npz_path


def _load_arrays(pt_path: Path = PT_PATH, npz_path: Path = NPZ_PATH, script: str = "scripts/train_demo.py"
                 ) -> dict[str, np.ndarray]:
    pt_hash = _sha256(pt_path) if pt_path.is_file() else None
    if npz_path.is_file():
        with np.load(npz_path) as z:
            if pt_hash is None or str(z["source_sha256"]) == pt_hash:
                return {k: z[k] for k in z.files if k != "source_sha256"}
    if pt_hash is None:
        raise FileNotFoundError(
            f"demo weights not found ({pt_path} / {npz_path}). Reinstall gradsight, or retrain them with "
            f"`python {script}` from the repository root."
        )
    return _from_pt(pt_path)


def load_keras_demo_model() -> keras.Model:
    """:func:`build_keras_shapes_net` with the bundled trained weights.

    Returns
    -------
    keras.Model
        Gives the same logits as :func:`gradsight.demo.model.load_demo_model` (to ~1e-5)
        on the same images, channels-last.

    Raises
    ------
    FileNotFoundError
        If neither weights file can be read.
    """
    return _with_arrays(build_keras_shapes_net(), _load_arrays())


def load_keras_loc_model() -> keras.Model:
    """The Keras twin of ``demo-loc`` (:func:`gradsight.demo.model.load_loc_model`): same architecture
    as the demo twin, its weights from ``weights/shapes_net_loc_keras.npz``."""
    return _with_arrays(build_keras_shapes_net(), _load_arrays(LOC_PT_PATH, LOC_NPZ_PATH, "scripts/train_demo_loc.py"))


def _with_arrays(model: keras.Model, arrays: Mapping[str, np.ndarray]) -> keras.Model:
    for conv in _CONVS:
        model.get_layer(conv).set_weights([arrays[f"{conv}/kernel"]])
    for i in range(1, 5):
        bn = f"bn{i}"
        names = ("gamma", "beta", "moving_mean", "moving_variance")
        model.get_layer(bn).set_weights([arrays[f"{bn}/{n}"] for n in names])
    model.get_layer("classifier").set_weights([arrays["classifier/kernel"], arrays["classifier/bias"]])
    return model
