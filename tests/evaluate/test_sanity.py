"""Model-parameter randomisation: the user's model is unchanged, the measures match scipy/skimage,
the paper's finding holds on the demo CNN, and the Keras twin gives the same numbers."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("skimage")

import gradsight as gs
from gradsight import evaluate as ev
from gradsight.backends import backend_for
from gradsight.demo.model import load_demo_model
from gradsight.demo.shapes import generate, preprocess
from gradsight.errors import InputError, LayerNotFoundError
from test_torch_state import fingerprint


@pytest.fixture(scope="module")
def data():
    return generate(4, seed=1)


def test_model_state_is_unchanged_after_success_and_error(data) -> None:
    model = load_demo_model()
    before = fingerprint(model)
    bk = backend_for(model)
    res = ev.randomization_check(model, preprocess(data.images[:2]), ["saliency"], layers=["conv4", "classifier"])
    assert fingerprint(model) == before
    assert res.steps == ["classifier", "conv4"]
    with pytest.raises(RuntimeError, match="boom"), bk.randomized(model, ["conv1", "classifier"], seed=3):
        assert not torch.equal(model.conv1.weight, load_demo_model().conv1.weight)
        raise RuntimeError("boom")
    assert fingerprint(model) == before
    with pytest.raises(LayerNotFoundError, match="conv4"), bk.randomized(model, ["conv44"]):
        pass
    with pytest.raises(InputError, match="order"):
        ev.randomization_check(model, preprocess(data.images[:1]), "saliency", order="bottom-up")


def test_random_weights_keep_each_tensor_s_scale() -> None:
    model = load_demo_model()
    w0 = model.conv3.weight.detach().clone()
    with backend_for(model).randomized(model, ["conv3"], seed=0):
        w1 = model.conv3.weight.detach().clone()
    assert abs(float(w1.std() / w0.std()) - 1) < 0.05 and float(torch.corrcoef(torch.stack([w0.flatten(), w1.flatten()]))[0, 1]) < 0.05


def test_similarity_matches_scipy_and_skimage() -> None:
    from scipy.stats import pearsonr, spearmanr
    from skimage.feature import hog
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a, b = rng.random((3, 32, 32)), rng.random((3, 32, 32))
    b[1] = a[1] ** 2 + 0.1 * b[1]
    s = ev.similarity(a - 0.5, a, b - 0.5, b)
    for i in range(3):
        assert s["spearman"][i] == pytest.approx(spearmanr(a[i].ravel(), b[i].ravel())[0], abs=1e-9)
        assert s["ssim"][i] == pytest.approx(structural_similarity(a[i], b[i], data_range=1.0))
        ha, hb = (hog(m, pixels_per_cell=(4, 4), cells_per_block=(2, 2)) for m in (a[i], b[i]))
        assert s["hog"][i] == pytest.approx(pearsonr(ha, hb)[0], abs=1e-9)
    assert s["spearman_abs"][1] > 0.9
    assert abs(s["spearman_abs"][0]) < 0.2
    assert ev.similarity(a[:1], a[:1], np.zeros((1, 32, 32)), np.zeros((1, 32, 32)))["spearman"][0] == 0.0


def test_the_paper_s_finding_on_the_demo_cnn(data) -> None:
    """Cascading from the logits: saliency and Grad-CAM decorrelate; guided backprop stays similar
    until the bottom layers (numbers in the README)."""
    model = load_demo_model()
    res = ev.randomization_check(model, preprocess(data.images), ["saliency", "guided_backprop", "gradcam"],
                                 target=data.labels.tolist())  # fmt: skip
    sal, gbp, cam = res.scores["spearman"].mean(axis=-1)
    top3 = 2  # classifier, bn4, conv4 randomised
    assert cam[top3] < 0.3 and sal[top3] < 0.3
    assert gbp[top3] > 0.7 and gbp[-1] < 0.4  # similar until the first conv layer is random too
    assert res.scores["ssim"][1, top3].mean() > 0.7


def _keras_fingerprint(monkeypatch: pytest.MonkeyPatch):
    folder = Path(__file__).resolve().parents[1] / "keras_backend"
    monkeypatch.syspath_prepend(str(folder))  # its helpers (keras_nets) live next to it
    path = folder / "test_keras_state.py"
    spec = importlib.util.spec_from_file_location("keras_state_for_evaluate", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.fingerprint


def test_keras_twin_same_numbers_and_model_unchanged(data, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorflow")
    from gradsight.demo.keras_model import load_keras_demo_model

    fp = _keras_fingerprint(monkeypatch)
    mk, mt = load_keras_demo_model(), load_demo_model()
    before = fp(mk)
    layers = ["conv4", "bn4", "classifier"]
    kw = {"layers": layers, "target": data.labels[:2].tolist()}
    rk = ev.randomization_check(mk, preprocess(data.images[:2], "NHWC"), ["saliency", "gradcam"], **kw)
    rt = ev.randomization_check(mt, preprocess(data.images[:2]), ["saliency", "gradcam"], **kw)
    assert fp(mk) == before
    for k in ev.MEASURES:
        np.testing.assert_allclose(rk.scores[k], rt.scores[k], atol=1e-4)
    _ = gs  # the public name used in the README example
