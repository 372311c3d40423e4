"""Pictures say what they show (issue 9, finding 5): caption, class and score, layer, colour bar, --plain."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import gradsight as gs
from gradsight import render
from gradsight.cli import main
from gradsight.demo.shapes import CLASSES

torch = pytest.importorskip("torch")


def _find(big: np.ndarray, small: np.ndarray) -> tuple[int, int]:
    """Top-left corner where ``small`` sits unchanged inside ``big`` (searching the caption's height)."""
    h, w = small.shape[:2]
    for y in range(big.shape[0] - h + 1):
        for x in range(min(12, big.shape[1] - w + 1)):
            if np.array_equal(big[y:y + h, x:x + w], small):
                return y, x
    raise AssertionError("the bare picture is not inside the labelled one")


def _jet_bar_ok(column: np.ndarray) -> None:
    """A column of the colour bar: jet(1) at the top, jet(0) at the bottom (matplotlib as the reference)."""
    import matplotlib

    jet = matplotlib.colormaps["jet"]
    top = np.floor(np.array(jet(1.0)[:3]) * 255 + 0.5)
    bottom = np.floor(np.array(jet(0.0)[:3]) * 255 + 0.5)
    np.testing.assert_array_equal(column[0], top)
    np.testing.assert_array_equal(column[-1], bottom)


def test_cli_picture_has_caption_and_colour_bar_around_the_bare_picture(pngs, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["explain", str(pngs[0]), "--model", "demo", "--out", str(a), "--plain"]) == 0
    assert main(["explain", str(pngs[0]), "--model", "demo", "--out", str(b)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    bare = np.asarray(Image.open(a / "img0_gradcam.png").convert("RGB"))
    full = np.asarray(Image.open(b / "img0_gradcam.png").convert("RGB"))
    assert bare.shape == (128, 128, 3) and full.shape[0] > 140 and full.shape[1] > 140
    y, x = _find(full, bare)
    assert y > 20  # caption above
    _jet_bar_ok(full[y:y + 128, x + 128 + 4 + 2])
    # the caption's words, from an independent forward pass
    from gradsight.demo.model import load_demo_model
    from gradsight.demo.shapes import preprocess

    logits = load_demo_model()(torch.from_numpy(preprocess(np.asarray(Image.open(pngs[0]))[None]))).detach().numpy()[0]
    k = int(logits.argmax())
    p = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    e = gs.gradcam(load_demo_model(), preprocess(np.asarray(Image.open(pngs[0]))[None]))
    lines = render.caption(e, 0, class_names=list(CLASSES))
    assert lines == ["Grad-CAM at layer 'relu4'", f"class {k} ({CLASSES[k]}): score {logits[k]:.4g}, softmax p {p[k]:.3g}"]
    assert f"({CLASSES[k]})" in line


def test_gradient_image_gets_a_grey_legend(pngs, tmp_path):
    assert main(["explain", str(pngs[1]), "--model", "demo", "--method", "guided_backprop", "--out", str(tmp_path)]) == 0
    full = np.asarray(Image.open(tmp_path / "img1_guided_backprop.png").convert("RGB")).astype(int)
    # the right-most picture column block holds a grey ramp: equal channels, from white to black
    bar_col = full[:, -1 - full.shape[1] + 4 + 128 + 4 + 2]
    grey = bar_col[(bar_col.std(axis=1) == 0) & (bar_col[:, 0] < 255)]
    assert len(grey) > 100 and grey[0, 0] > grey[-1, 0]


def test_grid_labels_rows_and_columns_and_has_a_colour_bar(pngs, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["explain", str(pngs[2]), "--model", "demo", "--method", "all", "--samples", "2"]
    assert main([*args, "--out", str(a), "--plain"]) == 0
    assert main([*args, "--out", str(b)]) == 0
    bare = np.asarray(Image.open(a / "img2_grid.png"))
    full = np.asarray(Image.open(b / "img2_grid.png"))
    assert full.shape[1] > bare.shape[1] + 40  # a row label at the left and a colour bar at the right
    # the last column of the grid is followed by the jet bar
    right = full[:, -40:]
    assert (np.abs(right.astype(int) - 255).sum(-1) > 0).any()


def test_explanation_save_is_labelled_unless_plain(tmp_path):
    from gradsight.demo.model import load_demo_model
    from gradsight.demo.shapes import generate, preprocess

    data = generate(2, seed=4)
    exp = gs.gradcam(load_demo_model(), preprocess(data.images))
    bare = exp.save(tmp_path / "bare", data.images, plain=True)
    full = exp.save(tmp_path / "full", data.images, class_names=CLASSES)
    for pb, pf, i in zip(bare, full, range(2)):
        b, f = np.asarray(Image.open(pb)), np.asarray(Image.open(pf))
        np.testing.assert_array_equal(b, np.asarray(exp.overlay(data.images)[i]))
        y, _ = _find(f, b)
        assert y > 10
    assert render.caption(exp, 0)[0] == "Grad-CAM at layer 'relu4'"


def test_caption_says_p_for_probability_outputs_and_names_topk_targets():
    exp = gs.Explanation(method="saliency", attributions=np.zeros((1, 2, 3, 4, 4), np.float32), heatmaps=None,
                         targets=np.array([[2, 0]]), scores=np.array([[0.7, 0.2]], np.float32),
                         outputs=np.array([[0.2, 0.1, 0.7]], np.float32))
    assert render.caption(exp, 0, 0) == ["saliency", "class 2: score 0.7, p 0.7"]
    assert render.caption(exp, 0, 1, class_names=lambda k: "zero" if k == 0 else None)[1] == "class 0 (zero): score 0.2, p 0.2"


def test_detector_pictures_name_method_layer_and_box(pngs, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["explain", str(pngs[0]), "--model", "demo-detector", "--target", "detection", "--method", "gradcam"]
    assert main([*args, "--out", str(a), "--plain"]) == 0
    assert main([*args, "--out", str(b)]) == 0
    bare_files = sorted(p.name for p in a.iterdir())
    assert bare_files and bare_files == sorted(p.name for p in b.iterdir())
    bare = np.asarray(Image.open(a / bare_files[0]).convert("RGB"))
    full = np.asarray(Image.open(b / bare_files[0]).convert("RGB"))
    y, x = _find(full, bare)
    assert y > 20
    _jet_bar_ok(full[y:y + bare.shape[0], x + bare.shape[1] + 4 + 2])
