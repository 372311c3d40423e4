"""The local engine's reader processes: same pixels as reading in the job's process, a dead
reader's parts read in the job's process, readers scheduled as idle work that end with a killed job.

Real child processes, real PNG files, a real SIGKILL.
"""

from __future__ import annotations

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

import gradsight as gs  # noqa: E402
from gradsight.datasets._readers import ReaderPool  # noqa: E402
from gradsight.datasets._sources import decode_batch, open_source  # noqa: E402
from gradsight.demo.shapes import image_at  # noqa: E402

SRC = str(Path(gs.__file__).resolve().parents[1])


def _items(spec: str, ids: list[int]) -> tuple[dict[str, object], str | None]:
    source = open_source(spec)
    idx = np.asarray(ids, np.int64)
    items = {"image_id": idx, "path": np.array([source.paths[i] for i in ids], dtype=object),
             "label": source.labels[idx], "part": np.zeros(len(ids), np.int64)}
    return items, source.root


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), k


def test_readers_decode_exactly_as_this_process(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "circle"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(image_at(i, size=80)[0]).save(folder / f"{i}.png")  # resized to 64 on reading
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    files, root = _items(str(tmp_path / "data"), [0, 1, 2, 3])
    demo, _ = _items("demo:20", list(range(7, 19)))
    with ReaderPool(2, root, 64, 0) as readers:
        got_files = readers.submit(files).result()
        with ReaderPool(1, None, 64, 3) as demo_readers:
            got_demo = demo_readers.submit(demo).result()
        assert all(p.poll() is None for p in readers.procs)
    _assert_same(got_files, decode_batch(files, root, 64, 0))
    _assert_same(got_demo, decode_batch(demo, None, 64, 3))
    assert [bool(e) for e in got_files["error"]] == [False, False, False, True]  # broken.png sorts first
    assert got_demo["label"].tolist() == [image_at(i, seed=3)[1] for i in range(7, 19)]
    assert all(p.returncode is not None for p in readers.procs)  # gone with the pool


def test_a_dead_reader_parts_are_read_in_this_process() -> None:
    items, _ = _items("demo:8", list(range(8)))
    with ReaderPool(1, None, 64, 0) as readers:
        readers.procs[0].kill()
        readers.procs[0].wait()
        first = readers.submit(items).result()
        second = readers.submit(items).result()
    expected = decode_batch(items, None, 64, 0)
    _assert_same(first, expected)
    _assert_same(second, expected)


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"gradsight.datasets._readers import _main" in cmdline:
                out.append(int(entry))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="lists processes through /proc (Linux)")
def test_readers_run_as_idle_work_and_end_with_a_killed_job(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "gradsight", "run", "--model", "demo", "--data", "demo:4000", "--method",
           "saliency", "--out", str(out), "--batch-size", "4", "--workers", "2", "--quiet"]
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(cmd, env=env)
    readers: list[int] = []
    deadline = time.monotonic() + 120
    while len(readers) < 2 or not list((out / ".state").glob("part-*.parquet")):
        assert proc.poll() is None and time.monotonic() < deadline, "the job ended or never started its readers"
        readers = _children(proc.pid)
        time.sleep(0.05)
    assert [os.sched_getscheduler(r) for r in readers] == [os.SCHED_IDLE] * 2  # idle work: cores the job leaves
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    deadline = time.monotonic() + 30
    alive = readers
    while alive and time.monotonic() < deadline:
        alive = [r for r in alive if Path(f"/proc/{r}").exists() and "Z" not in Path(f"/proc/{r}/stat").read_text()
                 .rsplit(")", 1)[1].split()[:1]]
        time.sleep(0.05)
    assert not alive, f"reader processes {alive} outlived the killed job"
