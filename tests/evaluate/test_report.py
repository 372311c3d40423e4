"""``gradsight evaluate`` writes what ``gradsight.evaluate.compare`` computes; bad input exits 2;
the bootstrap interval against a hand-written resampling; importing gradsight stays light."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("scipy")

import gradsight as gs
from gradsight.cli import main
from gradsight.demo.model import load_demo_model
from gradsight.demo.shapes import CLASSES, generate, preprocess


def test_bootstrap_interval_by_hand() -> None:
    v = np.random.default_rng(3).normal(size=40)
    rng = np.random.default_rng(0)
    means = np.array([v[rng.integers(0, 40, 40)].mean() for _ in range(1000)])
    assert gs.evaluate.bootstrap_ci(v) == pytest.approx((np.quantile(means, 0.025), np.quantile(means, 0.975)))


def test_cli_writes_the_api_numbers(tmp_path, capsys) -> None:
    argv = ["evaluate", "--model", "demo", "--n", "3", "--methods", "gradcam", "--step", "1024",
            "--metrics", "deletion,insertion,road,pointing,sanity", "--sanity-images", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| random |" in out and "| gradcam |" in out
    for name in ("report.md", "summary.csv", "per_class.csv", "curves.png", "sanity.csv", "sanity.png"):
        assert (tmp_path / name).stat().st_size > 0
    with open(tmp_path / "summary.csv") as f:
        rows = {(r["method"], r["metric"]): r for r in csv.DictReader(f)}

    data = generate(3, seed=1)
    res = gs.evaluate.compare(load_demo_model(), preprocess(data.images), ["gradcam"],
                              ["deletion", "insertion", "road", "pointing"], labels=data.labels, masks=data.masks,
                              class_names=CLASSES, step=1024)  # fmt: skip
    for r in res.table():
        assert float(rows[(r["method"], r["metric"])]["mean"]) == pytest.approx(r["mean"], abs=1e-9)
    assert {r["method"] for r in res.table()} == {"gradcam", "random"}
    with open(tmp_path / "per_class.csv") as f:
        per_class = list(csv.DictReader(f))
    assert {r["class"] for r in per_class} <= set(CLASSES)
    # per-class means weighted by counts give the overall mean
    sel = [r for r in per_class if r["method"] == "gradcam" and r["metric"] == "deletion_auc"]
    overall = sum(float(r["mean"]) * int(r["n"]) for r in sel) / sum(int(r["n"]) for r in sel)
    assert overall == pytest.approx(float(rows[("gradcam", "deletion_auc")]["mean"]), abs=1e-6)


@pytest.mark.parametrize("argv,match", [
    (["--metrics", "deletion,faithfulness"], "unknown metric 'faithfulness'"),
    (["--methods", "gradcamm"], "unknown method 'gradcamm'"),
    (["--n", "0"], "--n must be at least 1"),
    (["--layer", "conv44"], "conv4"),
])  # fmt: skip
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv: list[str], match: str) -> None:
    assert main(["evaluate", "--model", "demo", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_importing_gradsight_does_not_import_the_evaluation_stack() -> None:
    code = ("import sys, gradsight; print(sorted(m for m in ('scipy', 'skimage', 'torch', 'tensorflow') "
            "if m in sys.modules))")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    code = "import sys, gradsight; gradsight.evaluate; print('torch' in sys.modules, 'tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False False"
