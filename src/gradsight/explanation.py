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
        (N, h, w), unnormalised. Several inputs (``x`` a tuple, list or dict): gradient
        methods give one array per input in the same structure; CAM methods one map.
    heatmaps:
        float32 (N, H, W) in [0, 1] at the input resolution (None for non-image inputs).
        Several inputs, gradient methods: one per input in ``x``'s structure, None for the
        inputs that are not images; pictures show the first image-shaped input's maps.
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

    def _require_heatmaps(self) -> np.ndarray:
        heat: Any = self.heatmaps
        if isinstance(heat, (tuple, list, dict)):  # several inputs: the first image-shaped one's maps
            heat = next((h for h in (heat.values() if isinstance(heat, dict) else heat) if h is not None), None)
        if heat is None:
            raise ValueError(f"{self.method} explained a non-image input; there are no heat maps to draw.")
        out: np.ndarray = heat
        return out

    def overlay(self, images: Any = None, cmap: str = "jet", alpha: float = 0.5) -> list[Any]:
        """Heat maps coloured with ``cmap`` and blended over ``images``.

        Parameters
        ----------
        images:
            The pictures the batch came from: uint8 or [0, 1] floats, (N, H, W, 3),
            (N, 3, H, W), or a list of PIL images. None: the coloured heat maps alone.
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
    ) -> list[Path]:
        """Write one PNG per sample (the overlay, or the heat map when no images) and return the paths.

        Each picture is captioned with the method, the explained class (a name from
        ``class_names`` when given) and its score, and for Grad-CAM the layer, with a
        colour bar at its right; ``plain=True`` writes the bare overlays.
        With a k axis: one per (sample, target), named ``<name>_k<j>.png``.
        """
        from . import render

        directory = Path(directory)
        stem = prefix or self.method
        k = self.k or 1
        paths = []
        for j, picture in enumerate(self.overlay(images, cmap=cmap, alpha=alpha)):
            i = j // k
            name = names[i] if names is not None else f"{stem}_{i:03d}"
            if self.k is not None:
                name = f"{name}_k{j % k}"
            if not plain:  # a PNG read alone later says what it shows
                picture = render.labelled(picture, render.caption(self, i, None if self.k is None else j % k, class_names), cmap)
            paths.append(render.save_png(picture, directory / f"{name}.png"))
        return paths

    def _repr_png_(self) -> bytes:
        from . import render

        pictures = self.overlay(None)
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
