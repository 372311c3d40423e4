"""``demo-loc``: the demo CNN fine-tuned with a localisation signal, through the registry and the pointing game."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import gradsight as gs
from gradsight import evaluate as ev
from gradsight.demo.model import ShapesNet, load_demo_model, load_loc_model
from gradsight.demo.shapes import generate, preprocess
from gradsight.errors import ModelError
from gradsight.models import load_model


@pytest.fixture(scope="module")
def model() -> ShapesNet:
    return load_loc_model()


@pytest.fixture(scope="module")
def data():
    return generate(200, seed=1)  # the test seed: never trained on


def test_registry_loads_demo_loc_in_eval_mode(model):
    loaded, info = load_model("demo-loc")
    assert isinstance(loaded, ShapesNet) and not loaded.training
    assert info.input_size == 64 and info.preprocessing == "demo"
    x = torch.from_numpy(preprocess(generate(4, seed=5).images))
    with torch.no_grad():
        np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
        assert not torch.equal(loaded(x), load_demo_model()(x))  # its own weights, not the demo's
    with pytest.raises(ModelError, match="Did you mean: 'demo-loc'"):  # a typo names the close bundled model
        load_model("demo-lock")


def _hand_pointing(model: ShapesNet, data) -> np.ndarray:
    """Tolerance-0 hits written here: CAM = W[y] . relu4 (Grad-CAM's map up to 1/64 on this GAP network),
    ReLU, bilinear upsampling (align_corners=False), first maximum in raster order on the mask."""
    store = {}
    handle = model.relu4.register_forward_hook(lambda m, i, o: store.update(a=o))
    try:
        with torch.no_grad():
            model(torch.from_numpy(preprocess(data.images)))
    finally:
        handle.remove()
    cam = torch.einsum("nkhw,nk->nhw", store["a"], model.classifier.weight[torch.from_numpy(data.labels)])
    up = F.interpolate(cam.clamp_min(0)[:, None], size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    peak = up.flatten(1).argmax(1).numpy()
    return data.masks.reshape(len(peak), -1)[np.arange(len(peak)), peak]


def test_demo_loc_classifies_and_its_gradcam_points_inside_the_shape(model, data):
    with torch.no_grad():
        pred = model(torch.from_numpy(preprocess(data.images))).argmax(1).numpy()
    assert (pred == data.labels).mean() >= 0.97
    exp = gs.explain(model, preprocess(data.images), "gradcam", target=data.labels)
    got = ev.pointing_game(exp.heatmaps, data.masks, tolerance=0)
    hand = _hand_pointing(model, data)
    np.testing.assert_array_equal(got.hits, hand)  # gradsight's Grad-CAM + pointing game = the hand-written one
    assert got.accuracy >= 0.93  # 1000 test images: 0.969 (README); the demo CNN scores ~0.76 here
    demo = ev.pointing_game(gs.explain(load_demo_model(), preprocess(data.images), "gradcam",
                                       target=data.labels).heatmaps, data.masks, tolerance=0)
    assert got.accuracy > demo.accuracy + 0.1  # the localisation signal is what makes the difference


def test_keras_twin_gives_the_same_gradcam_and_the_same_hits(model, data):
    pytest.importorskip("tensorflow")
    keras_model, info = load_model("demo-loc", framework="keras")
    assert info.layout == "NHWC"
    n = 32
    x = preprocess(data.images[:n])
    xk = preprocess(data.images[:n], layout="NHWC")
    with torch.no_grad():
        np.testing.assert_allclose(np.asarray(keras_model(xk)), model(torch.from_numpy(x)).numpy(), atol=1e-4)
    t = gs.explain(model, x, "gradcam", target=data.labels[:n])
    k = gs.explain(keras_model, xk, "gradcam", target=data.labels[:n])
    np.testing.assert_allclose(k.heatmaps, t.heatmaps, atol=1e-4)
    np.testing.assert_array_equal(ev.pointing_game(k.heatmaps, data.masks[:n], tolerance=0).hits, _hand_pointing(
        model, type(data)(data.images[:n], data.labels[:n], data.masks[:n])))
