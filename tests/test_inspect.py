"""gradsight.inspect on PyTorch models: activations, embeddings, filters, hidden units, weight stats.

Numbers are checked against independent references: forward hooks and hand-written
forwards for activations, numpy SVD for PCA, per-kernel min-max written here for the
filter tiles, the line equation with the module's own weights for hidden units, numpy
for weight statistics.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import gradsight as gs
from gradsight.demo.mlp import CLASSES as MOON_CLASSES
from gradsight.demo.mlp import load_mlp_model, make_moons
from gradsight.demo.model import load_demo_model
from gradsight.demo.shapes import CLASSES, generate, preprocess
from gradsight.errors import InputError, LayerNotFoundError, ModelError, UnknownOptionError
from gradsight.inspect import (
    activations,
    embed,
    filters,
    hidden_units,
    kernel_mosaic,
    plot_embedding,
    unit_lines,
    weight_stats,
)
from helpers import assert_rel

TAB10 = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189]])


@pytest.fixture(scope="module")
def shapes():
    return generate(300, seed=1)  # the demo model's test seed: never trained on


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return load_demo_model()


@pytest.fixture(scope="module")
def x300(shapes) -> np.ndarray:
    return preprocess(shapes.images)


@pytest.fixture(scope="module")
def penultimate(model, x300, shapes):
    return activations(model, x300, labels=shapes.labels, predict=True, progress=False)


def _png(img: Image.Image, path: Path) -> np.ndarray:
    img.save(path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        return np.asarray(im)


def _has_colour(pixels: np.ndarray, rgb, tol: int = 12) -> bool:
    return bool((np.abs(pixels.astype(int) - np.asarray(rgb)).max(-1) <= tol).any())


# --------------------------------------------------------------------------- public surface


def test_public_names_and_lazy_imports() -> None:
    assert sorted(gs.inspect.__all__) == sorted([
        "activations", "Activations", "embed", "plot_embedding", "filters", "kernel_mosaic", "hidden_units",
        "unit_lines", "UnitLine", "weight_stats", "WeightStat", "format_weight_stats", "layer_calls", "LayerCall",
    ])
    for name in gs.inspect.__all__:
        assert getattr(gs.inspect, name).__doc__
    code = ("import sys, gradsight as gs; gs.inspect; "
            "print([m for m in ('torch', 'tensorflow', 'keras', 'sklearn', 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_layer_calls_mark_the_layer_gradcam_explains(model) -> None:
    """``layer_calls`` (``gradsight layers`` and the viewer's list): the demo CNN's calls in order with the
    shapes a forward hook sees, and the auto mark on the layer ``gs.gradcam(layer="auto")`` explains -- on
    the ViT too, where a "last spatial 4-D output" rule (the viewer's until 2026-12-02) marks its stem."""
    from gradsight.demo.vit import load_demo_vit

    blank = np.zeros((1, 3, 64, 64), np.float32)
    seen: list[tuple[str, tuple[int, ...]]] = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: seen.append((n, tuple(o.shape))))
             for n, m in model.named_modules() if n and not list(m.children())]
    with torch.no_grad():
        model.eval()(torch.from_numpy(blank))
    for h in hooks:
        h.remove()
    calls, auto = gs.inspect.layer_calls(model, blank)
    assert [(c.name, c.shape) for c in calls] == seen
    assert auto is not None and calls[auto].name == gs.gradcam(model, blank, target=0).layer == "relu4"
    assert calls[auto].spatial and not calls[auto].tokens
    vit = load_demo_vit()
    calls, auto = gs.inspect.layer_calls(vit, blank)
    explained = gs.gradcam(vit, blank, target=0).layer
    assert auto is not None and calls[auto].name == explained == "blocks.3.norm1"
    assert all(c.name != explained for c in calls[auto + 1:])  # its last call
    assert calls[auto].tokens and not calls[auto].spatial
    assert [c.name for c in calls if c.spatial][-1] != explained  # what the old viewer rule marked


# --------------------------------------------------------------------------- activations


def test_default_layer_is_the_input_of_the_classifier(model, x300, penultimate) -> None:
    """Reference 1: the output of ``gap`` via a forward hook; reference 2: the classifier on the features."""
    assert penultimate.layer == "input of classifier"
    assert penultimate.values.shape == (300, 64) and penultimate.values.dtype == np.float32
    seen = []
    handle = model.gap.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    with torch.no_grad():
        logits = model(torch.from_numpy(x300)).numpy()
    handle.remove()
    assert_rel(penultimate.values, seen[0].flatten(1).numpy(), 1e-6)
    w, b = model.classifier.weight.detach().numpy(), model.classifier.bias.detach().numpy()
    assert_rel(penultimate.values @ w.T + b, logits, 1e-5)
    np.testing.assert_array_equal(penultimate.predictions, logits.argmax(1))
    assert (penultimate.predictions == penultimate.labels).mean() > 0.95


def test_final_linear_is_the_last_called_and_its_input_need_not_be_a_module_output() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(6, 3)  # registered first, called last
            self.conv = nn.Conv2d(3, 6, 3)
            self.proj = nn.Linear(6, 6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.conv(x).amax((2, 3))
            return self.head(torch.tanh(self.proj(h)) * 2 - 1)

    torch.manual_seed(0)
    net, x = Net(), torch.randn(10, 3, 8, 8)
    acts = activations(net, x, batch_size=4, progress=False)
    with torch.no_grad():
        ref = torch.tanh(net.proj(net.conv(x).amax((2, 3)))) * 2 - 1
    assert acts.layer == "input of head"
    assert_rel(acts.values, ref.numpy(), 1e-6)


def test_named_layer_reductions_against_a_hook(model, x300) -> None:
    x = x300[:20]
    seen = []
    handle = model.relu4.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    with torch.no_grad():
        model(torch.from_numpy(x))
    handle.remove()
    ref = seen[0].numpy()  # (20, 64, 8, 8)
    gap = activations(model, x, layer="relu4", batch_size=8, progress=False)
    flat = activations(model, x, layer="relu4", reduce="flatten", progress=False)
    full = activations(model, torch.from_numpy(x), layer=model.relu4, reduce=None, progress=False)
    auto = activations(model, x, layer="auto", progress=False)
    assert gap.layer == flat.layer == full.layer == auto.layer == "relu4"
    assert_rel(gap.values, ref.mean((2, 3)), 1e-6)
    assert_rel(flat.values, ref.reshape(20, -1), 1e-6)
    assert_rel(full.values, ref, 1e-6)
    assert_rel(auto.values, gap.values, 1e-6)
    # the shared relu runs three times per forward: call= picks one
    first = activations(model, x[:4], layer="relu", call=0, progress=False)
    assert first.values.shape == (4, 16)


def test_batches_any_iterable_and_the_mode_is_restored(model, x300, shapes, penultimate) -> None:
    x, y = torch.from_numpy(x300[:50]), torch.from_numpy(shapes.labels[:50])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    model.train()
    try:
        from_loader = activations(model, loader, progress=False)
        assert model.training and all(m.training for m in model.modules())
    finally:
        model.eval()
    assert_rel(from_loader.values, penultimate.values[:50], 1e-5)  # eval-mode BatchNorm, as by default
    np.testing.assert_array_equal(from_loader.labels, shapes.labels[:50])
    gen = activations(model, (x300[i:min(i + 7, 50)] for i in range(0, 50, 7)), labels=shapes.labels[:50], progress=False)
    assert_rel(gen.values, penultimate.values[:50], 1e-5)
    np.testing.assert_array_equal(gen.labels, shapes.labels[:50])


def test_activation_errors(model, x300, shapes) -> None:
    x = x300[:6]
    with pytest.raises(InputError, match="channels-last"):
        activations(model, x.transpose(0, 2, 3, 1), progress=False)
    with pytest.raises(InputError, match="leading sample axis"):
        activations(model, np.zeros(5, np.float32), progress=False)
    with pytest.raises(InputError, match="labels has 5 entries for 6"):
        activations(model, x, labels=np.zeros(5), progress=False)
    with pytest.raises(InputError, match="given both"):
        activations(model, [(x, np.zeros(6))], labels=np.zeros(6), progress=False)
    with pytest.raises(InputError, match=r"gave shape \(2048,\) per sample on batch 1"):
        activations(model, [x, x[:, :, :32]], layer="relu4", reduce="flatten", progress=False)
    varying = activations(model, [x, x[:, :, :32]], layer="relu4", progress=False)  # gap: any image size
    assert varying.values.shape == (12, 64)
    with pytest.raises(InputError, match="batch 0 of data is a str"):
        activations(model, ["x"], progress=False)
    with pytest.raises(UnknownOptionError, match="reduce"):
        activations(model, x, reduce="max", progress=False)
    with pytest.raises(LayerNotFoundError, match="conv4"):
        activations(model, x, layer="conv44", progress=False)
    with pytest.raises(LayerNotFoundError, match="no nn.Linear"):
        activations(nn.Sequential(nn.Conv2d(3, 4, 3)), x, progress=False)
    with pytest.raises(InputError, match=r"could not run on batch 0 of shape \(6, 3\)"):
        activations(load_mlp_model(), np.zeros((6, 3), np.float32), progress=False)


# --------------------------------------------------------------------------- embeddings


def test_tsne_of_penultimate_features_separates_the_classes(penultimate) -> None:
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    coords = embed(penultimate, perplexity=30, seed=0)
    assert coords.shape == (300, 2) and coords.dtype == np.float32
    acc = cross_val_score(KNeighborsClassifier(5), coords, penultimate.labels, cv=5).mean()
    print(f"\n5-NN accuracy (5-fold) in the 2-D t-SNE of the penultimate features, 300 images: {acc:.3f}")
    assert acc >= 0.9


def test_pca_against_numpy_svd(penultimate) -> None:
    coords = embed(penultimate.values, method="pca")
    a = penultimate.values.astype(np.float64)
    u, s, _ = np.linalg.svd(a - a.mean(0), full_matrices=False)
    ref = u[:, :2] * s[:2]
    signs = np.sign((coords * ref).sum(0))  # components are defined up to sign
    assert_rel(coords * signs, ref, 1e-4)


def test_embed_errors_and_small_sets(penultimate) -> None:
    with pytest.raises(UnknownOptionError):
        embed(penultimate, method="umap")
    with pytest.raises(InputError, match=r"\(N, D\)"):
        embed(np.zeros((10, 4, 4)))
    with pytest.raises(InputError, match="at least 3"):
        embed(np.zeros((2, 4)))
    with pytest.warns(gs.GradsightWarning, match="perplexity"):
        coords = embed(penultimate.values[:20], perplexity=30)
    assert coords.shape == (20, 2) and np.isfinite(coords).all()


def test_plot_embedding_png_with_legend_and_thumbnails(tmp_path, shapes, penultimate) -> None:
    coords = embed(penultimate.values, method="pca")
    img = plot_embedding(coords, shapes.labels, CLASSES, images=shapes.images, path=tmp_path / "e.png")
    px = _png(img, tmp_path / "again.png")
    with Image.open(tmp_path / "e.png") as written:
        assert written.size == (900, 700)
    assert px.shape == (700, 900, 3) and px.std() > 10
    legend = px[:, int(0.77 * 900):]  # right of the axes
    for rgb in TAB10:  # one marker per class in the legend, plus its text
        assert _has_colour(legend, rgb), rgb
    assert (legend.max(-1) < 60).sum() > 200
    plain = np.asarray(plot_embedding(coords))
    assert (plain[:, int(0.77 * 900):] == 255).all()  # no labels: no legend
    with pytest.raises(InputError, match=r"\(300,\)"):
        plot_embedding(coords, shapes.labels[:10])
    with pytest.raises(InputError, match="one image per point"):
        plot_embedding(coords, shapes.labels, images=shapes.images[:5])


# --------------------------------------------------------------------------- filters


def test_kernel_mosaic_tiles_are_kernels_normalised_one_by_one() -> None:
    k = np.random.default_rng(0).normal(size=(5, 3, 3, 2)).astype(np.float32)
    k[4] = 0.25  # a constant kernel is mid-grey
    ref = np.empty_like(k, dtype=np.float64)
    for n in range(5):
        lo, hi = k[n].min(), k[n].max()
        ref[n] = 0.5 if hi == lo else (k[n] - lo) / (hi - lo)
    ref = np.floor(ref * 255 + 0.5).astype(np.uint8)
    col = kernel_mosaic(k, colour=True, scale=2, gap=1)  # 3 x 2 grid of 6 x 4 tiles
    assert col.shape == (2 * 7 + 1, 3 * 5 + 1, 3)
    for n in range(5):
        r, c = divmod(n, 3)
        tile = col[1 + r * 7:1 + r * 7 + 6, 1 + c * 5:1 + c * 5 + 4]
        np.testing.assert_array_equal(tile[::2, ::2], ref[n].transpose(1, 2, 0))
    grey = kernel_mosaic(k, colour=False, scale=1, gap=1)  # rows: kernels; columns: channels
    assert grey.shape == (5 * 5 + 1, 3 * 3 + 1, 3)
    for n in range(5):
        for c in range(3):
            tile = grey[1 + n * 5:1 + n * 5 + 3, 1 + c * 3:1 + c * 3 + 2]
            np.testing.assert_array_equal(tile[..., 0], ref[n, c])
            assert (tile[..., 0] == tile[..., 2]).all()


def test_filters_pictures_and_errors(tmp_path, model) -> None:
    first = _png(filters(model, path=tmp_path / "f.png"), tmp_path / "f2.png")
    assert (tmp_path / "f.png").stat().st_size > 0
    ref = kernel_mosaic(model.conv1.weight.detach().numpy(), True, 21)
    assert first.shape[0] > ref.shape[0] and first.shape[1] >= ref.shape[1] and first.std() > 10
    # the mosaic appears unchanged in the picture (the title sits above it)
    h, w = ref.shape[:2]
    assert any((first[y:y + h, 8:8 + w] == ref).all() for y in range(first.shape[0] - h + 1))  # pad = 8
    deep = np.asarray(filters(model, "conv3", max_kernels=10, max_channels=12))
    assert deep.std() > 10 and deep.shape[1] >= 12 * (3 * 4 + 1)
    with pytest.raises(ModelError, match="not a 2-D convolution.*'conv1', 'conv2'"):
        filters(model, "classifier")
    with pytest.raises(LayerNotFoundError, match="conv4"):
        filters(model, "conv9")
    with pytest.raises(ModelError, match="no 2-D convolution"):
        filters(load_mlp_model())


# --------------------------------------------------------------------------- hidden units


def test_unit_lines_satisfy_the_line_equation_of_the_weights() -> None:
    mlp = load_mlp_model()
    w, b = mlp.fc1.weight.detach().double().numpy(), mlp.fc1.bias.detach().double().numpy()
    box = (-2.0, 2.5, -1.5, 1.5)
    lines = unit_lines(mlp, box)
    assert len(lines) == 8 == len(w)
    drawn = 0
    for line, wj, bj in zip(lines, w, b):
        np.testing.assert_allclose(line.weight, wj, rtol=1e-6)
        if line.segment is None:
            continue
        drawn += 1
        scale = np.abs(wj).sum() * 3
        for p in line.segment:  # on the line, on the border of the box
            assert abs(wj @ p + bj) < 1e-9 * scale
            assert box[0] - 1e-9 <= p[0] <= box[1] + 1e-9 and box[2] - 1e-9 <= p[1] <= box[3] + 1e-9
            assert min(abs(p[0] - box[0]), abs(p[0] - box[1]), abs(p[1] - box[2]), abs(p[1] - box[3])) < 1e-9
        start, tip = line.arrow
        assert abs(wj @ start + bj) < 1e-9 * scale
        d = tip - start
        assert abs(d[0] * wj[1] - d[1] * wj[0]) < 1e-9 * scale  # parallel to w ...
        assert wj @ tip + bj > 0  # ... pointing to the active side
    assert drawn >= 6
    far = unit_lines(mlp, (100.0, 101.0, 100.0, 101.0))
    assert sum(line.segment is None for line in far) >= 1


def test_hidden_units_picture_and_errors(tmp_path) -> None:
    mlp = load_mlp_model()
    x, y = make_moons(200, seed=1)
    with torch.no_grad():
        acc = (mlp(torch.from_numpy(x)).argmax(1).numpy() == y).mean()
    assert acc >= 0.95  # the bundled demo-mlp is trained
    px = _png(hidden_units(mlp, x, y, class_names=MOON_CLASSES, path=tmp_path / "u.png"), tmp_path / "u2.png")
    assert px.shape[1] == 850 and px.std() > 10
    for rgb in TAB10[:2]:  # both classes' points, and the legend
        assert _has_colour(px, rgb)
    assert _has_colour(px[:, 650:], TAB10[0])
    bare = np.asarray(hidden_units(mlp))
    assert bare.shape[1] == 850 and bare.std() > 10
    with pytest.raises(ModelError, match="not a dense"):
        hidden_units(load_demo_model())
    with pytest.raises(ModelError, match="R\\^3"):
        hidden_units(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))
    with pytest.raises(InputError, match=r"\(N, 2\)"):
        hidden_units(mlp, np.zeros((5, 3)))
    with pytest.raises(InputError, match="3 labels for 5"):
        hidden_units(mlp, np.zeros((5, 2)), [0, 1, 0])


# --------------------------------------------------------------------------- weight statistics


def test_weight_stats_against_numpy(model) -> None:
    rows = weight_stats(model)
    tensors = {f"{m}.{n}": t for m, mod in model.named_modules() for n, t in
               [*mod.named_parameters(recurse=False), *mod.named_buffers(recurse=False)] if t.is_floating_point()}
    assert [f"{r.layer}.{r.name}" for r in rows] == list(tensors)
    for r in rows:
        v = tensors[f"{r.layer}.{r.name}"].detach().double().numpy()
        assert r.shape == v.shape
        np.testing.assert_allclose([r.mean, r.std, r.norm], [v.mean(), v.std(), np.linalg.norm(v.ravel())],
                                   rtol=1e-6, atol=1e-9)
        assert r.near_zero == pytest.approx((np.abs(v) <= 1e-3).mean())
        assert r.trainable == (not r.name.startswith("running_"))
    loose = {(r.layer, r.name): r.near_zero for r in weight_stats(model, atol=0.05)}
    v = model.conv4.weight.detach().numpy()
    assert loose[("conv4", "weight")] == pytest.approx((np.abs(v) <= 0.05).mean())
    text = gs.inspect.format_weight_stats(rows)
    assert "conv1" in text and "64x64x3x3" in text and f"{sum(p.numel() for p in model.parameters()):,}" in text
