"""The viewer on a real top-5 run: each image shows its top-ranked row (the predicted class)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("pyarrow")

import gradsight as gs  # noqa: E402
from gradsight.serve._run import RunDir  # noqa: E402


def test_viewer_keeps_rank_zero_of_a_top5_run(tmp_path):
    gs.explain_dataset("demo", "demo:4", tmp_path / "run", "gradcam", target="top5", batch_size=4, quiet=True)
    run = RunDir(tmp_path / "run")
    assert len(run.items) == 4
    for item in run.items.values():
        shown = item["methods"]["gradcam"]
        assert shown["target"] == item["predicted"] == item["top5"][0]
        heat = run.heatmap(item["image_id"], "gradcam")
        assert np.isfinite(heat).all()
