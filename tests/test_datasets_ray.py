"""The data-set job on a real local Ray (``ray.init(num_cpus=2)``, one session for the module).

Equality with the local engine (a broken image included), resume after the driver is
SIGKILLed, and a model actor SIGKILLed in the middle of the job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")
ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import gradsight as gs  # noqa: E402
from datasets_helpers import assert_same_run, image_folder  # noqa: E402
from gradsight.datasets import explain_dataset  # noqa: E402

SRC = str(Path(gs.__file__).resolve().parents[1])
JOB = dict(method="gradcam,saliency", quiet=True)


@pytest.fixture(scope="module")
def ray_session() -> Iterator[str]:
    """One local Ray for every test here (start-up costs seconds); yields its address."""
    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ctx.address_info["address"]
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "run"
    explain_dataset("demo", "demo:24", out, batch_size=4, **JOB)
    return out


def _parts(out: Path) -> int:
    return len(list((out / ".state").glob("part-*.parquet"))) if (out / ".state").exists() else 0


def test_ray_engine_equals_local_engine_with_a_failed_image(ray_session: str, tmp_path: Path) -> None:
    root = tmp_path / "images"
    image_folder(root, 10, broken=3)
    local = explain_dataset("demo", str(root), tmp_path / "local", batch_size=4, **JOB)
    remote = explain_dataset("demo", str(root), tmp_path / "ray", batch_size=3, engine="ray", workers=1, **JOB)
    assert local.failed == remote.failed == 1 and remote.exit_status == 3
    assert_same_run(tmp_path / "local", tmp_path / "ray")


def test_ray_job_resumes_after_its_driver_is_killed(ray_session: str, local_reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "gradsight", "run", "--model", "demo", "--data", "demo:24", "--method",
           "gradcam,saliency", "--out", str(out), "--batch-size", "4", "--engine", "ray", "--workers", "1",
           "--address", ray_session, "--quiet"]
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while proc.poll() is None and _parts(out) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert 1 <= _parts(out) < 6
    result = explain_dataset("demo", "demo:24", out, batch_size=4, engine="ray", workers=1, **JOB)
    assert 0 < result.processed < 24 and result.failed == 0
    assert_same_run(out, local_reference)


def _explainer_pids() -> list[int]:
    """Processes of the Ray actors that hold the model (their title names the class)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"MapBatches(BatchExplainer)" in cmdline:
                pids.append(int(entry))
    return pids


def test_ray_job_survives_a_killed_worker(ray_session: str, local_reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    killed: list[int] = []

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 180
        while _parts(out) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in _explainer_pids()[:1]:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    try:
        result = explain_dataset("demo", "demo:24", out, batch_size=4, engine="ray", workers=1, **JOB)
    finally:
        killer.join()
    assert killed, "no model actor was found to kill"
    assert result.failed == 0 and result.processed == 24
    assert_same_run(out, local_reference)


def test_keras_model_on_the_ray_path(ray_session: str, tmp_path: Path) -> None:
    pytest.importorskip("keras")
    kw = dict(framework="keras", batch_size=3, **JOB)
    explain_dataset("demo", "demo:6", tmp_path / "local", **kw)
    explain_dataset("demo", "demo:6", tmp_path / "ray", engine="ray", workers=1, **kw)
    assert_same_run(tmp_path / "local", tmp_path / "ray")
