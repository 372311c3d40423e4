"""The CAM family, Integrated Gradients, input x gradient and SmoothGrad's new options give the
same numbers on the PyTorch demo CNN and its Keras twin (same weights): attributions and heat
maps to 1e-4 relative, after NCHW <-> NHWC."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("keras")

import gradsight as gs  # noqa: E402
from gradsight.demo.shapes import generate, preprocess  # noqa: E402
from gradsight.targets import TopK  # noqa: E402
from helpers import assert_rel  # noqa: E402

TOL = 1e-4
TARGET = [0, 1, 2, 3]

CASES: dict[str, tuple[str, dict[str, Any], Any]] = {
    "gradcam_plus_plus": ("gradcam_plus_plus", {}, TARGET),
    # (on a pre-BN conv output, where sum A can be < 0, Grad-CAM++'s weights g^2 / (2 g^2 + S g^3) are
    # ill-conditioned near g = -2 / S and the frameworks' float rounding differs by ~3e-4 there)
    "gradcam_plus_plus_shared_relu": ("gradcam_plus_plus", {"layer": "relu", "call": 2}, TARGET),
    "xgradcam": ("xgradcam", {"layer": "relu4"}, TARGET),
    "layercam_shared_relu": ("layercam", {"layer": "relu", "call": 1}, TARGET),
    "hirescam": ("hirescam", {}, TARGET),
    "hirescam_top2": ("hirescam", {}, TopK(2)),
    "eigencam": ("eigencam", {"layer": "relu4"}, TARGET),
    "scorecam": ("scorecam", {"batch_size": 48}, TARGET),
    # (IG samples the gradient at points where a ReLU or max-pool may switch: with 3 Gauss-Legendre
    # nodes on noisy copies one such switch lands between the frameworks' roundings; 8 nodes do not)
    "integrated_gradients": ("integrated_gradients", {"steps": 8}, TARGET),
    "integrated_gradients_trapezoid_uniform": (
        "integrated_gradients", {"steps": 5, "rule": "riemann_trapezoid", "baseline": "uniform", "seed": 3}, TARGET),
    "integrated_gradients_blur": ("integrated_gradients", {"steps": 4, "baseline": "blur"}, TARGET),
    "input_x_gradient": ("input_x_gradient", {}, TARGET),
    "smoothgrad_var": ("smoothgrad", {"samples": 4, "seed": 7, "aggregate": "var"}, TARGET),
    "smoothgrad_sq_ixg": ("smoothgrad", {"samples": 3, "seed": 2, "aggregate": "mean_square",
                                         "base": "input_x_gradient"}, TARGET),
    "smoothgrad_ig": ("smoothgrad", {"samples": 2, "seed": 1, "base": "integrated_gradients",
                                     "base_options": {"steps": 3, "rule": "riemann_middle"}}, TARGET),
    "gradcam_layers": ("gradcam", {"layer": ["conv3", "relu4"]}, TARGET),
    "layercam_guided": ("layercam", {"layer": "relu4", "guided": True}, TARGET),
    "eigencam_layers": ("eigencam", {"layer": ["conv3", "relu4"]}, TARGET),
    "scorecam_guided": ("scorecam", {"layer": "relu4", "batch_size": 64, "guided": True}, TARGET),
}


@pytest.fixture(scope="module")
def sides() -> dict[str, tuple[Any, np.ndarray]]:
    from gradsight.demo.keras_model import load_keras_demo_model
    from gradsight.demo.model import load_demo_model

    images = generate(4, seed=2024).images
    return {
        "torch": (load_demo_model(), preprocess(images, layout="NCHW")),
        "keras": (load_keras_demo_model(), preprocess(images, layout="NHWC")),
    }


def _canon(a: np.ndarray, framework: str) -> np.ndarray:
    """Input-space arrays (N, [k,] H, W, C) from Keras to channels-first."""
    if framework != "keras":
        return a
    if a.ndim == 4 and a.shape[-1] == 3:
        return a.transpose(0, 3, 1, 2)
    if a.ndim == 5:
        return a.transpose(0, 1, 4, 2, 3)
    return a


@pytest.mark.parametrize("case", list(CASES))
def test_torch_and_keras_agree(sides: dict[str, tuple[Any, np.ndarray]], case: str) -> None:
    method, options, target = CASES[case]
    res = {fw: gs.explain(m, x, method=method, target=target, **options) for fw, (m, x) in sides.items()}
    t, k = res["torch"], res["keras"]
    assert_rel(_canon(k.attributions, "keras"), t.attributions, TOL)
    assert_rel(k.heatmaps, t.heatmaps, TOL)
    np.testing.assert_allclose(k.scores, t.scores, rtol=TOL, atol=TOL)
    np.testing.assert_array_equal(k.targets, t.targets)
    assert k.layer == t.layer
    for key in ("cam", "delta"):
        if key in t.extras:
            assert_rel(_canon(k.extras[key], "keras"), t.extras[key], TOL)
