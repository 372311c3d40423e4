"""The suite runs in a torch-only and in a Keras-only environment.

Each case starts a fresh Python whose import system refuses the other framework (a
``sys.meta_path`` finder raising ``ModuleNotFoundError``, as an absent package does),
collects the whole suite (no module may fail to import) and runs a quick subset of it,
selected by module name, which must pass: the remaining framework's tests run, the other's
skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition('.')[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, Block())
import pytest
sys.exit(pytest.main({args!r}))
"""

CASES = {
    "torch-only": (["tensorflow", "keras", "tf_keras"], ["torch"], "test_torch_errors or test_keras_rules"),
    "keras-only": (
        ["torch", "torchvision", "captum"], ["tensorflow", "keras"],
        "(test_keras_rules and not half and not user_tape) or test_torch_private",
    ),
}


def _pytest(blocked: list[str], args: list[str]) -> subprocess.CompletedProcess[str]:
    code = BLOCKER.format(blocked=set(blocked), args=["-q", "-p", "no:cacheprovider", *args])
    env = dict(os.environ, MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("case", list(CASES))
def test_suite_runs_with_one_framework(case: str) -> None:
    blocked, needed, subset = CASES[case]
    for name in needed:
        pytest.importorskip(name)  # this environment must have the framework the case keeps
    ran = _pytest(blocked, ["-x", "tests", "-k", subset])  # collects everything, runs the subset
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    summary = ran.stdout.strip().splitlines()[-1]
    assert " passed" in summary and " skipped" in summary, summary  # its own tests ran, the other's skipped
