"""Bad inputs get a typed error that says what to do, never a quiet wrong answer (issue 9, finding 3)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gradsight as gs
from gradsight.errors import (
    ConstantInputWarning,
    InputError,
    ModelError,
    NoLocationWarning,
)

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tnet():
    from gradsight.demo.model import load_demo_model

    return load_demo_model()


@pytest.fixture(scope="module")
def x():
    from gradsight.demo.shapes import generate, preprocess

    return preprocess(generate(3, seed=5).images)


@pytest.fixture(scope="module")
def knet():
    pytest.importorskip("tensorflow")
    from gradsight.demo.keras_model import load_keras_demo_model

    return load_keras_demo_model()


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, {n: m.training for n, m in model.named_modules()}


def _same_state(model, saved):
    state, modes = saved
    assert {n: m.training for n, m in model.named_modules()} == modes
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("method", ["saliency", "gradcam"])
def test_nan_or_inf_in_x_names_the_samples_torch(tnet, x, bad, method):
    xb = x.copy()
    xb[2, 1, 5, 5] = bad
    saved = _state(tnet)
    with pytest.raises(InputError, match=r"sample\(s\) \[2\]"):
        gs.explain(tnet, xb, method=method)
    with pytest.raises(InputError, match=r"sample\(s\) \[2\]"):
        gs.explain(tnet, torch.from_numpy(xb), method=method)
    _same_state(tnet, saved)


def test_nan_in_x_names_the_samples_keras(knet, x):
    xk = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    xk[0, 3, 3, 0] = np.nan
    xk[1, 0, 0, 2] = np.inf
    with pytest.raises(InputError, match=r"NaN and inf in sample\(s\) \[0, 1\]"):
        gs.explain(knet, xk, method="saliency")


def test_nonfinite_outputs_for_finite_inputs_is_an_error(x):
    class Overflow(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.head = torch.nn.Linear(4, 2)

        def forward(self, t):
            h = torch.relu(self.conv(t)).mean((2, 3))
            return self.head(h) * torch.where(t[:, :1, 0, 0] > 100, torch.inf, 1.0)

    xb = x.copy()
    xb[1, 0, 0, 0] = 1e3  # finite, but the model overflows on it
    with pytest.raises(ModelError, match=r"NaN or inf for sample\(s\) \[1\] although the inputs are finite"):
        gs.saliency(Overflow(), xb, target=0)


def test_empty_batch_is_an_input_error_both_frameworks(tnet, knet, x):
    with pytest.raises(InputError, match="empty batch"):
        gs.explain(tnet, x[:0], method="saliency")
    with pytest.raises(InputError, match="empty batch"):
        gs.explain(knet, np.zeros((0, 64, 64, 3), np.float32), method="gradcam")
    assert gs.predict(tnet, x[:0]).shape == (0, 5)  # predict keeps its empty-batch behaviour


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_target_as_array_or_tensor_is_a_list_torch(tnet, x, kind):
    ref = gs.saliency(tnet, x, target=[1, 0, 4])
    t = np.array([1, 0, 4]) if kind == "numpy" else torch.tensor([1, 0, 4])
    got = gs.saliency(tnet, x, target=t)
    np.testing.assert_array_equal(got.attributions, ref.attributions)
    np.testing.assert_array_equal(got.targets, [1, 0, 4])
    one = gs.saliency(tnet, x, target=np.int64(3) if kind == "numpy" else torch.tensor(3))
    np.testing.assert_array_equal(one.targets, [3, 3, 3])


def test_target_as_numpy_or_tf_tensor_keras(knet, x):
    import tensorflow as tf

    xk = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    ref = gs.gradcam(knet, xk, target=[1, 0, 4])
    for t in (np.array([1, 0, 4]), tf.constant([1, 0, 4])):
        got = gs.gradcam(knet, xk, target=t)
        np.testing.assert_array_equal(got.attributions, ref.attributions)


def test_meta_device_model_or_input_is_a_model_error(tnet, x):
    with torch.device("meta"):
        meta = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    with pytest.raises(ModelError, match="meta.*to_empty"):
        gs.saliency(meta, x)
    with pytest.raises(ModelError, match="'meta' device"):
        gs.saliency(tnet, torch.empty(2, 3, 64, 64, device="meta"))


def test_one_channel_batch_for_an_rgb_model_says_how_to_fix(tnet, x):
    saved = _state(tnet)
    with pytest.raises(InputError, match=r"1 channel.*x\.expand\(-1, 3, -1, -1\)"):
        gs.gradcam(tnet, x[:, :1])
    _same_state(tnet, saved)


def test_one_dimensional_x_hint_offers_both_readings(tnet):
    with pytest.raises(InputError) as info:
        gs.saliency(tnet, np.zeros(6, np.float32))
    assert "x[None]" in str(info.value) and "x[:, None]" in str(info.value) and "6 samples" in str(info.value)


def test_gradcam_at_a_1x1_layer_warns(tnet, x):
    with pytest.warns(NoLocationWarning, match="'gap' has a 1x1 output"):
        e = gs.gradcam(tnet, x, layer="gap")
    assert np.abs(e.attributions).max() > 0 and np.ptp(e.heatmaps) == 0  # the finding: a flat map
    with pytest.warns(NoLocationWarning):
        gs.guided_gradcam(tnet, x, layer="gap")
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoLocationWarning)
        gs.gradcam(tnet, x)  # the automatic layer is 8x8: no warning


def test_smoothgrad_on_a_constant_image_warns_naming_it(tnet, x):
    xb = x.copy()
    xb[1] = 0.25
    with pytest.warns(ConstantInputWarning, match=r"sample\(s\) \[1\] are constant"):
        e = gs.smoothgrad(tnet, xb, samples=3, seed=0, target=0)
    plain = gs.saliency(tnet, xb, target=0)
    # the finding itself: for the constant sample SmoothGrad is exactly the plain gradient
    np.testing.assert_allclose(e.attributions[1], plain.attributions[1], rtol=1e-5, atol=1e-7)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConstantInputWarning)
        gs.smoothgrad(tnet, xb, samples=2, seed=0, target=0, noise=0.0)  # noise=0 asked for: no warning
