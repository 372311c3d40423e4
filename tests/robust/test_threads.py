"""Many threads, one model: every call gets exactly its single-thread result (issue 9, finding 1).

Before the per-model lock (gradsight/_locks.py) two threads running guided backprop on
one PyTorch model got wrong maps (another thread's hook or rule), RuleNotAppliedError,
and a train-mode model ended in eval mode.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import gradsight as gs

METHODS = list(gs.METHODS)
THREADS = 8
ROUNDS = 2  # calls per (thread, method)


def _jobs():
    """(method, eval_mode) pairs, spread over the threads so that modes mix at every moment."""
    return [(m, ev) for m in METHODS for ev in (True, False)]


def _opts(method):
    return {"samples": 4, "seed": 0} if method == "smoothgrad" else {}


def _hammer(model, x, reference, jobs, rounds=ROUNDS):
    """Run every job ROUNDS times on THREADS threads at once; return the failures."""
    failures: list[str] = []
    barrier = threading.Barrier(THREADS)

    def worker(t: int) -> None:
        order = jobs[t % len(jobs):] + jobs[: t % len(jobs)]  # each thread starts elsewhere
        barrier.wait()
        for _ in range(rounds):
            for method, ev in order:
                try:
                    e = gs.explain(model, x, method=method, target=1, eval_mode=ev, **_opts(method))
                except Exception as exc:  # noqa: BLE001 - any error here is a finding
                    failures.append(f"{method} eval_mode={ev}: {type(exc).__name__}: {exc}")
                    continue
                ref = reference[(method, ev)]
                if not np.array_equal(e.attributions, ref.attributions) or not np.array_equal(e.scores, ref.scores):
                    diff = np.abs(e.attributions - ref.attributions).max()
                    failures.append(f"{method} eval_mode={ev}: differs from the single-thread result by {diff:.3g}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return failures


def test_torch_threads_same_model_get_single_thread_results():
    torch = pytest.importorskip("torch")
    from gradsight.demo.model import load_demo_model
    from gradsight.demo.shapes import generate, preprocess

    torch.manual_seed(0)
    model = load_demo_model()
    model.train()  # mixed modes: eval_mode=True flips to eval, eval_mode=False keeps train (BatchNorm batch stats)
    model.bn2.eval()  # a module whose mode differs from its parent's must come back as it was
    x = preprocess(generate(3, seed=7).images)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = {n: m.training for n, m in model.named_modules()}
    hooks = {n: (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for n, m in model.named_modules()}
    reference = {(m, ev): gs.explain(model, x, method=m, target=1, eval_mode=ev, **_opts(m)) for m, ev in _jobs()}

    failures = _hammer(model, x, reference, _jobs())
    assert not failures, f"{len(failures)} wrong calls, e.g. {failures[:3]}"
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for n, m in model.named_modules()} == hooks
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_torch_backward_rule_block_waits_for_other_threads():
    torch = pytest.importorskip("torch")
    from gradsight.demo.model import load_demo_model
    from gradsight.demo.shapes import generate, preprocess

    model = load_demo_model()
    x = torch.from_numpy(preprocess(generate(2, seed=3).images))
    plain = gs.saliency(model, x.numpy(), target=1).attributions
    guided_ref = gs.guided_backprop(model, x.numpy(), target=1).attributions
    logits = gs.predict(model, x.numpy())
    errors: list[str] = []

    def in_block() -> None:
        try:
            for _ in range(10):
                with gs.backward_rule(model, "guided"):
                    xi = x.clone().requires_grad_(True)
                    model(xi)[:, 1].sum().backward()
                    # re-entrant: a gradsight call inside the block on the same thread does not deadlock
                    inner = gs.predict(model, x.numpy())
                if not np.allclose(xi.grad.numpy(), guided_ref, atol=1e-6) or not np.array_equal(inner, logits):
                    errors.append("guided block saw another thread's rule")
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{type(exc).__name__}: {exc}")

    def outside() -> None:
        try:
            for _ in range(10):
                if not np.array_equal(gs.saliency(model, x.numpy(), target=1).attributions, plain):
                    errors.append("saliency saw the guided rule of the other thread's block")
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=f) for f in (in_block, outside, in_block, outside)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[:3]


def test_different_models_do_not_share_a_lock():
    pytest.importorskip("torch")
    from gradsight._locks import model_lock
    from gradsight.demo.model import load_demo_model

    a, b = load_demo_model(), load_demo_model()
    assert model_lock(a) is model_lock(a)
    assert model_lock(a) is not model_lock(b)
    with model_lock(a):  # held by this thread: another thread can still take b's
        got = []

        def other() -> None:
            ok = model_lock(b).acquire(timeout=5)
            got.append(ok)
            if ok:
                model_lock(b).release()

        th = threading.Thread(target=other)
        th.start()
        th.join()
        assert got == [True]


def test_keras_threads_same_model_get_single_thread_results():
    pytest.importorskip("tensorflow")
    from gradsight.demo.keras_model import load_keras_demo_model
    from gradsight.demo.shapes import generate, preprocess

    model = load_keras_demo_model()
    x = preprocess(generate(3, seed=7).images, layout="NHWC")
    weights = [w.copy() for w in model.get_weights()]
    reference = {(m, ev): gs.explain(model, x, method=m, target=1, eval_mode=ev, **_opts(m)) for m, ev in _jobs()}

    failures = _hammer(model, x, reference, _jobs(), rounds=1)  # 96 calls; the Keras backend is slower per call
    assert not failures, f"{len(failures)} wrong calls, e.g. {failures[:3]}"
    for w, saved in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(w, saved)


def test_detection_and_inspect_sessions_hold_the_model_lock():
    """Features above the api that open a backend session take the same lock as explain."""
    pytest.importorskip("torch")
    from gradsight import inspect
    from gradsight._locks import model_lock
    from gradsight.demo.detector import load_demo_detector
    from gradsight.demo.shapes_detect import generate
    from gradsight.detect import explain_detections

    det = load_demo_detector()
    x = (generate(1, seed=7).images.astype(np.float32) / 255).transpose(0, 3, 1, 2)
    got: list[bool] = []

    def probe() -> None:  # another thread tries the lock while the feature runs in this one
        got.append(model_lock(det).acquire(blocking=False))
        if got[-1]:
            model_lock(det).release()

    def on_forward(*_: object) -> None:
        t = threading.Thread(target=probe)
        t.start()
        t.join()

    hook = det.register_forward_hook(on_forward)
    try:
        explain_detections(det, x, "saliency")
        inspect.activations(det, x, layer="auto")
    finally:
        hook.remove()
    assert got and not any(got), got  # every forward ran while this thread held the model's lock
