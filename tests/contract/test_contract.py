"""One library, two frameworks, the same numbers, and the right ones.

The bundled demo CNN (PyTorch ``ShapesNet``) and its Keras twin (the same trained weights,
layouts converted) are explained by every method; the suite runs once per backend and
compares each backend's result with the other's after NCHW <-> NHWC: logits to 1e-4,
attributions and heat maps to 1e-4 relative. Agreement alone would let a mistake shared
by both backends pass (the pipeline and the methods are written once), so each backend
is also compared with an independent reference (``contract_reference.py``: the network and every
method written out by hand).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("keras")

import gradsight as gs  # noqa: E402
from gradsight.demo.shapes import generate, preprocess  # noqa: E402
from helpers import assert_rel  # noqa: E402

FRAMEWORKS = ("torch", "keras")
TOL = 1e-4

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "saliency": ("saliency", {}),
    "smoothgrad": ("smoothgrad", {"samples": 4, "noise": 0.15, "seed": 7}),
    "smoothgrad_guided": ("smoothgrad", {"samples": 3, "seed": 1, "base": "guided_backprop"}),
    "deconvnet": ("deconvnet", {}),
    "guided_backprop": ("guided_backprop", {}),
    "gradcam_auto": ("gradcam", {}),
    "gradcam_conv3": ("gradcam", {"layer": "conv3"}),
    "gradcam_shared_relu_call1": ("gradcam", {"layer": "relu", "call": 1}),
    "gradcam_gated": ("gradcam", {"layer": "relu4", "gate": "guided"}),
    "guided_gradcam": ("guided_gradcam", {"layer": "relu4"}),
}


@dataclass
class Side:
    """One backend's model and input; ``canon`` brings its arrays to channels-first."""

    framework: str
    model: Any
    x: np.ndarray

    def canon(self, a: np.ndarray) -> np.ndarray:
        return a.transpose(0, 3, 1, 2) if self.framework == "keras" and a.ndim == 4 else a

    def logits(self) -> np.ndarray:
        if self.framework == "torch":
            import torch

            with torch.no_grad():
                return self.model(torch.from_numpy(self.x)).numpy()
        return self.model(self.x).numpy()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return generate(4, seed=2024).images


@pytest.fixture(scope="module")
def sides(images: np.ndarray) -> dict[str, Side]:
    from gradsight.demo.keras_model import load_keras_demo_model
    from gradsight.demo.model import load_demo_model

    return {
        "torch": Side("torch", load_demo_model(), preprocess(images, layout="NCHW")),
        "keras": Side("keras", load_keras_demo_model(), preprocess(images, layout="NHWC")),
    }


_RESULTS: dict[tuple[str, str], gs.Explanation] = {}


def explained(side: Side, case: str) -> gs.Explanation:
    key = (side.framework, case)
    if key not in _RESULTS:
        method, options = CASES[case]
        _RESULTS[key] = gs.explain(side.model, side.x, method=method, target=[0, 1, 2, 3], **options)
    return _RESULTS[key]


def _other(framework: str) -> str:
    return "keras" if framework == "torch" else "torch"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_logits_agree(sides: dict[str, Side], framework: str) -> None:
    mine, theirs = sides[framework].logits(), sides[_other(framework)].logits()
    assert np.abs(mine - theirs).max() <= TOL


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_method_agrees_with_the_other_backend(sides: dict[str, Side], framework: str, case: str) -> None:
    me, other = sides[framework], sides[_other(framework)]
    a, b = explained(me, case), explained(other, case)
    assert a.layout == ("channels_first" if framework == "torch" else "channels_last")
    assert_rel(me.canon(a.attributions), other.canon(b.attributions), TOL)
    assert_rel(a.heatmaps, b.heatmaps, TOL)
    np.testing.assert_allclose(a.scores, b.scores, rtol=TOL, atol=TOL)
    np.testing.assert_array_equal(a.targets, b.targets)
    assert a.layer == b.layer
    if "cam" in a.extras:
        assert_rel(a.extras["cam"], b.extras["cam"], TOL)


_REFERENCE: dict[str, np.ndarray] = {}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_method_matches_the_independent_reference(sides: dict[str, Side], framework: str, case: str) -> None:
    import contract_reference as reference

    method, options = CASES[case]
    if case not in _REFERENCE:
        _REFERENCE[case] = reference.explain(sides["torch"].model, sides["torch"].x, [0, 1, 2, 3], method, **options)
    me = sides[framework]
    exp = explained(me, case)
    assert_rel(me.canon(exp.attributions), _REFERENCE[case], TOL)
    if "cam" in exp.extras:
        cam = reference.gradcam(sides["torch"].model, sides["torch"].x, [0, 1, 2, 3], options["layer"])
        assert_rel(exp.extras["cam"], cam, TOL)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_same_errors(sides: dict[str, Side], framework: str) -> None:
    side = sides[framework]
    with pytest.raises(gs.TargetError, match="out of range"):
        gs.saliency(side.model, side.x, target=5)
    with pytest.raises(gs.LayerNotFoundError, match="'conv4'"):
        gs.gradcam(side.model, side.x, layer="conv_4")
    with pytest.raises(gs.LayerNotCalledError, match="called 3 time"):
        gs.gradcam(side.model, side.x, layer="relu", call=3)
    wrong = np.ascontiguousarray(side.x.transpose(0, 2, 3, 1) if framework == "torch" else side.x.transpose(0, 3, 1, 2))
    with pytest.raises(gs.InputError, match="channels-(last|first)"):
        gs.saliency(side.model, wrong)
