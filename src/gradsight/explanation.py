"""The result of an explanation: arrays, and the pictures made from them."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Explanation"]


@dataclass
class Explanation:
    """Attributions for a batch, with helpers to look at them.

    Attributes
    ----------
    method:
        The method's name (``"saliency"``, ``"gradcam"``, ...).
    attributions:
        float32. Gradient methods and guided Grad-CAM: the input's shape and layout,
        signed, unnormalised. Grad-CAM: the ReLU'd map at the layer's resolution,
        (N, h, w), unnormalised ((N, l) for 1-D signals, (N, d, h, w) for volumes). Several
        inputs (``x`` a tuple, list or dict): gradient methods give one array per input in the
        same structure; CAM methods one map.
    heatmaps:
        float32 in [0, 1] at the input resolution: (N, H, W) for images, (N, L) for 1-D
        signals, (N, D, H, W) for volumes; None for tables (N, F) (draw those with
        :meth:`feature_bars`). Several inputs, gradient methods: one per input in ``x``'s
        structure, None for the inputs that are not images; pictures show the first
        image-shaped input's maps.
    targets:
        int64 (N,) explained classes, or None when the target is not a class.
    scores:
        float32 (N,) the explained scores.
    outputs:
        float32 model outputs for the batch (the selected output; a list of arrays when
        several were selected, e.g. the scales of a detector).
    layer:
        The layer Grad-CAM used (resolved name), or None.
    layout:
        ``"channels_first"`` or ``"channels_last"``: the input layout.
    options:
        The options the method ran with.

    With k targets per sample (``target=gs.targets.TopK(k)``) every per-target array has
    a k axis right after the batch axis: ``attributions`` (N, k, ...), ``heatmaps``
    (N, k, H, W), ``targets`` and ``scores`` (N, k); :attr:`k` says so. Pictures then
    come one per (sample, target), sample-major.
    """

    method: str
    attributions: np.ndarray | tuple[np.ndarray, ...] | list[np.ndarray] | dict[str, np.ndarray]
    heatmaps: np.ndarray | tuple[np.ndarray | None, ...] | list[np.ndarray | None] | dict[str, np.ndarray | None] | None
    targets: np.ndarray | None
    scores: np.ndarray
    outputs: Any
    layer: str | None = None
    layout: str = "channels_first"
    options: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def k(self) -> int | None:
        """Targets per sample when the arrays have a k axis (:class:`~gradsight.targets.TopK`), else None."""
        return int(self.scores.shape[1]) if self.scores.ndim == 2 else None

    def __repr__(self) -> str:
        layer = f", layer={self.layer!r}" if self.layer else ""
        targets = "" if self.targets is None else f", targets={self.targets.tolist()}"
        a = self.attributions
        shapes = {k: tuple(v.shape) for k, v in a.items()} if isinstance(a, dict) else (
            tuple(tuple(v.shape) for v in a) if isinstance(a, (tuple, list)) else tuple(a.shape))
        return f"Explanation(method={self.method!r}, attributions={shapes}{layer}{targets})"

    @property
    def predictions(self) -> np.ndarray | None:
        """Top-1 class of each sample's output, when the output is (N, classes)."""
        return self.outputs.argmax(1) if isinstance(self.outputs, np.ndarray) and self.outputs.ndim == 2 else None

    @property
    def kind(self) -> str:
        """What was explained: ``"image"``, ``"signal"``, ``"volume"``, ``"table"``, ``"several"`` inputs (or ``"other"``)."""
        heat = self.heatmaps
        if isinstance(self.attributions, (tuple, list, dict)) or isinstance(heat, (tuple, list, dict)):
            return "several"
        extra = 0 if self.k is None else 1
        if heat is None:
            return "table" if np.ndim(self.attributions) - extra == 2 else "other"
        return {2: "signal", 3: "image", 4: "volume"}.get(heat.ndim - extra, "other")

    def _require_heatmaps(self) -> np.ndarray:
        heat: Any = self.heatmaps
        if isinstance(heat, (tuple, list, dict)):  # several inputs: the first image-shaped one's maps
            heat = next((h for h in (heat.values() if isinstance(heat, dict) else heat) if h is not None), None)
        if heat is None:
            hint = " Draw its (N, F) attributions with exp.feature_bars() or exp.save()." if self.kind == "table" else ""
            raise ValueError(f"{self.method} explained an input that is not spatial; there are no heat maps to draw.{hint}")
        out: np.ndarray = heat
        return out

    def feature_bars(self, names: Sequence[str] | None = None, top: int | None = 10,
                     class_names: Sequence[str] | None = None) -> list[Any]:
        """Tables: one bar chart per sample (per (sample, target) with a k axis) of its ``top`` features.

        Signed bars (red raises the score, blue lowers it), largest ``|attribution|`` first,
        titled with the explained class and score; ``names``: the F feature names.
        """
        from . import render

        if self.kind != "table":
            raise ValueError(f"feature_bars draws tables (N, F); this explanation is of {self.kind} input.")
        k = self.k or 1
        attr = np.asarray(self.attributions).reshape(len(self) * k, -1)
        return [
            render.feature_bars(attr[j], names, top, title=" / ".join(
                render.caption(self, j // k, None if self.k is None else j % k, class_names)))
            for j in range(len(attr))
        ]

    def _pictures(self, images: Any, heat: np.ndarray, cmap: str, alpha: float) -> list[Any]:
        """Signals and volumes: one picture per heat map, over the matching sample of ``images`` (model layout)."""
        from . import render

        k = self.k or 1
        first = self.layout == "channels_first"
        samples: list[Any] = [None] * (len(heat) // k)
        if images is not None:
            arr = np.asarray(images.detach().cpu().numpy() if hasattr(images, "detach") else images, np.float64)
            if len(arr) * k != len(heat):
                raise ValueError(f"got {len(arr)} inputs for {len(heat) // k} explanations.")
            if self.kind == "signal":  # (C, L) channels first for the plot
                samples = list(arr if first or arr.ndim == 2 else np.moveaxis(arr, -1, 1))
            else:  # (D, H, W, C) channels last for the strip
                samples = list(np.moveaxis(arr, 1, -1) if first and arr.ndim == 5 else arr)
        if self.kind == "signal":
            return [render.signal_plot(samples[j // k], h, cmap=cmap, alpha=alpha) for j, h in enumerate(heat)]
        return [render.volume_strip(h, samples[j // k], cmap=cmap, alpha=alpha) for j, h in enumerate(heat)]

    def overlay(self, images: Any = None, cmap: str = "jet", alpha: float = 0.5) -> list[Any]:
        """Heat maps coloured with ``cmap`` and blended over ``images``.

        Parameters
        ----------
        images:
            The pictures the batch came from: uint8 or [0, 1] floats, (N, H, W, 3),
            (N, 3, H, W), or a list of PIL images. None: the coloured heat maps alone.
            Signals and volumes: the batch ``x`` itself (model layout); each sample is
            drawn as lines over a coloured band (:func:`~gradsight.render.signal_plot`) or
            as a strip of slices (:func:`~gradsight.render.volume_strip`).
        cmap:
            Any matplotlib colormap name (jet, gist_earth, inferno, ...).
        alpha:
            Weight of the heat map, 0..1.

        Returns
        -------
        One ``PIL.Image`` per sample; with a k axis, one per (sample, target), in the order
        sample 0 targets 0..k-1, sample 1, ...
        """
        from PIL import Image

        from . import render

        heat = self._require_heatmaps()
        k = self.k or 1
        if self.k is not None:
            heat = heat.reshape((-1,) + heat.shape[2:])
        if self.kind in ("signal", "volume"):
            return self._pictures(images, heat, cmap, alpha)
        if images is None:
            return [Image.fromarray(c) for c in render.colorize(heat, cmap)]
        images, note = render.displayable(images)  # normalised model input is de-normalised for display
        if note:
            from .errors import GradsightWarning, warn

            warn(note, GradsightWarning)
        rgb = render.to_rgb_uint8(images)
        if len(rgb) * k != len(heat):
            raise ValueError(f"got {len(rgb)} images for {len(heat) // k} explanations.")
        return [render.overlay(rgb[j // k], h, cmap=cmap, alpha=alpha) for j, h in enumerate(heat)]

    def save(
        self,
        directory: str | Path,
        images: Any = None,
        cmap: str = "jet",
        alpha: float = 0.5,
        prefix: str | None = None,
        names: Sequence[str] | None = None,
        plain: bool = False,
        class_names: Sequence[str] | None = None,
        feature_names: Sequence[str] | None = None,
        top: int | None = 10,
    ) -> list[Path]:
        """Write one PNG per sample (the overlay, or the heat map when no images) and return the paths.

        Each picture is captioned with the method, the explained class (a name from
        ``class_names`` when given) and its score, and for Grad-CAM the layer, with a
        colour bar at its right; ``plain=True`` writes the bare overlays.
        With a k axis: one per (sample, target), named ``<name>_k<j>.png``. Tables: a bar
        chart of each sample's ``top`` features (named by ``feature_names``), see
        :meth:`feature_bars`; signals and volumes: see :meth:`overlay`.
        """
        from . import render

        directory = Path(directory)
        stem = prefix or self.method
        k = self.k or 1
        paths = []
        table = self.kind == "table"
        pictures = self.feature_bars(feature_names, top, class_names) if table else self.overlay(images, cmap, alpha)
        for j, picture in enumerate(pictures):
            i = j // k
            name = names[i] if names is not None else f"{stem}_{i:03d}"
            if self.k is not None:
                name = f"{name}_k{j % k}"
            if not plain and not table:  # a PNG read alone later says what it shows (bar charts carry a title)
                picture = render.labelled(picture, render.caption(self, i, None if self.k is None else j % k, class_names), cmap)
            paths.append(render.save_png(picture, directory / f"{name}.png"))
        return paths

    def _repr_png_(self) -> bytes:
        from . import render

        pictures = self.feature_bars() if self.kind == "table" else self.overlay(None)
        buffer = io.BytesIO()
        if self.k is not None:  # one row per sample, one column per target
            rows = [pictures[i * self.k:(i + 1) * self.k] for i in range(len(self))]
            labels = [
                f"#{i}" + ("" if self.targets is None else f" classes {self.targets[i].tolist()}") for i in range(len(self))
            ]
            titles = [f"{self.method} target {j}" for j in range(self.k)]
            render.grid(rows, titles=titles, row_labels=labels).save(buffer, format="PNG")
            return buffer.getvalue()
        titles = [
            f"{self.method} #{i}" + ("" if self.targets is None else f" (class {int(self.targets[i])})")
            for i in range(len(self))
        ]
        render.grid([pictures], titles=titles).save(buffer, format="PNG")
        return buffer.getvalue()
