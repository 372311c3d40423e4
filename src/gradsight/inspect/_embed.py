"""2-D embeddings of activations (t-SNE, PCA) and their scatter picture."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GradsightWarning, InputError, UnknownOptionError, warn

__all__ = ["embed", "plot_embedding", "METHODS"]

METHODS = ("tsne", "pca")
"""Embedding methods :func:`embed` knows."""

PCA_DIMS = 50
SMALL = 3000  # t-SNE runs on one thread up to this many points


def _sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"embeddings need scikit-learn ({exc}); pip install 'gradsight[inspect]' (or scikit-learn)."
        ) from exc


def _matrix(acts: Any) -> np.ndarray:
    x = np.asarray(acts, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(
            f"activations must be (N, D); got shape {x.shape}. Use activations(..., reduce='gap' or 'flatten')."
        )
    if len(x) < 3:
        raise InputError(f"an embedding needs at least 3 samples; got {len(x)}.")
    if not np.all(np.isfinite(x)):
        raise InputError("activations hold NaN or infinite values; check the model and the data.")
    return x


def embed(
    acts: Any,
    method: str = "tsne",
    perplexity: float = 30.0,
    seed: int = 0,
    pca_dims: int = PCA_DIMS,
) -> np.ndarray:
    """2-D coordinates of activations, for a scatter plot.

    Parameters
    ----------
    acts:
        ``(N, D)`` array, or the :class:`Activations` returned by :func:`activations`.
    method:
        ``"tsne"``: scikit-learn's t-SNE (local neighbourhoods are kept, global
        distances are not: the size of and gaps between clusters mean little).
        Wider activations are first reduced to ``pca_dims`` dimensions with PCA, which
        removes noise and makes t-SNE faster. ``"pca"``: the first two principal
        components (linear; global structure kept, clusters may overlap).
    perplexity:
        t-SNE only. Roughly the number of neighbours each point tries to keep close:
        each point's Gaussian neighbourhood is widened until its entropy equals
        ``log2(perplexity)``, i.e. until it "sees" about ``perplexity`` neighbours.
        Small values show local, fragmented structure; large values merge clusters.
        5-50 is usual; it must be well below N (it is lowered to ``(N - 1) / 3``, with a
        warning, for small N).
    seed:
        Seed of the random initialisation (t-SNE) and of the randomised PCA solver.
    pca_dims:
        Dimensions kept by the PCA before t-SNE.

    Returns
    -------
    float32 ``(N, 2)`` coordinates.
    """
    if method not in METHODS:
        raise UnknownOptionError(f"method={method!r} is not valid; use one of {list(METHODS)}.")
    if not perplexity > 0:
        raise UnknownOptionError(f"perplexity must be > 0, got {perplexity!r}.")
    x = _matrix(acts)
    _sklearn()
    from sklearn.decomposition import PCA

    if method == "pca" or x.shape[1] > pca_dims:
        k = min(2 if method == "pca" else pca_dims, *x.shape)
        x = PCA(n_components=k, random_state=seed).fit_transform(x)
    if method == "pca":
        return np.pad(x, ((0, 0), (0, 2 - x.shape[1]))).astype(np.float32)  # D == 1 gives y = 0

    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    most = max(1.0, (len(x) - 1) / 3)
    if perplexity > most:
        warn(f"perplexity {perplexity} is too large for {len(x)} samples; using {most:.3g}.", GradsightWarning)
        perplexity = most
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
    # On small sets each of t-SNE's ~1000 steps is too short for OpenMP threads to pay off, and
    # on a busy machine their barriers make it 10-40x slower (measured: 0.3 s vs 13 s for 60
    # points on 2 loaded cores); one thread it is, below a few thousand points.
    with threadpool_limits(limits=1, user_api="openmp") if len(x) <= SMALL else nullcontext():
        return tsne.fit_transform(x).astype(np.float32)


def _spread_subset(coords: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices of ``k`` points far apart (greedy farthest-point sampling), for thumbnails."""
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(coords)))]
    dist = np.linalg.norm(coords - coords[chosen[0]], axis=1)
    for _ in range(min(k, len(coords)) - 1):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(coords - coords[nxt], axis=1))
    return np.array(chosen)


def class_colours(n: int) -> np.ndarray:
    """``(n, 3)`` RGB floats: tab10 for up to 10 classes, tab20 up to 20, then evenly spaced turbo."""
    from matplotlib import colormaps

    if n <= 10:
        return np.asarray(colormaps["tab10"].colors[:n])
    if n <= 20:
        return np.asarray(colormaps["tab20"].colors[:n])
    return colormaps["turbo"](np.linspace(0.05, 0.95, n))[:, :3]


def figure_to_image(fig: Any) -> Any:
    """Render a matplotlib ``Figure`` (no pyplot state involved) to an RGB PIL image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy(), "RGB")


def plot_embedding(
    coords: Any,
    labels: Any = None,
    class_names: Sequence[str] | None = None,
    images: Any = None,
    path: str | Path | None = None,
    predictions: Any = None,
    thumbnails: int = 20,
    title: str | None = None,
    size: tuple[int, int] = (900, 700),
) -> Any:
    """A scatter picture of 2-D coordinates, one colour per class, with a legend.

    Parameters
    ----------
    coords:
        ``(N, 2)`` coordinates (from :func:`embed`).
    labels:
        ``(N,)`` class labels (ints index ``class_names``; strings are their own names),
        or None for one colour and no legend.
    class_names:
        Names of the classes, indexed by integer label.
    images:
        Optional ``(N, H, W, 3)`` uint8 images (or anything :func:`gradsight.render.to_rgb_uint8`
        takes): small thumbnails are drawn at ``thumbnails`` points spread over the plot.
    path:
        Also write the picture there as PNG.
    predictions:
        Optional ``(N,)`` predicted labels: points where they differ from ``labels`` get a
        black ring (and a legend entry with their count).
    thumbnails:
        How many thumbnails to draw when ``images`` is given.
    title:
        Text above the plot.
    size:
        ``(width, height)`` in pixels.

    Returns
    -------
    PIL.Image.Image (RGB); the legend sits to the right of the axes.
    """
    from matplotlib.figure import Figure
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    from .. import render

    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) == 0:
        raise InputError(f"coords must be (N, 2) with N >= 1; got shape {xy.shape}.")
    n = len(xy)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise InputError(f"labels must have shape ({n},) to match coords; got {labels.shape}.")
    wrong = None
    if predictions is not None:
        if labels is None:
            raise InputError("predictions need labels to be compared with; pass labels too.")
        predictions = np.asarray(predictions)
        if predictions.shape != (n,):
            raise InputError(f"predictions must have shape ({n},) to match coords; got {predictions.shape}.")
        wrong = predictions != labels
    thumbs = None
    if images is not None:
        thumbs = render.to_rgb_uint8(images)
        if len(thumbs) != n:
            raise InputError(f"got {len(thumbs)} images for {n} points; give one image per point.")

    dpi = 100
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi)
    ax = fig.add_axes((0.05, 0.06, 0.70, 0.86))
    marker = float(np.clip(3000 / n, 6, 40))
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=marker, color=class_colours(1)[0], linewidths=0)
    else:
        classes = np.unique(labels)
        colours = class_colours(len(classes))
        for c, colour in zip(classes, colours):
            name = str(c)
            if class_names is not None and np.issubdtype(classes.dtype, np.integer) and 0 <= int(c) < len(class_names):
                name = str(class_names[int(c)])
            sel = labels == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=marker, color=colour, linewidths=0, label=f"{name} ({int(sel.sum())})")
        if wrong is not None and wrong.any():
            ax.scatter(xy[wrong, 0], xy[wrong, 1], s=marker * 4, facecolors="none", edgecolors="black",
                       linewidths=1.2, label=f"misclassified ({int(wrong.sum())})")
        legend = ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False,
                           fontsize=11, title="class (count)")
        for handle in legend.legend_handles:
            handle.set_sizes([70])  # legible markers whatever the point size
    if thumbs is not None and thumbnails > 0:
        side = max(thumbs.shape[1:3])
        zoom = 26 / side  # thumbnails about 26 px wide
        for i in _spread_subset(xy, thumbnails):
            edge = "black"
            if labels is not None:
                edge = class_colours(len(np.unique(labels)))[int(np.searchsorted(np.unique(labels), labels[i]))]
            box = AnnotationBbox(OffsetImage(thumbs[i], zoom=zoom), xy[i], frameon=True, pad=0.1,
                                 bboxprops={"edgecolor": edge, "linewidth": 1.5})
            ax.add_artist(box)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=12)
    img = figure_to_image(fig)
    if path is not None:
        render.save_png(img, path)
    return img
