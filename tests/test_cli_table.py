"""``gradsight explain --data``: a table's rows (CSV or .npy) explained into bar-chart PNGs."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

import gradsight as gs
from gradsight.cli import main
from gradsight.demo.mlp import make_moons
from gradsight.models import load_model

pytest.importorskip("torch")  # demo-mlp is a PyTorch model


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    return make_moons(4, seed=3)[0]


def _top_features(out: str) -> list[list[tuple[str, float]]]:
    rows = re.findall(r"top features: (.*?) ->", out)
    return [[(n, float(v)) for n, v in re.findall(r"(\w+) ([-+][\d.e+-]+)", r)] for r in rows]


def test_csv_rows_explained_like_the_api(points, tmp_path, capsys):
    csv = tmp_path / "moons.csv"
    lines = ["id,y,label,x"] + [f"{i},{p[1]},{i % 2},{p[0]}" for i, p in enumerate(points)]
    csv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["explain", "--model", "demo-mlp", "--data", str(csv), "--columns", "x,y", "--method",
                 "saliency,input_x_gradient", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    model, _ = load_model("demo-mlp")
    ref = gs.saliency(model, points, logits=False).attributions  # --columns x,y puts the features in model order
    found = _top_features(printed)
    assert len(found) == 4
    for i, row in enumerate(found):
        got = dict(row)
        np.testing.assert_allclose([got["x"], got["y"]], ref[i], rtol=1e-3)
        assert row[0][0] == ("x" if abs(ref[i, 0]) >= abs(ref[i, 1]) else "y")  # largest first
    for i in range(4):
        for m in ("saliency", "input_x_gradient"):
            with Image.open(out / f"moons_row{i}_{m}.png") as im:
                pix = np.asarray(im.convert("RGB"))
            assert len(np.unique(pix.reshape(-1, 3), axis=0)) > 5  # bars and text, not blank


def test_npy_with_names_and_errors(points, tmp_path, capsys):
    npy = tmp_path / "pts.npy"
    np.save(npy, points)
    assert main(["explain", "--model", "demo-mlp", "--data", str(npy), "--columns", "a,b", "--method", "smoothgrad",
                 "--samples", "3", "--top", "1", "--out", str(tmp_path / "o")]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [f"pts_row{i}_smoothgrad.png" for i in range(4)]
    assert all(len(r) == 1 for r in _top_features(capsys.readouterr().out))
    # CAM methods on a table: the reason; unknown columns: the ones there are
    assert main(["explain", "--model", "demo-mlp", "--data", str(npy), "--method", "gradcam", "--out",
                 str(tmp_path / "c")]) == 2
    assert "a table has none" in capsys.readouterr().err
    csv = tmp_path / "t.csv"
    csv.write_text("p,q\n1,2\n")
    assert main(["explain", "--model", "demo-mlp", "--data", str(csv), "--columns", "p,z", "--out",
                 str(tmp_path / "d"), "--method", "saliency"]) == 2
    assert "z not in" in capsys.readouterr().err
    assert main(["explain", "--model", "demo-mlp", "--out", str(tmp_path / "e")]) == 2
    assert "--data FILE" in capsys.readouterr().err
