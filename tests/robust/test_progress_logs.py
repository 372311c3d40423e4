"""Progress bars only on a terminal, and TensorFlow's C++ log lines hidden unless --debug (issue 9, finding 6)."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gradsight as gs
from gradsight import _progress

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(PYTHONPATH=SRC, MPLBACKEND="Agg", **extra)
    return env


def _run_on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``python -m gradsight ARGS`` with stderr on a pseudo-terminal; return (status, what the terminal got)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    env = _env(GRADSIGHT_PROGRESS_DELAY="0")  # show at once: the test need not run for 2 s
    proc = subprocess.Popen([sys.executable, "-m", "gradsight", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=300), b"".join(chunks).decode(errors="replace")


def test_smoothgrad_reports_its_samples():
    torch = pytest.importorskip("torch")
    from gradsight.demo.model import load_demo_model

    seen: list[tuple[str, int, int]] = []
    x = torch.zeros(2, 3, 64, 64).normal_(generator=torch.Generator().manual_seed(0))
    with _progress.reporting(lambda *a: seen.append(a)):
        gs.smoothgrad(load_demo_model(), x.numpy(), samples=10, batch_size=6, seed=0)
    assert [s[1] for s in seen] == [3, 6, 9, 10] and {s[2] for s in seen} == {10}
    gs.smoothgrad(load_demo_model(), x.numpy(), samples=2, seed=0)  # no callback installed: nothing reported
    assert len(seen) == 4


def test_progress_bar_on_a_terminal_for_a_long_smoothgrad_and_quiet_turns_it_off(tmp_path):
    pytest.importorskip("torch")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    args = ["explain", "a.png", "--model", "demo", "--method", "smoothgrad", "--samples", "64"]
    rc, tty = _run_on_a_terminal([*args, "--out", "o1"], tmp_path)
    assert rc == 0, tty
    assert "smoothgrad:" in tty and "/64" in tty and "samples/s" in tty, tty  # the bar of the samples
    rc, tty = _run_on_a_terminal([*args[:5], "saliency", "--out", "o2", "--quiet"], tmp_path)
    assert rc == 0 and "samples/s" not in tty and "%|" not in tty, tty


def test_tensorflow_native_logs_only_with_debug(tmp_path):
    pytest.importorskip("tensorflow")
    cmd = [sys.executable, "-m", "gradsight", "layers", "--model", "demo", "--framework", "keras"]
    quiet = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, check=False, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "", quiet.stderr
    loud = subprocess.run([*cmd, "--debug"], cwd=tmp_path, env=_env(), capture_output=True, text=True, check=False, timeout=300)
    assert loud.returncode == 0 and "oneDNN" in loud.stderr  # the lines exist: the quiet run really hid them


def test_importing_gradsight_changes_no_logging_setting():
    code = (
        "import logging, os, sys\n"
        "env, root = dict(os.environ), (logging.root.level, list(logging.root.handlers))\n"

        "import gradsight, gradsight.render, gradsight.cli\n"
        "assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items())\n"
        "assert (logging.root.level, list(logging.root.handlers)) == root\n"

        "assert sys.stderr.fileno() == 2\n"
    )
    run = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 0, run.stderr


def test_embed_draws_no_bar_when_stderr_is_not_a_terminal(tmp_path, capsys):
    pytest.importorskip("torch")
    from gradsight.cli import main

    assert main(["embed", "--model", "demo", "--n", "6", "--method", "pca", "--out", str(tmp_path / "e.png")]) == 0
    err = capsys.readouterr().err
    assert "activations" not in err and "batch" not in err, err  # before: a tqdm bar in logs and pipes
