"""The data-set job, local engine: numbers against a hand-written loop, resume after SIGKILL, bad images.

Real PyTorch, real Keras, real PNG files, a real killed process; the Ray engine is in
test_datasets_ray.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

import gradsight as gs  # noqa: E402
from datasets_helpers import assert_same_run, image_folder, read_run  # noqa: E402
from gradsight.cli import main  # noqa: E402
from gradsight.datasets import explain_dataset, open_source  # noqa: E402
from gradsight.datasets._report import class_mean_maps  # noqa: E402
from gradsight.demo.shapes import CLASSES, generate  # noqa: E402
from gradsight.demo.shapes import preprocess as demo_preprocess  # noqa: E402
from gradsight.errors import InputError  # noqa: E402

SRC = str(Path(gs.__file__).resolve().parents[1])


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_demo_run_matches_a_hand_written_loop(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = explain_dataset("demo", "demo:24", out, "gradcam,saliency", batch_size=10, quiet=True)
    assert (result.images, result.ok, result.failed, result.exit_status) == (24, 24, 0, 0)

    from gradsight.demo.model import load_demo_model

    model = load_demo_model()
    data = generate(24, seed=0)
    x = demo_preprocess(data.images)
    logits = gs.predict(model, x)
    prob = _softmax(logits.astype(np.float64))
    ref = {m: gs.explain(model, x, method=m) for m in ("gradcam", "saliency")}

    rows, attrs, heats = read_run(out)
    assert len(rows) == 48
    for r in rows:
        i, m = r["image_id"], r["method"]
        assert r["path"] == f"demo://{i}" and r["label"] == data.labels[i] and r["status"] == "ok"
        assert r["predicted"] == logits[i].argmax() == r["target"]
        assert r["score"] == pytest.approx(logits[i, r["target"]], abs=1e-5)
        assert r["prob"] == pytest.approx(prob[i, r["target"]], abs=1e-6)
        assert r["top5"] == list(np.argsort(-prob[i], kind="stable")[:5])
        np.testing.assert_allclose(attrs[i, m], ref[m].attributions[i], atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(heats[i, m], ref[m].heatmaps[i], atol=1e-3)

    meta = json.loads((out / "run.json").read_text())
    assert meta["format"] == "gradsight-run/1" and meta["framework"] == "torch" and meta["input_size"] == [64, 64]
    assert meta["classes"] == list(CLASSES) and meta["methods"] == ["gradcam", "saliency"]
    correct = logits.argmax(1) == data.labels
    assert f"accuracy on the 24 labelled images: {correct.mean():.2%}" in (out / "summary.md").read_text()
    # per-class mean Grad-CAM of the correctly classified images, against the reference maps
    means = class_mean_maps(out, pq.read_table(out / "manifest.parquet"), "gradcam")
    for c, (mean, n) in means.items():
        pick = correct & (data.labels == c)
        assert n == pick.sum()
        np.testing.assert_allclose(mean, ref["gradcam"].heatmaps[pick].mean(0), atol=1e-3)
    with Image.open(out / "class_means.png") as im:
        assert im.size[0] > 5 * 64
    assert not list(out.rglob("*.tmp"))


def test_same_results_whatever_batch_size_and_worker_count(tmp_path: Path) -> None:
    common = dict(method="smoothgrad,guided_gradcam", samples=3, quiet=True, seed=5)
    explain_dataset("demo", "demo:10", tmp_path / "a", batch_size=10, workers=1, **common)
    explain_dataset("demo", "demo:10", tmp_path / "b", batch_size=3, workers=3, **common)
    assert_same_run(tmp_path / "a", tmp_path / "b")


def test_unreadable_image_fails_its_row_and_retry_failed_redoes_only_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "images"
    truth = image_folder(root, 12, broken=5)
    out = tmp_path / "run"
    args = ["run", "--model", "demo", "--data", str(root), "--out", str(out), "--batch-size", "5", "--quiet"]
    assert main(args) == 3  # finished, one image failed
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["path"].endswith("img005.png")
    assert "cannot read image" in failed[0]["error"] and failed[0]["store"] is None
    assert [r["label"] for r in rows] == truth  # folder names mapped onto the model's class indices
    assert "failed: 1" in (out / "summary.md").read_text()

    assert main(args) == 3  # a plain rerun has nothing left to do and still reports the failure
    bad = next(root.rglob("img005.png"))
    Image.fromarray(generate(12, seed=0).images[5]).save(bad)  # the file is repaired
    assert main(args[:-1] + ["--retry-failed"]) == 0
    assert "12 images, 12 explained; this run 1 images in" in capsys.readouterr().err  # the final line
    explain_dataset("demo", str(root), tmp_path / "fresh", batch_size=5, quiet=True)
    assert_same_run(out, tmp_path / "fresh")


def test_a_changed_command_is_refused_unless_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    explain_dataset("demo", "demo:6", out, "gradcam", quiet=True)
    with pytest.raises(InputError, match=r"methods: \['gradcam'\] -> \['saliency'\]"):
        explain_dataset("demo", "demo:6", out, "saliency", quiet=True)
    assert main(["run", "--model", "demo", "--data", "demo:7", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "data: 'demo:6' -> 'demo:7'" in err and "--overwrite" in err
    explain_dataset("demo", "demo:6", out, "saliency", overwrite=True, quiet=True)
    assert {r["method"] for r in pq.read_table(out / "manifest.parquet").to_pylist()} == {"saliency"}
    import fcntl

    with open(out / ".gradsight.lock", "a") as held:  # as a job running on this folder holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(InputError, match="another gradsight job is writing"):
            explain_dataset("demo", "demo:6", out, "saliency", quiet=True)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        explain_dataset("demo", "demo:6", tmp_path / "mine", quiet=True)


def _wait_parts(out: Path, proc: subprocess.Popen[bytes], n: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((out / ".state").glob("part-*.parquet"))) >= n:
            return
        time.sleep(0.02)


def test_sigkilled_job_resumes_to_the_same_outputs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "gradsight", "run", "--model", "demo", "--data", "demo:40", "--method",
           "gradcam,saliency", "--out", str(out), "--batch-size", "4", "--quiet"]
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for parts in (2, 5):  # killed twice, each time in the middle of the job
        proc = subprocess.Popen(cmd, env=env)
        _wait_parts(out, proc, parts)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    done = len(list((out / ".state").glob("part-*.parquet")))
    assert 5 <= done < 10 and not (out / "manifest.parquet").exists()
    assert subprocess.run(cmd, env=env).returncode == 0
    explain_dataset("demo", "demo:40", tmp_path / "whole", "gradcam,saliency", batch_size=4, quiet=True)
    assert_same_run(out, tmp_path / "whole")
    assert sorted(p.name for p in (out / "attributions").iterdir()) == [f"part-{k:05d}.npz" for k in range(10)]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_top5_float16_and_pngs(tmp_path: Path) -> None:
    explain_dataset("demo", "demo:6", tmp_path / "top1", "gradcam", quiet=True)
    out = tmp_path / "top5"
    explain_dataset("demo", "demo:6", out, "gradcam", target="top5", dtype="float16", png=True, quiet=True)
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    assert len(rows) == 6 * 5
    for i in range(6):
        mine = [r for r in rows if r["image_id"] == i]
        assert [r["rank"] for r in mine] == list(range(5)) and [r["target"] for r in mine] == mine[0]["top5"]
        np.testing.assert_allclose([r["prob"] for r in mine], mine[0]["top5_prob"], atol=1e-6)
    with np.load(out / "attributions" / "part-00000.npz") as z:
        assert z["gradcam"].dtype == np.float16 and z["gradcam"].shape[:2] == (6, 5)
        top5 = z["gradcam"][:, 0].astype(np.float32)
    with np.load(tmp_path / "top1" / "attributions" / "part-00000.npz") as z:
        np.testing.assert_allclose(top5, z["gradcam"], rtol=2e-3, atol=2e-3)  # rank 0 is the top-1 class
    for i in range(6):  # one overlay per rank, each of its own target's heat map
        pictures = []
        for r in [r for r in rows if r["image_id"] == i]:
            assert r["png"] == f"png/gradcam/{i}_{i}_top{r['rank'] + 1}.png"
            with Image.open(out / r["png"]) as im:
                assert im.format == "PNG" and im.size == (64, 64)
                pictures.append(np.asarray(im.convert("RGB"), np.int32))
        assert all(np.abs(p - pictures[0]).max() > 0 for p in pictures[1:])


def test_sources_csv_parquet_glob(tmp_path: Path) -> None:
    import pyarrow as pa

    image_folder(tmp_path / "imgs", 4)
    files = sorted((tmp_path / "imgs").rglob("*.png"))
    (tmp_path / "list.csv").write_text("path,label\n" + "".join(
        f"imgs/{f.parent.name}/{f.name},{f.parent.name}\n" for f in files))
    src = open_source(str(tmp_path / "list.csv"))
    assert src.root == str(tmp_path.resolve()) and src.paths[0] == f"imgs/{files[0].parent.name}/{files[0].name}"
    assert [src.classes[k] for k in src.labels] == [f.parent.name for f in files]
    pq.write_table(pa.table({"path": [str(f) for f in files], "label": [1, 2, 3, 4]}), tmp_path / "list.parquet")
    src = open_source(str(tmp_path / "list.parquet"))
    assert list(src.labels) == [1, 2, 3, 4] and src.classes is None
    src = open_source(str(tmp_path / "imgs" / "*" / "*.png"))
    assert src.root == str((tmp_path / "imgs").resolve()) and len(src) == 4 and (src.labels == -1).all()
    assert open_source("demo:3").paths == ("demo://0", "demo://1", "demo://2")
    with pytest.raises(InputError, match="not a folder"):
        open_source(str(tmp_path / "nothing"))


def test_keras_twin_runs_the_same_job(tmp_path: Path) -> None:
    pytest.importorskip("keras")
    explain_dataset("demo", "demo:8", tmp_path / "torch", "gradcam,saliency", batch_size=5, quiet=True)
    explain_dataset("demo", "demo:8", tmp_path / "keras", "gradcam,saliency", framework="keras", batch_size=5,
                    quiet=True)
    rows_t, attr_t, heat_t = read_run(tmp_path / "torch")
    rows_k, attr_k, heat_k = read_run(tmp_path / "keras")
    assert json.loads((tmp_path / "keras" / "run.json").read_text())["framework"] == "keras"
    for rt, rk in zip(rows_t, rows_k):  # the other backend on the same weights
        assert (rt["predicted"], rt["target"], rt["top5"]) == (rk["predicted"], rk["target"], rk["top5"])
        assert rt["prob"] == pytest.approx(rk["prob"], abs=1e-4)
    for key in heat_t:
        np.testing.assert_allclose(heat_t[key].astype(np.float32), heat_k[key].astype(np.float32), atol=2e-2)
    np.testing.assert_allclose(attr_t[0, "saliency"], attr_k[0, "saliency"].transpose(2, 0, 1), atol=1e-3, rtol=1e-2)


def test_target_label_explains_the_true_class_and_fails_unlabelled_images(tmp_path: Path) -> None:
    root = tmp_path / "images"
    truth = image_folder(root, 6)
    Image.fromarray(generate(1, seed=9).images[0]).save(root / "loose.png")  # no class folder: no label
    result = explain_dataset("demo", str(root), tmp_path / "run", "gradcam", target="label", quiet=True)
    assert (result.images, result.failed, result.exit_status) == (7, 1, 3)
    rows = pq.read_table(tmp_path / "run" / "manifest.parquet").to_pylist()
    loose = next(r for r in rows if r["path"] == "loose.png")
    assert loose["status"] == "failed" and "no label" in loose["error"] and loose["label"] is None
    labelled = [r for r in rows if r["path"] != "loose.png"]
    assert [r["label"] for r in labelled] == truth and all(r["target"] == r["label"] for r in labelled)


def test_importing_gradsight_loads_neither_pyarrow_nor_ray() -> None:
    code = ("import sys, gradsight as gs, gradsight.datasets, gradsight.cli; gradsight.cli.build_parser(); "
            "gs.explain_dataset; print([m for m in ('torch', 'tensorflow', 'ray', 'pyarrow') if m in sys.modules])")
    env = dict(os.environ, PYTHONPATH=SRC)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    env = dict(os.environ, PYTHONPATH=SRC)
    cmd = [sys.executable, "-m", "gradsight", "run", "--model", "demo", "--data", "demo:8", "--batch-size", "2"]

    def stderr_of(extra: list[str], tty: bool) -> str:
        if not tty:
            return subprocess.run(cmd + extra, env=env, capture_output=True, text=True, check=True).stderr
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
        proc = subprocess.Popen(cmd + extra, env=env, stdout=subprocess.DEVNULL, stderr=follower)
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the terminal closed: the job ended
                break
            if not data:
                break
            chunks.append(data)
        os.close(leader)
        assert proc.wait() == 0
        return b"".join(chunks).decode(errors="replace")

    on_tty = stderr_of(["--out", str(tmp_path / "a")], tty=True)
    assert "img/s" in on_tty and "8/8" in on_tty and "done: 8 images, 8 explained" in on_tty
    piped = stderr_of(["--out", str(tmp_path / "b")], tty=False)
    assert "img/s" not in piped and "done: 8 images, 8 explained" in piped  # no bar in a log file
    assert stderr_of(["--out", str(tmp_path / "c"), "--quiet"], tty=True) == ""
