"""The demo: every method on a few shapes images, drawn as one labelled grid per image.

``gradsight demo`` calls :func:`run_demo`. The picture helpers here
(:func:`picture`, :func:`method_row`, :func:`explain_methods`) are also what
``gradsight explain`` draws with, so the demo and the CLI look the same.

How each method is drawn:

- ``saliency``, ``smoothgrad``: the explanation's heat map (max over channels of
  |gradient|, scaled to [0, 1], the top 1 % of pixels clipped) coloured over the image.
  These maps are sparse, so the colour's weight follows the map,
  ``min(1, 2 * alpha) * heat``: where the gradient is zero the image shows unchanged
  (a constant weight would tint the whole picture with the colormap's low end);
- ``deconvnet``, ``guided_backprop``, ``guided_gradcam``: the signed gradient shown as
  an RGB image (the "deprocessed gradient" of Springenberg et al. and Selvaraju et al.:
  centred, divided by its standard deviation, mid-grey is zero);
- ``gradcam``: the class activation map over the image, with a colormap (jet by default).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._names import GRADIENT_IMAGE_METHODS, METHOD_TITLES

__all__ = [
    "DEMO_SEED",
    "DemoResult",
    "TITLES",
    "demo_images",
    "display_images",
    "explain_demo",
    "explain_methods",
    "gradient_image",
    "method_row",
    "picture",
    "run_demo",
]

DEMO_SEED = 2024
"""Seed of the demo's generated images (a seed the demo model never trained or was tested on)."""

TITLES = {"input": "input", **METHOD_TITLES}
"""Column titles of the grids, by method name."""

"""Methods drawn as an RGB gradient image rather than a heat-map overlay."""

SPARSE_HEAT_METHODS = ("saliency", "smoothgrad", "integrated_gradients", "input_x_gradient")
"""Methods whose heat map is drawn with a weight that follows the map (see the module docstring)."""


def gradient_image(attribution: np.ndarray, layout: str = "channels_first", contrast: float = 0.15) -> np.ndarray:
    """A signed (C, H, W) / (H, W, C) gradient as a uint8 RGB picture; mid-grey is zero.

    ``0.5 + contrast * (g - mean) / std``, clipped to [0, 1], as in the guided backprop
    and Grad-CAM papers' figures. One- or two-channel gradients are shown in grey.
    """
    g = np.asarray(attribution, dtype=np.float64)
    if g.ndim == 3 and layout == "channels_first":
        g = g.transpose(1, 2, 0)
    if g.ndim == 2:
        g = g[..., None]
    if g.shape[-1] != 3:
        g = np.repeat(g.mean(-1, keepdims=True), 3, axis=-1)
    g = g - g.mean()
    std = g.std()
    g = 0.5 + contrast * (g / std if std > 0 else g)
    return np.floor(np.clip(g, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def picture(exp: Any, i: int, display: np.ndarray, cmap: str = "jet", alpha: float = 0.5) -> Any:
    """The picture of sample ``i`` of an :class:`~gradsight.Explanation`, at ``display``'s size.

    Parameters
    ----------
    exp:
        The explanation.
    i:
        Sample index.
    display:
        uint8 (D, D, 3): the input image at the size to draw at.
    cmap, alpha:
        Colormap and weight of heat-map overlays.

    Returns
    -------
    PIL.Image.Image, RGB, the size of ``display``.
    """
    from PIL import Image

    from .. import render

    if exp.method in GRADIENT_IMAGE_METHODS and exp.attributions.ndim == 4:
        tile = Image.fromarray(gradient_image(exp.attributions[i], exp.layout), "RGB")
        size = (display.shape[1], display.shape[0])
        return tile if tile.size == size else tile.resize(size, Image.Resampling.BICUBIC)
    if exp.method in SPARSE_HEAT_METHODS:
        heat = render.resize(render.normalize(exp.heatmaps[i], clip_percentile=99), display.shape[:2])
        weight = (min(1.0, 2.0 * alpha) * heat)[..., None]
        blend = (1.0 - weight) * display + weight * render.colorize(heat, cmap)
        return Image.fromarray(np.floor(np.clip(blend, 0, 255) + 0.5).astype(np.uint8), "RGB")
    return render.overlay(display, exp.heatmaps[i], cmap=cmap, alpha=alpha)


def explain_methods(
    model: Any,
    x: Any,
    methods: Sequence[str],
    target: Any = None,
    layer: Any = None,
    options: dict[str, dict[str, Any]] | None = None,
    done: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Run each method on the batch ``x``; ``{method: Explanation}`` in the given order.

    ``layer`` goes to the methods that take one (Grad-CAM, guided Grad-CAM);
    ``options[method]`` holds extra options for a method (e.g. SmoothGrad's ``samples``);
    ``done(method)`` is called after each method (for progress bars).
    """
    from .. import explain
    from ..methods import get_method

    options = options or {}
    out: dict[str, Any] = {}
    for name in methods:
        spec = get_method(name)
        kwargs = dict(options.get(spec.name, {}))
        if spec.uses_layer:
            kwargs["layer"] = layer
        out[spec.name] = explain(model, x, spec.name, target=target, **kwargs)
        if done is not None:
            done(spec.name)
    return out


def method_row(
    explanations: dict[str, Any], i: int, display: np.ndarray, cmap: str = "jet", alpha: float = 0.5
) -> list[Any]:
    """Sample ``i``'s grid row: the input, then one picture per explanation."""
    from PIL import Image

    return [Image.fromarray(display, "RGB")] + [
        picture(exp, i, display, cmap=cmap, alpha=alpha) for exp in explanations.values()
    ]


def display_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, h, w, 3) images resized (bicubic) to (N, size, size, 3) for drawing."""
    from PIL import Image

    if images.shape[1:3] == (size, size):
        return images
    return np.stack(
        [np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BICUBIC)) for im in images]
    )


def demo_images(n: int = 6, seed: int = DEMO_SEED) -> Any:
    """``n`` generated shapes images that cycle through the classes (circle, square, ...).

    Returns a :class:`~gradsight.demo.shapes.ShapesData`; the pick is deterministic.
    """
    from .shapes import CLASSES, generate

    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}.")
    pool = generate(max(4 * n, 8 * len(CLASSES)), seed=seed)
    chosen: list[int] = []
    for k in range(n):
        want = k % len(CLASSES)
        hit = next((j for j in range(len(pool)) if pool.labels[j] == want and j not in chosen), None)
        if hit is None:
            hit = next(j for j in range(len(pool)) if j not in chosen)
        chosen.append(hit)
    return pool[np.array(chosen)]


@dataclass
class DemoResult:
    """What :func:`explain_demo` computed.

    Attributes
    ----------
    images: uint8 (N, 64, 64, 3) the generated images.
    labels: int (N,) true classes.
    predictions: int (N,) the model's top-1 classes.
    probabilities: float (N,) softmax probability of the predicted class.
    explanations: ``{method: Explanation}`` for all six methods, in grid order.
    class_names: the class names.
    framework: ``"torch"`` or ``"keras"``.
    """

    images: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    probabilities: np.ndarray
    explanations: dict[str, Any]
    class_names: tuple[str, ...]
    framework: str

    @property
    def correct(self) -> int:
        return int((self.predictions == self.labels).sum())


def explain_demo(framework: str = "torch", n: int = 6, seed: int = DEMO_SEED, samples: int = 16) -> DemoResult:
    """Run all six methods on ``n`` demo images with the bundled model of ``framework``."""
    from ..inputs import preprocess
    from ..methods import GROUPS
    from .registry import load_bundled

    model, info = load_bundled("demo", framework)
    data = demo_images(n, seed)
    x = preprocess(data.images, info.preprocessing, info.layout)
    exps = explain_methods(model, x, list(GROUPS["all"]), options={"smoothgrad": {"samples": samples, "seed": 0}})
    first = next(iter(exps.values()))
    logits = first.outputs.astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    pred = logits.argmax(1)
    return DemoResult(
        images=data.images,
        labels=data.labels,
        predictions=pred,
        probabilities=probs[np.arange(len(pred)), pred],
        explanations=exps,
        class_names=info.class_names or (),
        framework=info.framework,
    )


def run_demo(
    out_dir: str | Path = "demo-output",
    framework: str = "torch",
    n: int = 6,
    *,
    seed: int = DEMO_SEED,
    samples: int = 16,
    tile_size: int = 128,
    cmap: str = "jet",
    alpha: float = 0.5,
    log: Callable[[str], Any] | None = print,
) -> list[Path]:
    """Explain ``n`` generated shapes images with all six methods and write the grids.

    Writes ``demo_NN_<class>.png`` (one row: input | saliency | SmoothGrad | deconvnet |
    guided backprop | Grad-CAM | guided Grad-CAM, labelled with the true and predicted
    class) for each image, and ``demo_grid.png`` with all rows, into ``out_dir``.
    ``log`` receives the lines reporting predictions against the truth and the accuracy
    (None: silent).

    Returns
    -------
    The written paths, the combined grid last.
    """
    from .. import render

    res = explain_demo(framework=framework, n=n, seed=seed, samples=samples)
    out = Path(out_dir)
    names = res.class_names
    titles = [TITLES["input"]] + [TITLES[m] for m in res.explanations]
    display = display_images(res.images, tile_size)
    rows, labels, paths = [], [], []
    say = log or (lambda _line: None)
    say(f"gradsight demo: {len(res.labels)} shapes images, bundled {res.framework} model, six methods")
    for i, (true, pred, p) in enumerate(zip(res.labels, res.predictions, res.probabilities)):
        row = method_row(res.explanations, i, display[i], cmap=cmap, alpha=alpha)
        label = f"true: {names[true]}\npred: {names[pred]} {100 * p:.0f}%"
        rows.append(row)
        labels.append(label)
        single = render.grid([row], titles=titles, row_labels=[label])
        paths.append(render.save_png(single, out / f"demo_{i:02d}_{names[true]}.png"))
        mark = "ok" if true == pred else "WRONG"
        say(f"  image {i}: true {names[true]:<8} predicted {names[pred]:<8} p={p:.2f}  {mark}")
    paths.append(render.save_png(render.grid(rows, titles=titles, row_labels=labels), out / "demo_grid.png"))
    say(f"accuracy: {res.correct}/{len(res.labels)}")
    say(f"wrote {len(paths)} PNG files to {out}/ (combined grid: {paths[-1].name})")
    return paths
