"""The Keras twin of :class:`gradsight.demo.detector.TinyYolo`, on the same trained weights.

Layers are named after the PyTorch modules (``block1_conv``, ``block1_bn``,
``block1_act``, ... ``pool3``, ``head8``, ``head16``); outputs are ``[p8, p16]``,
channels-last (N, 8, 8, 20) and (N, 4, 4, 20), with the channels in PyTorch's order, so
:data:`gradsight.demo.detector.CONFIG` describes both (``layout=None`` follows the
framework). Blocks 1-3 use ``LeakyReLU`` layers, blocks 4-7 a layer that calls
``keras.ops.leaky_relu`` (PyTorch's module and functional spellings). Inputs:
``preprocess(images, layout="NHWC")``.

The weights are read from the committed PyTorch file ``weights/tiny_yolo.pt`` without
importing torch (a ``torch.save`` file is a zip of a pickle and raw little-endian
arrays), and converted: conv OIHW -> HWIO, BatchNorm running statistics as moving
statistics with ``epsilon=1e-5``.

Examples
--------
>>> from gradsight.demo.keras_detector import load_keras_detector
>>> from gradsight.demo.shapes import preprocess
>>> from gradsight.demo.shapes_detect import generate
>>> model = load_keras_detector()
>>> p8, p16 = model(preprocess(generate(2, seed=3).images, layout="NHWC"))
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ..detection import YoloConfig
from .shapes import CLASSES

__all__ = ["build_keras_detector", "convert_state_dict", "load_keras_detector", "read_torch_state_dict"]

INPUT_SIZE = 64
SLOPE = 0.1
_BLOCKS = {  # name: (filters, kernel, functional LeakyReLU)
    "block1": (16, 3, False), "block2": (32, 3, False), "block3": (64, 3, False), "block4": (128, 3, True),
    "block5": (128, 3, True), "block6": (32, 1, True), "block7": (64, 3, True),
}


def _config() -> YoloConfig:
    # The same head description as gradsight.demo.detector.CONFIG, without importing torch.
    return YoloConfig(num_classes=len(CLASSES), strides=(8, 16),
                      anchors=(((12.0, 12.0), (16.0, 16.0)), ((20.0, 20.0), (25.0, 25.0))))


def _weights_path() -> Path:
    return Path(__file__).resolve().parent / "weights" / "tiny_yolo.pt"


@keras.saving.register_keras_serializable(package="gradsight")
class LeakyOp(keras.layers.Layer):
    """A layer that calls ``keras.ops.leaky_relu`` (the twin of ``F.leaky_relu``)."""

    def __init__(self, negative_slope: float = SLOPE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.negative_slope = negative_slope

    def call(self, x: Any) -> Any:
        return keras.ops.leaky_relu(x, negative_slope=self.negative_slope)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "negative_slope": self.negative_slope}


def build_keras_detector() -> keras.Model:
    """The TinyYolo architecture as a Functional Keras model (random weights); input (N, 64, 64, 3)."""
    L = keras.layers

    def block(x: Any, name: str) -> Any:
        filters, kernel, functional = _BLOCKS[name]
        x = L.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = L.BatchNormalization(epsilon=1e-5, momentum=0.9, name=f"{name}_bn")(x)
        act = LeakyOp(SLOPE, name=f"{name}_act") if functional else L.LeakyReLU(negative_slope=SLOPE, name=f"{name}_act")
        return act(x)

    cfg = _config()
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="input")
    x = L.MaxPooling2D(2, name="pool1")(block(inputs, "block1"))
    x = L.MaxPooling2D(2, name="pool2")(block(x, "block2"))
    route = L.MaxPooling2D(2, name="pool3")(block(x, "block3"))
    deep = block(L.MaxPooling2D(2, name="pool4")(block(route, "block4")), "block5")
    p16 = L.Conv2D(cfg.channels(1), 1, name="head16")(deep)
    up = L.UpSampling2D(2, interpolation="nearest", name="up")(block(deep, "block6"))
    p8 = L.Conv2D(cfg.channels(0), 1, name="head8")(block(L.Concatenate(name="concat")([up, route]), "block7"))
    return keras.Model(inputs, [p8, p16], name="tiny_yolo")


class _StateUnpickler(pickle.Unpickler):
    """Reads a ``torch.save``-d state_dict into numpy arrays (float32 / int64 storages)."""

    _DTYPES = {"FloatStorage": np.float32, "LongStorage": np.int64, "DoubleStorage": np.float64,
               "HalfStorage": np.float16, "IntStorage": np.int32}

    def __init__(self, file: Any, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(file)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild
        if module == "torch" and name in self._DTYPES:
            return self._DTYPES[name]
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a state_dict file")

    def persistent_load(self, pid: Any) -> np.ndarray:
        _, dtype, key, _location, _numel = pid
        return np.frombuffer(self.archive.read(f"{self.prefix}/data/{key}"), dtype=np.dtype(dtype).newbyteorder("<"))


def _rebuild(storage: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any) -> np.ndarray:
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride))
    return np.array(view)


def read_torch_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A ``torch.save(model.state_dict())`` file as ``{name: numpy array}``, without torch."""
    with zipfile.ZipFile(path) as archive:
        pkl = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        with archive.open(pkl) as f:
            return dict(_StateUnpickler(f, archive, pkl.rsplit("/", 1)[0]).load())


def convert_state_dict(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """TinyYolo's ``state_dict`` -> ``{keras layer name: weights in Keras order}``."""
    out: dict[str, list[np.ndarray]] = {}
    for name in _BLOCKS:
        out[f"{name}_conv"] = [state[f"{name}.conv.weight"].transpose(2, 3, 1, 0)]  # OIHW -> HWIO
        out[f"{name}_bn"] = [state[f"{name}.bn.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
    for head in ("head8", "head16"):
        out[head] = [state[f"{head}.weight"].transpose(2, 3, 1, 0), state[f"{head}.bias"]]
    return {k: [np.ascontiguousarray(w, np.float32) for w in v] for k, v in out.items()}


def load_keras_detector(path: str | Path | None = None) -> keras.Model:
    """The Keras twin with the bundled (or given) PyTorch weights converted.

    The model carries ``detection_config``, ``input_size``, ``class_names`` and
    ``cam_layer`` (``"pool3"``) for tools such as the CLI.
    """
    path = Path(path) if path is not None else _weights_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"demo detector weights not found at {path}; retrain them with `python scripts/train_detector.py`."
        )
    model = build_keras_detector()
    for name, weights in convert_state_dict(read_torch_state_dict(path)).items():
        model.get_layer(name).set_weights(weights)
    model.detection_config = _config()
    model.input_size = INPUT_SIZE
    model.class_names = CLASSES
    model.cam_layer = "pool3"
    return model
