"""The per-batch function both engines run: :class:`BatchExplainer`.

Ray Data's shape: the constructor loads the model once (per actor on Ray, once per job
locally), and each call turns a batch of decoded images into a batch of results. The
local engine calls the very same object, so the two engines cannot drift apart.

Results depend on each image alone, never on the batch it arrived in: every method is
per-sample except SmoothGrad's noise, which is drawn per image from ``(seed, image_id)``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import GradsightError, InputError

__all__ = ["JobSpec", "BatchExplainer", "TARGETS", "result_columns"]

TARGETS = ("top1", "label", "top5")


@dataclass(frozen=True)
class JobSpec:
    """Everything that decides a job's results (what ``run.json`` records and a rerun must match).

    Plain data (JSON-able), so it travels to Ray actors as it is.
    """

    model: str
    weights: str | None
    framework: str | None
    methods: tuple[str, ...]
    target: str
    layer: str | None
    data: str
    size: int | None
    preprocess: str | None
    dtype: str
    seed: int
    png: bool
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    trust_pickle: bool = False

    def identity(self) -> dict[str, Any]:
        """The fields a rerun against the same folder must repeat (trust_pickle is a permission, not a result)."""
        d = asdict(self)
        d.pop("trust_pickle")
        d["methods"] = list(self.methods)
        return d


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def probabilities(outputs: np.ndarray) -> np.ndarray:
    """Softmax of (N, C) outputs; outputs that already are probabilities (rows >= 0 summing to 1) stay."""
    out = np.asarray(outputs, np.float32)
    if out.size and (out >= 0).all() and np.allclose(out.sum(axis=1), 1.0, atol=1e-4):
        return out
    return _softmax(out)


def result_columns(methods: tuple[str, ...] | list[str]) -> list[str]:
    """The columns of a result batch, besides image_id, path, label, error."""
    cols = ["predicted", "top5", "top5_prob"]
    for m in methods:
        cols += [f"{m}__target", f"{m}__score", f"{m}__prob", f"{m}__attr", f"{m}__heatmap", f"{m}__elapsed"]
    return cols


class BatchExplainer:
    """Loads the model once; ``explainer(batch)`` explains a batch of decoded images.

    Parameters
    ----------
    spec:
        The job (a :class:`JobSpec` or its dict).
    batch_size:
        Images per model call; a larger batch is cut into chunks of this size.

    A call takes ``{"image_id", "path", "label", "image" uint8 (n, H, W, 3), "error"}`` and
    returns those columns (``error`` filled in for rows that failed) plus, per image,
    ``predicted``, ``top5``, ``top5_prob`` and per method ``<m>__target`` (n, R),
    ``<m>__score`` (n, R), ``<m>__prob`` (n, R), ``<m>__attr`` (n, ...) in the job's dtype,
    ``<m>__heatmap`` (n, [R,] H, W) float16, ``<m>__elapsed`` (n,) seconds; R is 5 (or the
    number of classes, if fewer) for ``top5``, else 1. Failed rows hold zeros.
    """

    def __init__(self, spec: JobSpec | dict[str, Any], batch_size: int = 32) -> None:
        from ..methods import get_method
        from ..models import load_model

        self.spec = spec if isinstance(spec, JobSpec) else JobSpec(**{**spec, "methods": tuple(spec["methods"])})
        self.methods = tuple(get_method(m).name for m in self.spec.methods)
        self.batch_size = max(1, int(batch_size))
        self.model, self.info = load_model(
            self.spec.model, weights=self.spec.weights, trust_pickle=self.spec.trust_pickle,
            framework=self.spec.framework,
        )
        self._to_device()
        self.size = int(self.spec.size or self.info.input_size or 224)
        self.prep = self.spec.preprocess or self.info.preprocessing
        self.dtype = np.dtype(self.spec.dtype)
        self._classes: int | None = None
        self.attr_shapes = self._preflight()

    def _preflight(self) -> dict[str, tuple[int, ...]]:
        """Explain one blank image with every method: a wrong layer or option fails now, before any work,
        and each method's attribution shape is known (a batch where every image failed still has it)."""
        batch = {
            "image_id": np.zeros(1, np.int64), "path": np.array(["-"], dtype=object), "label": np.zeros(1, np.int64),
            "image": np.zeros((1, self.size, self.size, 3), np.uint8), "error": np.array([""], dtype=object),
        }
        out = self._empty(1, {m: (0,) for m in self.methods})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a blank image's zero gradients are expected here
            self._explain_rows(batch, [0], out)
        return {m: tuple(out[f"{m}__attr"].shape[1:]) for m in self.methods}

    def _to_device(self) -> None:
        # On a GPU worker (Ray gives the actor one with num_gpus=1) a PyTorch model moves there;
        # gs.explain puts each batch on the model's device.
        if self.info.framework == "torch":
            import torch

            if torch.cuda.is_available():
                self.model.to("cuda")

    # ------------------------------------------------------------------ one call per batch

    def num_classes(self) -> int:
        """Classes of the model's output (one forward pass on a blank image the first time)."""
        if self._classes is None:
            import gradsight as gs

            shape = (1, 3, self.size, self.size) if self.info.layout == "NCHW" else (1, self.size, self.size, 3)
            out = gs.predict(self.model, np.zeros(shape, np.float32))
            if out.ndim != 2:
                raise InputError(
                    f"data-set jobs explain classifiers with (N, classes) outputs; {self.spec.model!r} gives {out.shape}."
                )
            self._classes = int(out.shape[1])
        return self._classes

    @property
    def ranks(self) -> int:
        return min(5, self.num_classes()) if self.spec.target == "top5" else 1

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        n = len(batch["image_id"])
        keep = ("image_id", "path", "label", "part") + (("image",) if self.spec.png else ())
        out: dict[str, Any] = {k: batch[k] for k in keep if k in batch}
        errors = [str(e) for e in batch["error"]]
        if self.spec.target == "label":
            labels = np.asarray(batch["label"], np.int64)
            for i in range(n):
                if not errors[i] and labels[i] < 0:
                    errors[i] = "no label for this image; --target label needs one"
        out.update(self._empty(n, self.attr_shapes))
        todo = [i for i in range(n) if not errors[i]]
        for c0 in range(0, len(todo), self.batch_size):
            rows = todo[c0:c0 + self.batch_size]
            try:
                self._explain_rows(batch, rows, out)
            except GradsightError:
                raise  # a wrong layer or option: the same for every batch, so the job stops
            except Exception:
                for i in rows:  # find the image that fails; the others go on
                    try:
                        self._explain_rows(batch, [i], out)
                    except GradsightError:
                        raise
                    except Exception as exc:
                        errors[i] = f"explaining failed: {type(exc).__name__}: {exc}"
        out["error"] = np.array(errors, dtype=object)
        return out

    def _empty(self, n: int, attr_shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
        r, hw = self.ranks, (self.size, self.size)
        k = min(5, self.num_classes())
        cols: dict[str, Any] = {
            "predicted": np.full(n, -1, np.int64),
            "top5": np.full((n, k), -1, np.int64),
            "top5_prob": np.zeros((n, k), np.float32),
        }
        for m in self.methods:
            cols[f"{m}__target"] = np.full((n, r), -1, np.int64)
            cols[f"{m}__score"] = np.zeros((n, r), np.float32)
            cols[f"{m}__prob"] = np.zeros((n, r), np.float32)
            cols[f"{m}__attr"] = np.zeros((n, *attr_shapes[m]), self.dtype)
            cols[f"{m}__heatmap"] = np.zeros((n, r, *hw) if self.spec.target == "top5" else (n, *hw), np.float16)
            cols[f"{m}__elapsed"] = np.zeros(n, np.float32)
        return cols

    def _explain_rows(self, batch: dict[str, Any], rows: list[int], out: dict[str, Any]) -> None:
        import gradsight as gs

        from ..models import preprocess

        n = len(batch["image_id"])
        idx = np.asarray(rows)
        x = preprocess(np.asarray(batch["image"])[idx], self.prep, self.info.layout)
        target: Any = None
        if self.spec.target == "label":
            target = np.asarray(batch["label"], np.int64)[idx]
        elif self.spec.target == "top5":
            target = gs.targets.TopK(self.ranks)
        results, elapsed = {}, {}
        for m in self.methods:
            t0 = time.perf_counter()
            opts = dict(self.spec.options.get(m, {}))
            if m in ("gradcam", "guided_gradcam") and self.spec.layer:
                opts["layer"] = self.spec.layer
            if m == "smoothgrad":
                results[m] = self._smoothgrad(x, target, np.asarray(batch["image_id"])[idx], opts)
            else:
                results[m] = gs.explain(self.model, x, method=m, target=target, **opts)
            elapsed[m] = (time.perf_counter() - t0) / len(rows)
        first = results[self.methods[0]]
        prob = probabilities(np.asarray(first.outputs))
        k = out["top5"].shape[1]
        top = np.argsort(-prob, axis=1, kind="stable")[:, :k]
        out["predicted"][idx] = top[:, 0]
        out["top5"][idx] = top
        out["top5_prob"][idx] = np.take_along_axis(prob, top, axis=1)
        for m, exp in results.items():
            tg = np.asarray(exp.targets, np.int64).reshape(len(rows), -1)
            out[f"{m}__target"][idx] = tg
            out[f"{m}__score"][idx] = np.asarray(exp.scores, np.float32).reshape(len(rows), -1)
            out[f"{m}__prob"][idx] = np.take_along_axis(prob, tg, axis=1)
            if out[f"{m}__attr"].shape[1:] != exp.attributions.shape[1:]:  # the preflight's placeholder
                out[f"{m}__attr"] = np.zeros((n, *exp.attributions.shape[1:]), self.dtype)
            out[f"{m}__attr"][idx] = exp.attributions.astype(self.dtype)
            out[f"{m}__heatmap"][idx] = exp.heatmaps.astype(np.float16)
            out[f"{m}__elapsed"][idx] = elapsed[m]

    def _smoothgrad(self, x: np.ndarray, target: Any, image_ids: np.ndarray, opts: dict[str, Any]) -> Any:
        """SmoothGrad one image at a time, its noise seeded by (seed, image_id): batch-independent."""
        import gradsight as gs

        parts = []
        for j, image_id in enumerate(image_ids):
            seed = int(np.random.SeedSequence([self.spec.seed, int(image_id)]).generate_state(1)[0])
            tj = target[j:j + 1] if isinstance(target, np.ndarray) else target
            parts.append(gs.explain(self.model, x[j:j + 1], method="smoothgrad", target=tj, seed=seed, **opts))
        exp = parts[0]
        for name in ("attributions", "heatmaps", "targets", "scores", "outputs"):
            setattr(exp, name, np.concatenate([getattr(p, name) for p in parts]))
        return exp
