"""The work behind the HTTP API: one loaded model, its lock, the caches, and the pictures.

Everything here calls the public api (:func:`gradsight.explain`, :func:`gradsight.predict`,
:data:`gradsight.METHODS`, :mod:`gradsight.render`) and is tested without a server.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import warnings
from typing import Any

import numpy as np

from ..errors import InputError, ModelError, TargetError, UnknownOptionError
from ._cache import LRU
from ._images import png_bytes

__all__ = ["Viewer", "layer_table", "softmax"]

TOP = 5
DEFAULT_SIZE = 224
MAX_SIDE = 2048
"""Pictures (heat map, overlay) are at the image's own size up to this many pixels on the longest side."""


def softmax(logits: np.ndarray) -> np.ndarray:
    """float64 softmax over the last axis."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def layer_table(model: Any, layout: str, size: int) -> tuple[list[dict[str, Any]], int | None]:
    """Every layer call of ``model`` with its output shape, and the index of the automatic layer:
    :func:`gradsight.inspect.layer_calls` (as ``gradsight layers``) on a blank (1, size, size) image."""
    from ..inspect import layer_calls

    shape = (1, 3, size, size) if layout == "NCHW" else (1, size, size, 3)
    calls, auto = layer_calls(model, np.zeros(shape, np.float32))
    table = [{"name": c.name, "type": c.kind, "shape": None if c.shape is None else list(c.shape), "spatial": c.spatial}
             for c in calls]
    return table, auto


def _fit(pixels: np.ndarray, side: int) -> np.ndarray:
    """``pixels`` scaled down (bilinear) so that the longest side is at most ``side``; unchanged if it is."""
    from PIL import Image

    h, w = pixels.shape[:2]
    if max(h, w) <= side:
        return pixels
    k = side / max(h, w)
    size = (max(1, round(w * k)), max(1, round(h * k)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))


def _b64png(pixels: Any) -> str:
    return base64.b64encode(png_bytes(pixels)).decode("ascii")


def _check_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """Options as the method takes them: known names, JSON scalars of the default's type."""
    from ..methods import METHODS

    defaults = METHODS[method].options
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key in ("layer", "output"):
            raise UnknownOptionError(f"give {key!r} as its own field of the request, not inside 'options'.")
        if key not in defaults:
            METHODS[method].check_options({key: value})  # the library's message, with close matches
        default = defaults[key]
        ok = value is None or isinstance(value, (str, int, float, bool))
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int) and default is not None:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif isinstance(default, str):
            ok = isinstance(value, str)
        if not ok:
            raise InputError(
                f"option {key!r} of {method} must be a {type(default).__name__} like its default {default!r}; "
                f"got {value!r}."
            )
        out[key] = value
    return out


class Viewer:
    """A loaded model ready to explain single images.

    Parameters
    ----------
    model, info:
        What :func:`gradsight.models.load_model` returned.
    cache_size:
        Explanations kept (per image, method, layer, class and options).
    image_store, upload_bytes:
        Uploaded images kept (at most this many, and this many bytes of pixels), to be explained
        again by reference.

    One lock per model: the model runs one request at a time (gradsight's sessions change
    module state for the duration of a call), while decoding, caching and drawing run in
    parallel.
    """

    def __init__(
        self, model: Any, info: Any, *, cache_size: int = 256, image_store: int = 64, upload_bytes: int = 512 * 2**20
    ) -> None:
        from ..methods import METHODS

        self.model = model
        self.info = info
        self.size = int(info.input_size or DEFAULT_SIZE)
        self.lock = threading.Lock()
        self.explanations: LRU[tuple[Any, ...], tuple[Any, list[str], float]] = LRU(cache_size)
        self.predictions: LRU[str, np.ndarray] = LRU(cache_size)
        # uploads may be up to 40 MP (120 MB decoded): bounded in bytes too
        self.uploads: LRU[str, np.ndarray] = LRU(image_store, budget=upload_bytes, weigh=lambda a: int(a.nbytes))
        self.calls = 0  # model computations (cache misses), for tests and /api/health
        with self.lock:
            self.layers, self.auto_layer = layer_table(model, info.layout, self.size)
            probe = self._predict_locked(np.zeros((self.size, self.size, 3), np.uint8))
        if probe.ndim != 1:
            raise ModelError(
                f"gradsight serve explains image classifiers (one score per class); this model's output for one "
                f"image has shape {tuple(probe.shape)}. Use 'gradsight explain' for detectors."
            )
        self.num_classes = int(probe.shape[0])
        names = info.class_names
        self.class_names = [
            names[k] if names is not None and k < len(names) else str(k) for k in range(self.num_classes)
        ]
        self.methods = list(METHODS)

    # ------------------------------------------------------------------ description

    def describe(self) -> dict[str, Any]:
        """What ``GET /api/model`` returns."""
        from ..methods import METHODS

        return {
            "framework": self.info.framework,
            "description": self.info.description,
            "layout": self.info.layout,
            "input_size": [self.size, self.size],
            "preprocessing": self.info.preprocessing,
            "classes": self.class_names,
            "methods": [
                {
                    "name": s.name,
                    "uses_layer": s.uses_layer,
                    "options": {k: v for k, v in s.options.items() if k not in ("layer", "output")
                                and isinstance(v, (int, float, str, bool, type(None)))},
                    "reference": s.reference,
                }
                for s in METHODS.values()
            ],
            "layers": self.layers,
            "auto_layer": None if self.auto_layer is None else self.layers[self.auto_layer]["name"],
        }

    # ------------------------------------------------------------------ model calls

    def batch(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) -> the model's (1, ...) float32 batch (bilinear resize, the model's preprocessing)."""
        from PIL import Image

        from ..models import preprocess

        small = np.asarray(Image.fromarray(pixels).resize((self.size, self.size), Image.Resampling.BILINEAR))
        return preprocess(small[None], self.info.preprocessing, self.info.layout)

    def _predict_locked(self, pixels: np.ndarray) -> np.ndarray:
        from .. import predict

        return predict(self.model, self.batch(pixels))[0]

    def logits(self, pixels: np.ndarray, key: str) -> np.ndarray:
        """The model's output for one image (cached by ``key``, the image's hash)."""
        hit = self.predictions.get(key)
        if hit is not None:
            return hit
        with self.lock:
            out = self._predict_locked(pixels)
        self.predictions.put(key, out)
        return out

    def target_class(self, target: Any, logits: np.ndarray) -> int:
        """None / "top1" / "auto" -> the top-1 class; an int (or its text) -> that class, range-checked."""
        if target is None or (isinstance(target, str) and target.strip().lower() in ("", "top1", "top-1", "auto")):
            return int(np.argmax(logits))
        if isinstance(target, bool):
            raise TargetError(f"target must be 'top1' or a class index; got {target!r}.")
        try:
            k = int(target)
        except (TypeError, ValueError):
            raise TargetError(f"target must be 'top1' or a class index (an int); got {target!r}.") from None
        if isinstance(target, float) and k != target:
            raise TargetError(f"target must be an integer class index; got {target!r}.")
        if not 0 <= k < self.num_classes:
            raise TargetError(
                f"target class {k} is out of range: the model has {self.num_classes} classes (0..{self.num_classes - 1})."
            )
        return k

    def explanation(
        self, pixels: np.ndarray, key: str, method: str, cls: int, layer: str | None, options: dict[str, Any]
    ) -> tuple[Any, list[str], float, bool]:
        """``(Explanation, warnings, seconds, cached)`` for one image, computed once per cache key."""
        from .. import explain

        ck = (key, method, layer, cls, json.dumps(options, sort_keys=True))
        hit = self.explanations.get(ck)
        if hit is not None:
            return (*hit, True)
        with self.lock:
            hit = self.explanations.get(ck)  # another request may have computed it meanwhile
            if hit is not None:
                return (*hit, True)
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                exp = explain(self.model, self.batch(pixels), method=method, target=cls, layer=layer, **options)
            seconds = time.perf_counter() - t0
            self.calls += 1
        said = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
        self.explanations.put(ck, (exp, said, seconds))
        return exp, said, seconds, False

    # ------------------------------------------------------------------ one request

    def explain(
        self,
        pixels: np.ndarray,
        key: str,
        method: str = "gradcam",
        target: Any = None,
        layer: str | None = None,
        options: dict[str, Any] | None = None,
        cmap: str = "jet",
        alpha: float = 0.5,
        attributions: bool = False,
    ) -> dict[str, Any]:
        """What ``POST /api/explain`` returns for the image ``pixels`` (uint8 (H, W, 3)) hashed as ``key``."""
        from .. import render
        from ..methods import get_method

        t0 = time.perf_counter()
        spec = get_method(method)
        options = _check_options(spec.name, dict(options or {}))
        if spec.name == "smoothgrad":
            options.setdefault("seed", 0)  # the same request gives the same picture (and may be cached)
        if not 0.0 <= float(alpha) <= 1.0:
            raise InputError(f"alpha must be in [0, 1]; got {alpha}.")
        render.colorize(np.zeros((1, 1)), cmap)  # an unknown colormap fails before any work
        layer = None if layer in (None, "", "auto") or not spec.uses_layer else str(layer)

        logits = self.logits(pixels, key)
        probs = softmax(logits)
        cls = self.target_class(target, logits)
        exp, said, seconds, cached = self.explanation(pixels, key, spec.name, cls, layer, options)

        h0, w0 = pixels.shape[:2]
        shown = _fit(pixels, MAX_SIDE)  # pictures of very large uploads are drawn smaller
        h, w = shown.shape[:2]
        top = np.argsort(-probs, kind="stable")[: min(TOP, self.num_classes)]
        result: dict[str, Any] = {
            "method": spec.name,
            "layer": exp.layer,
            "options": {k: v for k, v in options.items()},
            "image": {"width": int(w0), "height": int(h0), "key": key},
            "picture": {"width": int(w), "height": int(h)},
            "predictions": [
                {"class": int(k), "name": self.class_names[k], "prob": float(probs[k]), "score": float(logits[k])}
                for k in top
            ],
            "explained": {
                "class": cls,
                "name": self.class_names[cls],
                "prob": float(probs[cls]),
                "score": float(exp.scores[0]),
            },
            **_pictures(exp, shown, cmap, float(alpha)),
            "cmap": cmap,
            "alpha": float(alpha),
            "warnings": said,
            "cached": cached,
            "compute_ms": round(seconds * 1000.0, 2),
        }
        if attributions:
            a = np.asarray(exp.attributions[0], dtype=np.float32)
            result["attributions"] = {
                "shape": list(a.shape),
                "layout": exp.layout if a.ndim == 3 else "hw",
                "values": a.tolist(),
            }
        result["elapsed_ms"] = round((time.perf_counter() - t0) * 1000.0, 2)
        return result


def _pictures(exp: Any, shown: np.ndarray, cmap: str, alpha: float) -> dict[str, Any]:
    """The PNGs of one explanation at the size of ``shown`` (uint8 (H, W, 3)), drawn as ``gradsight explain`` draws.

    ``heatmap_png``: the heat map as drawn (8-bit grey); ``overlay_png``: the picture over the image;
    ``layer_png``: RGBA for the page to blend over the image with its own opacity; ``blend`` says how
    ("heat": the alpha channel is the heat map and the weight min(1, 2 * opacity), as for sparse maps).
    """
    from PIL import Image

    from .. import render
    from ..demo.runner import GRADIENT_IMAGE_METHODS, SPARSE_HEAT_METHODS, gradient_image, picture

    h, w = shown.shape[:2]
    sparse = exp.method in SPARSE_HEAT_METHODS
    heat = render.normalize(exp.heatmaps[0], clip_percentile=99) if sparse else exp.heatmaps[0]
    heat = np.clip(render.resize(heat, (h, w)), 0.0, 1.0)
    gray = np.floor(heat * 255.0 + 0.5).astype(np.uint8)
    opaque = np.full((h, w), 255, np.uint8)
    if exp.method in GRADIENT_IMAGE_METHODS and exp.attributions.ndim == 4:
        tile = Image.fromarray(gradient_image(exp.attributions[0], exp.layout), "RGB")
        rgba = np.dstack([np.asarray(tile.resize((w, h), Image.Resampling.BICUBIC) if tile.size != (w, h) else tile),
                          opaque])
    else:
        rgba = np.dstack([render.colorize(heat, cmap), gray if sparse else opaque])
    return {
        "heatmap_png": _b64png(gray),
        "overlay_png": _b64png(picture(exp, 0, shown, cmap=cmap, alpha=alpha)),
        "layer_png": _b64png(rgba),
        "blend": "heat" if sparse else "uniform",
    }
