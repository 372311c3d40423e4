"""The local engine's core sharing (``datasets/_cores.py``): the trial of one model thread fewer,
the choice it makes from the measured times, and the user's torch threads restored after the job,
also after a Ctrl-C in the middle of the trial.

Real torch threads (``torch.get_num_threads`` seen inside a real model's forward), real jobs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pyarrow")

from datasets_helpers import assert_same_run  # noqa: E402
from gradsight.backends import backend_for  # noqa: E402
from gradsight.datasets import explain_dataset  # noqa: E402
from gradsight.datasets._cores import BLOCK, KEEP, MIN_PARTS, ROUNDS, CoreShare  # noqa: E402
from gradsight.demo.model import load_demo_model  # noqa: E402

USER = 3  # the user's torch threads in these tests (any count works on any machine)

# A demo model that notes the torch threads of every forward pass, and can stop like a Ctrl-C.
SPY = """
import torch
from gradsight.demo.model import load_demo_model

SEEN = []
STOP_AT = [None]


class Spy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = load_demo_model()

    def forward(self, x):
        if x.shape[0] > 1:  # a part (the preflight and the class count use one blank image)
            SEEN.append(torch.get_num_threads())
            if STOP_AT[0] is not None and len(SEEN) > STOP_AT[0]:
                raise KeyboardInterrupt
        return self.net(x)


def build():
    return Spy()
"""


@pytest.fixture()
def user_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(USER)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def spy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    name = f"spynet_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(SPY)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)
    yield f"{name}:build", module
    sys.modules.pop(name, None)


def _plan(user: int) -> list[int]:
    """Threads per part during the trial, written out: the first part, then user/fewer blocks."""
    fewer = user - 1
    assert (BLOCK, ROUNDS) == (2, 2)
    return [user, user, user, fewer, fewer, user, user, fewer, fewer]


def test_the_trial_keeps_one_thread_fewer_only_when_it_is_clearly_faster(user_threads: None) -> None:
    backend = backend_for(load_demo_model())
    for user_time, fewer_time, chosen in ((1.0, 0.5, USER - 1), (1.0, 0.97, USER), (0.5, 1.0, USER)):
        seen = []
        with CoreShare(backend, parts=MIN_PARTS) as cores:
            for k in range(MIN_PARTS):
                seen.append(torch.get_num_threads())
                threads = torch.get_num_threads()
                cores.step(0.0 if k == 0 else (user_time if threads == USER else fewer_time))
        assert torch.get_num_threads() == USER  # restored
        assert seen == _plan(USER) + [chosen] * (MIN_PARTS - len(_plan(USER)))
        assert cores.chosen == chosen
        # the timed parts are the last of each block: two per setting
        assert cores.timed == pytest.approx({USER: 2 * user_time, USER - 1: 2 * fewer_time})


def test_the_trial_comes_again_after_keep_parts_and_may_choose_otherwise(user_threads: None) -> None:
    backend = backend_for(load_demo_model())
    trial = _plan(USER)[1:]
    parts = 1 + 2 * (len(trial) + KEEP)
    seen = []
    with CoreShare(backend, parts=parts) as cores:
        for k in range(parts):
            threads = torch.get_num_threads()
            seen.append(threads)
            second = k > len(trial) + KEEP  # the machine got busier: one thread fewer no longer pays
            faster = USER if second else USER - 1
            cores.step(0.5 if threads == faster else 1.0)
    assert seen == [USER] + trial + [USER - 1] * KEEP + trial + [USER] * KEEP
    assert torch.get_num_threads() == USER


def test_no_trial_for_a_short_job_one_thread_or_a_framework_that_cannot_change_it(user_threads: None) -> None:
    backend = backend_for(load_demo_model())
    for parts in (0, MIN_PARTS - 1):
        with CoreShare(backend, parts=parts) as cores:
            for _ in range(parts):
                cores.step(1.0)
                assert torch.get_num_threads() == USER
    torch.set_num_threads(1)
    with CoreShare(backend, parts=MIN_PARTS) as cores:
        for _ in range(MIN_PARTS):
            cores.step(1.0)
            assert torch.get_num_threads() == 1
    assert cores.plan == []

    pytest.importorskip("keras")
    from gradsight.backends.keras import KerasBackend  # TensorFlow sizes its thread pools once, at start

    torch.set_num_threads(USER)
    assert KerasBackend().compute_threads() is None
    with CoreShare(KerasBackend(), parts=MIN_PARTS) as cores:
        for _ in range(MIN_PARTS):
            cores.step(1.0)
    assert cores.plan == [] and cores.chosen is None and torch.get_num_threads() == USER


def test_a_job_runs_the_trial_restores_the_threads_and_gives_the_same_outputs(
    tmp_path: Path, user_threads: None, spy: tuple[str, object],
) -> None:
    spec, module = spy
    n = 4 * MIN_PARTS
    kw = {"size": 64, "preprocess": "demo", "batch_size": 4, "quiet": True}
    explain_dataset(spec, f"demo:{n}", tmp_path / "job", "saliency", **kw)
    assert torch.get_num_threads() == USER
    seen = list(module.SEEN)  # type: ignore[attr-defined]
    assert len(seen) == MIN_PARTS  # one forward per part
    assert seen[:len(_plan(USER))] == _plan(USER)
    rest = set(seen[len(_plan(USER)):])
    assert len(rest) == 1 and rest <= {USER, USER - 1}  # the trial's winner, kept
    # Same results as a job on a single thread throughout: the reference is the user's setting of 1.
    torch.set_num_threads(1)
    explain_dataset(spec, f"demo:{n}", tmp_path / "one", "saliency", **kw)
    assert torch.get_num_threads() == 1
    assert set(module.SEEN[MIN_PARTS:]) == {1}  # type: ignore[attr-defined]
    assert_same_run(tmp_path / "job", tmp_path / "one")


def test_the_threads_come_back_after_a_ctrl_c_in_the_trial(
    tmp_path: Path, user_threads: None, spy: tuple[str, object],
) -> None:
    spec, module = spy
    module.STOP_AT[0] = 4  # type: ignore[attr-defined]  # the fifth part runs on one thread fewer
    with pytest.raises(KeyboardInterrupt):
        explain_dataset(spec, f"demo:{4 * MIN_PARTS}", tmp_path / "job", "saliency", size=64, preprocess="demo",
                        batch_size=4, quiet=True)
    assert module.SEEN[-1] == USER - 1  # type: ignore[attr-defined]
    assert torch.get_num_threads() == USER
    assert np.all(np.asarray(module.SEEN[:3]) == USER)  # type: ignore[attr-defined]
