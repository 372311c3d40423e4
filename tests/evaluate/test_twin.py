"""Every metric on the Keras twin of the demo CNN equals the PyTorch numbers (1e-4)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("tensorflow")
pytest.importorskip("keras")

from gradsight import evaluate as ev
from gradsight.demo.shapes import generate, preprocess

TOL = 1e-4


@pytest.fixture(scope="module")
def twins():
    from gradsight.demo.keras_model import load_keras_demo_model
    from gradsight.demo.model import load_demo_model

    data = generate(4, seed=3)
    return (load_demo_model(), preprocess(data.images)), (load_keras_demo_model(), preprocess(data.images, "NHWC")), data


@pytest.mark.parametrize("metric", ["deletion", "insertion"])
def test_curves_on_the_same_maps(twins, metric: str) -> None:
    (mt, xt), (mk, xk), _ = twins
    fn = getattr(ev, metric)
    maps = ev.random_maps(4, 64, 64, seed=3)
    for substrate in ("zeros", "blur", "mean"):
        a, b = fn(mt, xt, maps, substrate=substrate, step=128), fn(mk, xk, maps, substrate=substrate, step=128)
        np.testing.assert_array_equal(a.targets, b.targets)
        np.testing.assert_allclose(b.curves, a.curves, atol=TOL)
        np.testing.assert_allclose(b.auc, a.auc, atol=TOL)


@pytest.mark.parametrize("method", ["saliency", "gradcam"])
def test_auc_end_to_end_from_each_framework_s_own_maps(twins, method: str) -> None:
    (mt, xt), (mk, xk), _ = twins
    for fn in (ev.deletion, ev.insertion):
        np.testing.assert_allclose(fn(mk, xk, method, step=64).auc, fn(mt, xt, method, step=64).auc, atol=TOL)


def test_road_and_pointing(twins) -> None:
    (mt, xt), (mk, xk), data = twins
    maps = ev.random_maps(4, 64, 64, seed=9)
    a = ev.road(mt, xt, maps, percentages=(20, 60))
    b = ev.road(mk, xk, maps, percentages=(20, 60))
    np.testing.assert_allclose(b.morf, a.morf, atol=TOL)
    np.testing.assert_allclose(b.lerf, a.lerf, atol=TOL)
    from gradsight import explain

    labels = data.labels.tolist()
    ht = explain(mt, xt, method="gradcam", target=labels).heatmaps
    hk = explain(mk, xk, method="gradcam", target=labels).heatmaps
    np.testing.assert_array_equal(ev.pointing_game(hk, data.masks, 0).hits, ev.pointing_game(ht, data.masks, 0).hits)
    np.testing.assert_allclose(ev.energy_pointing_game(hk, data.masks), ev.energy_pointing_game(ht, data.masks),
                               atol=TOL)  # fmt: skip
