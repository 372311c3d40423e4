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


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These tests run many small calls: torch's intra-op threads only contend on a shared 2-core machine
    (1.6 s per call with the default threads under load, 0.1 s with one). Restored afterwards."""
    try:
        import torch
    except ImportError:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
