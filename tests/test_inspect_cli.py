"""``gradsight embed | filters | units | weights`` end to end: real files out, one-line errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gradsight.cli import main
from gradsight.demo.shapes import CLASSES, generate


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        return np.asarray(im)


def _one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradsight: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ImageFolder layout: three class folders of generated shapes (of another size: the CLI resizes)."""
    root = tmp_path_factory.mktemp("folder")
    data = generate(30, seed=3)
    for i, (im, y) in enumerate(zip(data.images, data.labels)):
        if y < 3:
            (root / CLASSES[y]).mkdir(exist_ok=True)
            Image.fromarray(im).resize((80, 80)).save(root / CLASSES[y] / f"{i}.png")
    (root / CLASSES[0] / "notes.txt").write_text("not an image")
    return root


def test_embed_folder_writes_png_and_csv(tmp_path, image_folder, capsys) -> None:
    out = tmp_path / "plot.png"
    rc = main(["embed", "--model", "demo", "--data", str(image_folder), "--method", "pca", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    px = _read(out)
    assert px.shape == (700, 900, 3) and px.std() > 10
    with (tmp_path / "plot.csv").open() as f:
        rows = list(csv.DictReader(f))
    n = sum(1 for p in image_folder.rglob("*.png"))
    assert len(rows) == n and list(rows[0]) == ["x", "y", "label", "predicted"]
    assert {r["label"] for r in rows} == set(CLASSES[:3])
    assert {r["predicted"] for r in rows} <= set(CLASSES)
    assert np.isfinite([[float(r["x"]), float(r["y"])] for r in rows]).all()
    assert sum(r["label"] == r["predicted"] for r in rows) >= 0.8 * n
    assert "plot.csv" in capsys.readouterr().out


def test_embed_demo_data_tsne(tmp_path, capsys) -> None:
    out = tmp_path / "e.png"
    rc = main(["embed", "--model", "demo", "--n", "60", "--perplexity", "10", "--thumbnails", "0", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert _read(out).std() > 10
    assert len((tmp_path / "e.csv").read_text().splitlines()) == 61


def test_filters_units_weights(tmp_path, capsys) -> None:
    assert main(["filters", "--model", "demo", "--out", str(tmp_path / "f.png")]) == 0
    assert main(["filters", "--model", "demo", "--layer", "conv2", "--out", str(tmp_path / "f2.png")]) == 0
    assert _read(tmp_path / "f.png").std() > 10 and _read(tmp_path / "f2.png").std() > 10
    assert main(["units", "--model", "demo-mlp", "--out", str(tmp_path / "u.png")]) == 0
    assert _read(tmp_path / "u.png").shape[1] == 850
    capsys.readouterr()
    assert main(["weights", "--model", "demo"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["layer", "weight", "shape"]
    assert any(line.split()[:3] == ["conv1", "weight", "16x3x3x3"] for line in out)
    assert out[-1].endswith("trainable values")


def test_errors_are_one_line(tmp_path, capsys) -> None:
    rc = main(["filters", "--model", "demo", "--layer", "classifier", "--out", str(tmp_path / "f.png")])
    _one_line_error(rc, capsys.readouterr().err, "not a 2-D convolution", "conv1")
    rc = main(["units", "--model", "demo", "--out", str(tmp_path / "u.png")])
    _one_line_error(rc, capsys.readouterr().err, "not a dense")
    rc = main(["embed", "--model", "demo", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "e.png")])
    _one_line_error(rc, capsys.readouterr().err, "not a folder")
    rc = main(["embed", "--model", "demo", "--layer", "conv9", "--n", "5", "--out", str(tmp_path / "e.png")])
    _one_line_error(rc, capsys.readouterr().err, "conv9")
    rc = main(["embed", "--model", "demo-mlp", "--out", str(tmp_path / "e.png")])
    _one_line_error(rc, capsys.readouterr().err, "gradsight units")
    assert not list(tmp_path.iterdir())
