"""The demo runner: grids written, predictions right, pictures drawn as documented."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gradsight.cli import main
from gradsight.demo.runner import demo_images, gradient_image, run_demo
from gradsight.demo.shapes import CLASSES


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[str]]:
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    return run_demo(out, n=6, log=lines.append), lines


def test_demo_writes_one_grid_per_image_and_a_combined_grid(demo_run: tuple[list[Path], list[str]]) -> None:
    paths, _ = demo_run
    assert len(paths) == 7
    assert paths[-1].name == "demo_grid.png"
    labels = demo_images(6).labels
    for i, (path, label) in enumerate(zip(paths[:-1], labels)):
        assert path.name == f"demo_{i:02d}_{CLASSES[label]}.png"
    with Image.open(paths[0]) as one, Image.open(paths[-1]) as full:
        row, grid = np.asarray(one.convert("RGB")), np.asarray(full.convert("RGB"))
    # 7 tiles of 128 px plus the row labels; 6 rows under one line of titles in the combined grid.
    assert 7 * 128 < row.shape[1] < 7 * 128 + 200
    assert 7 * 128 < grid.shape[1] < 7 * 128 + 200  # row labels set the left margin
    assert 6 * 128 < grid.shape[0] < 6 * 132 + 60
    assert row.std() > 20 and grid.std() > 20


def test_demo_predictions_are_right(demo_run: tuple[list[Path], list[str]]) -> None:
    _, lines = demo_run
    per_image = [line for line in lines if line.strip().startswith("image ")]
    assert len(per_image) == 6
    correct = sum(line.rstrip().endswith(" ok") for line in per_image)
    assert correct >= 5, "\n".join(lines)
    assert f"accuracy: {correct}/6" in lines


def test_demo_images_cycle_through_the_classes() -> None:
    data = demo_images(7)
    assert data.labels.tolist() == [0, 1, 2, 3, 4, 0, 1]
    assert np.array_equal(demo_images(7).images, data.images)  # deterministic


def test_gradient_image_maps_zero_to_grey_and_sign_to_brightness() -> None:
    assert (gradient_image(np.zeros((3, 4, 4))) == 128).all()
    g = np.zeros((3, 2, 2))
    g[:, 0, 0], g[:, 1, 1] = 1.0, -1.0  # mean 0, std sqrt(0.5)
    pic = gradient_image(g, "channels_first", contrast=0.15)
    want_hi = np.floor((0.5 + 0.15 / np.sqrt(0.5)) * 255 + 0.5)
    want_lo = np.floor((0.5 - 0.15 / np.sqrt(0.5)) * 255 + 0.5)
    assert pic.shape == (2, 2, 3)
    assert (pic[0, 0] == want_hi).all() and (pic[1, 1] == want_lo).all() and (pic[0, 1] == 128).all()
    assert np.array_equal(gradient_image(g.transpose(1, 2, 0), "channels_last"), pic)


def test_demo_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--n", "2"]) == 0
    out = capsys.readouterr().out
    assert "accuracy: " in out and "/2" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_00_circle.png", "demo_01_square.png", "demo_grid.png"]


def test_keras_demo_explains_like_the_torch_demo() -> None:
    """The two frameworks' demos share weights: every method's numbers agree (an independent reference)."""
    pytest.importorskip("keras")
    pytest.importorskip("gradsight.demo.keras_model")
    from gradsight.demo.runner import explain_demo

    t, k = explain_demo("torch", n=3), explain_demo("keras", n=3)
    assert k.framework == "keras"
    np.testing.assert_array_equal(t.predictions, k.predictions)
    for method, a in t.explanations.items():
        b = k.explanations[method].attributions
        b = b.transpose(0, 3, 1, 2) if b.ndim == 4 else b  # NHWC -> NCHW
        scale = np.abs(a.attributions).max()
        np.testing.assert_allclose(b / scale, a.attributions / scale, atol=1e-5, err_msg=method)
