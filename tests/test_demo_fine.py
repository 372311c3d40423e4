"""The finer demo CNN (``demo-fine``: last stage at 16x16) through the registry."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gradsight as gs
from gradsight.demo.fine_model import ShapesNetFine, load_fine_model
from gradsight.demo.model import load_demo_model
from gradsight.demo.shapes import generate, preprocess
from gradsight.errors import ModelError
from gradsight.models import load_model


@pytest.fixture(scope="module")
def model() -> ShapesNetFine:
    return load_fine_model()


def test_registry_loads_the_trained_fine_model_in_eval_mode(model):
    loaded, info = load_model("demo-fine")
    assert isinstance(loaded, ShapesNetFine) and not loaded.training
    assert info.input_size == 64 and info.layout == "NCHW" and info.preprocessing == "demo"
    x = torch.from_numpy(preprocess(generate(4, seed=5).images))
    with torch.no_grad():
        np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    with pytest.raises(ModelError, match="no Keras twin"):
        load_model("demo-fine", framework="keras")


def test_fine_model_is_trained_and_shares_the_demo_trunk(model):
    data = generate(200, seed=1)  # test seed: never trained on
    with torch.no_grad():
        acc = float((model(torch.from_numpy(preprocess(data.images))).argmax(1).numpy() == data.labels).mean())
    assert acc >= 0.97
    demo = load_demo_model()  # the first three blocks were copied from the demo CNN and frozen
    for name in ("conv1", "bn1", "conv2", "bn2", "conv3", "bn3"):
        for key, value in getattr(demo, name).state_dict().items():
            torch.testing.assert_close(getattr(model, name).state_dict()[key], value, rtol=0, atol=0)


def test_gradcam_at_the_auto_layer_is_a_16x16_map_equal_to_a_hand_written_one(model):
    x = preprocess(generate(3, seed=2).images)
    exp = gs.explain(model, x, "gradcam", target=[0, 1, 2])
    assert exp.attributions.shape == (3, 16, 16)
    store = {}
    handle = model.relu5.register_forward_hook(lambda m, i, o: store.update(a=o))
    try:
        xt = torch.from_numpy(x)
        out = model(xt)
        a = store["a"]
        grads = torch.autograd.grad(out[torch.arange(3), torch.tensor([0, 1, 2])].sum(), a)[0]
    finally:
        handle.remove()
    cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * a).sum(1)).detach().numpy()
    np.testing.assert_allclose(exp.attributions, cam, rtol=1e-4, atol=1e-6)
