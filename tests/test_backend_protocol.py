"""The backend protocol and the shared gradient pipeline, framework-free.

A fake backend written in numpy (a two-layer MLP with hand-written backward passes)
drives :func:`gradsight.backends.pipeline.gradients`, so the pipeline's own logic (one
forward, the two-pass rule switch, the re-run after an in-place change, the errors) is
checked against hand-computed gradients without PyTorch or TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

import gradsight as gs
from gradsight.backends import pipeline
from gradsight.backends.base import AUTO, Captured, LayerChanged, LayerRef, Ops, Primitives, Request
from gradsight.rules import RULES, RuleReport
from gradsight.targets import ClassTarget


class NumpyOps(Ops):
    def numpy(self, t): return np.asarray(t)
    def is_tensor(self, t): return isinstance(t, np.ndarray)
    def detach(self, t): return t
    def shape(self, t): return tuple(t.shape)
    def batch_size(self, t): return len(t)
    def argmax(self, t, axis): return t.argmax(axis)
    def as_index(self, idx, like): return np.asarray(idx)
    def take_rows(self, t, idx): return t[np.arange(len(t)), idx]
    def mean(self, t, axis, keepdims=False): return t.mean(axis, keepdims=keepdims)
    def sum(self, t, axis, keepdims=False): return t.sum(axis, keepdims=keepdims)
    def relu(self, t): return np.maximum(t, 0)
    def step(self, t): return (t > 0).astype(t.dtype)
    def from_numpy(self, a, like): return a.astype(like.dtype)
    def tile_batch(self, t, k): return np.concatenate([t] * k)
    def reshape(self, t, shape): return t.reshape(shape)
    def sigmoid(self, t): return 1 / (1 + np.exp(-t))
    def concat(self, ts, axis=0): return np.concatenate(ts, axis)
    def topk(self, t, k): return np.argsort(-t, 1, kind="stable")[:, :k]
    def take_along(self, t, idx): return np.take_along_axis(t, idx, 1)
    def min(self, t, axis, keepdims=False): return t.min(axis, keepdims=keepdims)
    def max(self, t, axis, keepdims=False): return t.max(axis, keepdims=keepdims)
    def safe_div(self, a, b): return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)
    def resize(self, maps, size): return gs.maps.resize(maps, size)
    def principal_projection(self, a, channel_axis): raise NotImplementedError  # no CAM method runs here


class MLP:
    """out = relu(x @ w1) @ w2; the layer "hidden" is the relu's output."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.w1, self.w2 = rng.normal(size=(5, 7)), rng.normal(size=(7, 3))


class NumpyPrimitives(Primitives):
    def __init__(self, changed_once: bool = False, path: bool = True) -> None:
        self.ops = NumpyOps()
        self.changed_once, self.path = changed_once, path
        self.forwards = 0
        self.vjps: list[tuple[str, list[str]]] = []  # (rule in force, what was differentiated)

    @contextmanager
    def record(self, x: np.ndarray) -> Iterator[np.ndarray]:
        self.x, self.rule, self.cap = x, None, None
        yield x

    def forward(self, model: MLP, x: np.ndarray) -> np.ndarray:
        self.forwards += 1
        self.pre = x @ model.w1
        self.hidden = np.maximum(self.pre, 0)
        if self.rule is not None:
            self.report.overridden["relu"] += 1
        self.model = model
        return self.hidden @ model.w2

    @contextmanager
    def rule_scope(self, model: MLP, rule: Any) -> Iterator[RuleReport]:
        self.rule = rule
        self.report = RuleReport(rule)
        yield self.report

    @contextmanager
    def capture(self, model: MLP, layer: LayerRef) -> Iterator[Captured]:
        prims = self

        class Cap(Captured):
            def get(self, call: int) -> tuple[np.ndarray, str]:
                if layer.auto and prims.changed_once:
                    prims.changed_once = False
                    raise LayerChanged(LayerRef("hidden", "obj"))
                return prims.hidden, "hidden"

        yield Cap()

    def vjp(self, scores: np.ndarray, wrt: list[np.ndarray], retain: bool) -> list[np.ndarray | None]:
        if not self.path:
            return [None] * len(wrt)
        rule = getattr(self.rule, "current", self.rule) or RULES["plain"]
        self.vjps.append((rule.name, ["x" if w is self.x else "hidden" for w in wrt]))
        g_hidden = self.onehot @ self.model.w2.T
        g_pre = rule.backward(g_hidden, lambda t: t * (self.pre > 0), lambda t: np.maximum(t, 0),
                              lambda t: np.maximum(t, 0))
        return [g_pre @ self.model.w1.T if w is self.x else g_hidden for w in wrt]


def _run(prims: NumpyPrimitives, req: Request, targets: list[int]) -> Any:
    x = np.random.default_rng(1).normal(size=(len(targets), 5))
    model = MLP()
    prims.onehot = np.eye(3)[targets]
    g, report = pipeline.gradients(prims, model, x, ClassTarget(targets), req)
    return g, report, x, model


def test_saliency_is_the_hand_computed_gradient() -> None:
    prims = NumpyPrimitives()
    g, report, x, m = _run(prims, Request(), [0, 2])
    mask = (x @ m.w1) > 0
    expected = ((np.eye(3)[[0, 2]] @ m.w2.T) * mask) @ m.w1.T
    np.testing.assert_allclose(g.input_grad, expected)
    np.testing.assert_allclose(g.scores, (np.maximum(x @ m.w1, 0) @ m.w2)[[0, 1], [0, 2]])
    assert report is None and prims.forwards == 1 and g.layer is None


def test_a_rule_switch_differentiates_twice_on_one_forward_layer_first() -> None:
    prims = NumpyPrimitives()
    req = Request(rule=RULES["guided"], layer=AUTO, layer_rule=RULES["plain"])
    g, report, x, m = _run(prims, req, [1, 1])
    assert prims.forwards == 1
    assert prims.vjps == [("plain", ["hidden"]), ("guided", ["x"])]
    g_hidden = np.eye(3)[[1, 1]] @ m.w2.T
    np.testing.assert_allclose(g.layer_grad, g_hidden)
    np.testing.assert_allclose(g.input_grad, (np.maximum(g_hidden, 0) * ((x @ m.w1) > 0)) @ m.w1.T)
    assert report is not None and report.count == 1 and g.layer == "hidden"


def test_one_rule_for_both_is_one_backward_pass() -> None:
    prims = NumpyPrimitives()
    _run(prims, Request(rule=RULES["deconvnet"], layer=AUTO), [0, 1])
    assert prims.vjps == [("deconvnet", ["x", "hidden"])]


def test_an_in_place_change_after_the_automatic_layer_runs_again_with_that_layer() -> None:
    prims = NumpyPrimitives(changed_once=True)
    g, _, _, _ = _run(prims, Request(layer=AUTO, wrt_input=False), [0, 1])
    assert prims.forwards == 2 and g.layer == "hidden" and g.input_grad is None


def test_no_gradient_path_is_an_error_naming_what() -> None:
    with pytest.raises(gs.NotDifferentiableError, match="layer 'hidden'"):
        _run(NumpyPrimitives(path=False), Request(layer=AUTO, wrt_input=False), [0, 1])


def test_a_rule_that_overrode_nothing_is_an_error() -> None:
    class Plain(NumpyPrimitives):
        def forward(self, model: MLP, x: np.ndarray) -> np.ndarray:
            out = super().forward(model, x)
            self.report.overridden.clear()
            return out

    with pytest.raises(gs.RuleNotAppliedError):
        _run(Plain(), Request(rule=RULES["guided"]), [0, 1])


def test_ops_missing_an_operation_cannot_be_instantiated() -> None:
    class Partial(Ops):
        def numpy(self, t):  # type: ignore[no-untyped-def]
            return t

    with pytest.raises(TypeError, match="abstract"):
        Partial()  # type: ignore[abstract]


def test_layer_refs_compare_by_name() -> None:
    assert LayerRef("a", object()) == LayerRef("a", object())
    assert hash(LayerRef("a", 1)) == hash(LayerRef("a", 2))
    assert AUTO.auto and LayerRef("conv", "obj").without_obj().obj is None


def test_a_session_yields_a_bound_backend_and_the_backend_keeps_no_call_state() -> None:
    torch = pytest.importorskip("torch")
    from gradsight.backends import backend_for
    from gradsight.backends.base import Settings

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU())
    bk = backend_for(model)
    assert vars(bk) == {"settings": Settings()}
    with bk.session(model, eval_mode=False) as run:
        assert run is not bk and run.settings == Settings(eval_mode=False)
        ref = run.resolve_layer(model, "0")
        assert ref == LayerRef("0") and ref.obj is model[0]
        assert run.resolve_layer(model, None) is AUTO and run.resolve_layer(model, ref) is ref
    assert vars(bk) == {"settings": Settings()}
