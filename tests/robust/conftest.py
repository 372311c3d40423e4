"""Fixtures of the robustness tests: real PNG files of the demo's shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from gradsight.demo.shapes import generate


@pytest.fixture()
def pngs(tmp_path: Path) -> list[Path]:
    """Three 64x64 shapes images as PNG files in tmp_path/in."""
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for i, im in enumerate(generate(3, seed=11).images):
        paths.append(folder / f"img{i}.png")
        Image.fromarray(im).save(paths[-1])
    return paths
