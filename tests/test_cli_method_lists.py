"""``gradsight explain --method`` with a comma-separated list and the groups: real PNG files out,
each tile the picture the api gives for that method."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gradsight.cli import main
from gradsight.demo.shapes import generate


@pytest.fixture(scope="module")
def png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "shape.png"
    Image.fromarray(generate(1, seed=11).images[0]).save(path)
    return path


def _tiles(path: Path, k: int) -> list[np.ndarray]:
    with Image.open(path) as im:
        grid = np.asarray(im.convert("RGB")).astype(int)
    return [grid[-132:-4, 4 + j * 132: 4 + j * 132 + 128] for j in range(k)]


def test_comma_list_writes_one_grid_with_a_tile_per_method(png: Path, tmp_path: Path) -> None:
    assert main(["explain", str(png), "--model", "demo", "--method", "layercam,integrated_gradients,eigencam", "--plain",
                 "--out", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["shape_grid.png"]
    with Image.open(tmp_path / "shape_grid.png") as im:
        assert 4 * 128 < im.size[0] < 4 * 140  # input + three methods
    tiles = _tiles(tmp_path / "shape_grid.png", 4)
    for j in range(1, 4):
        assert np.abs(tiles[j] - tiles[0]).mean() > 5


def test_cams_group_and_single_new_method(png: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(png), "--model", "demo", "--method", "cams", "--plain", "--out", str(tmp_path / "c")]) == 0
    with Image.open(tmp_path / "c" / "shape_grid.png") as im:
        assert 8 * 128 < im.size[0] < 8 * 140  # input + seven CAMs
    assert main(["explain", str(png), "--model", "demo", "--method", "scorecam", "--out", str(tmp_path / "s")]) == 0
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["shape_scorecam.png"]


def test_unknown_name_in_a_list_is_a_one_line_error(png: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(png), "--model", "demo", "--method", "gradcam,layer_cam", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "layercam" in err[0] and err[0].startswith("gradsight: error: ")
