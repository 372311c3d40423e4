"""Deletion / insertion against a hand-written RISE-style loop (one image, one step at a time),
the Keras twin of the demo, and Quantus' PixelFlipping."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

import gradsight as gs
from gradsight import evaluate as ev
from gradsight.demo.model import load_demo_model
from gradsight.demo.shapes import generate, preprocess
from gradsight.errors import InputError


@pytest.fixture(scope="module")
def model():
    return load_demo_model()


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return preprocess(generate(3, seed=11).images)


def rise_gkern(klen: int = 11, nsig: float = 5.0) -> torch.Tensor:
    """RISE's gkern, verbatim in spirit: a filtered impulse on the diagonal of a 3x3 kernel bank."""
    from scipy.ndimage import gaussian_filter

    inp = np.zeros((klen, klen))
    inp[klen // 2, klen // 2] = 1
    k = gaussian_filter(inp, nsig)
    kern = np.zeros((3, 3, klen, klen))
    kern[0, 0] = k
    kern[1, 1] = k
    kern[2, 2] = k
    return torch.from_numpy(kern.astype("float32"))


def reference_curve(model, img: np.ndarray, sal: np.ndarray, cls: int, mode: str, step: int, substrate: str):
    """RISE's CausalMetric.single_run for one image, with the documented tie rule (stable, raster order)."""
    t = torch.from_numpy(img[None].copy())
    hw = sal.size
    n_steps = (hw + step - 1) // step
    if substrate == "zeros":
        sub = torch.zeros_like(t)
    else:
        sub = torch.nn.functional.conv2d(t, rise_gkern(), padding=11 // 2)
    start, finish = (t.clone(), sub) if mode == "del" else (sub.clone(), t.clone())
    order = np.argsort(-sal.reshape(-1), kind="stable")
    scores = np.empty(n_steps + 1)
    for i in range(n_steps + 1):
        with torch.no_grad():
            scores[i] = torch.softmax(model(start), dim=1)[0, cls].item()
        if i < n_steps:
            coords = order[step * i : step * (i + 1)]
            start.numpy().reshape(1, 3, hw)[0, :, coords] = finish.numpy().reshape(1, 3, hw)[0, :, coords]
    return scores


def test_rise_blur_is_the_reference_conv2d(x: np.ndarray) -> None:
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), rise_gkern(), padding=5).numpy()
    np.testing.assert_allclose(ev.rise_blur(x, axis=1), ref, atol=1e-5)


@pytest.mark.parametrize("mode,substrate", [("del", "zeros"), ("ins", "blur")])
def test_matches_the_per_step_reference_loop(model, x, mode: str, substrate: str) -> None:
    maps = gs.explain(model, x, method="gradcam").heatmaps
    fn = ev.deletion if mode == "del" else ev.insertion
    # step 64 divides 64*64: the RISE auc formula applies exactly; a small batch crosses image boundaries
    res = fn(model, x, maps, step=64, batch_size=23)
    top1 = model(torch.from_numpy(x)).argmax(1).numpy()
    np.testing.assert_array_equal(res.targets, top1)
    assert res.curves.shape == (3, 65) and res.fractions[0] == 0 and res.fractions[-1] == 1
    for i in range(2):
        ref = reference_curve(model, x[i], maps[i], int(top1[i]), mode, 64, substrate)
        np.testing.assert_allclose(res.curves[i], ref, atol=1e-5)
        rise_auc = (ref.sum() - ref[0] / 2 - ref[-1] / 2) / (ref.shape[0] - 1)
        assert res.auc[i] == pytest.approx(rise_auc, abs=1e-6)


class Counting(torch.nn.Module):
    """The demo model, counting the samples and keeping every batch it is given."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.batches: list[np.ndarray] = []

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.batches.append(z.detach().numpy().copy())
        return self.inner(z)


@pytest.mark.parametrize("metric", ["deletion", "insertion"])
def test_the_model_sees_each_curve_image_exactly_once_and_bit_exact(model, x, metric: str) -> None:
    counting = Counting(model).eval()
    maps = ev.random_maps(3, 64, 64, seed=4)
    res = getattr(ev, metric)(counting, x, maps, step=1000, batch_size=4)  # 5 steps: 1000, ..., 4000, 4096
    sizes = [len(b) for b in counting.batches]
    assert sizes == [3, 4, 4, 4, 3] and sum(sizes) == 3 * 6  # the clean batch, then the 15 perturbed images
    # every perturbed image is exactly where(rank < k, finish, start), bit for bit
    sub = np.zeros_like(x) if metric == "deletion" else ev.rise_blur(x, axis=1)
    start, finish = (x, sub) if metric == "deletion" else (sub, x)
    ranks = ev.pixel_ranks(maps)
    counts = [1000, 2000, 3000, 4000] if metric == "deletion" else [0, 1000, 2000, 3000, 4000]
    if metric == "deletion":
        counts.append(4096)
    seen = np.concatenate(counting.batches[1:])
    want = np.stack(
        [np.where((ranks[i] < k).reshape(1, 64, 64), finish[i], start[i]) for i in range(3) for k in counts]
    )
    np.testing.assert_array_equal(seen.view(np.uint32), want.view(np.uint32))
    np.testing.assert_array_equal(counting.batches[0], x)
    clean = torch.softmax(model(torch.from_numpy(x)), 1).detach().numpy()[np.arange(3), res.targets]
    np.testing.assert_allclose(res.curves[:, 0 if metric == "deletion" else -1], clean, atol=1e-6)


def test_default_step_and_ties_and_a_partial_last_step(model, x) -> None:
    # Grad-CAM maps have exact ties (zeros after the ReLU): raster order decides; 4096 = 227 * 18 + 10
    maps = np.round(gs.explain(model, x, method="gradcam").heatmaps, 1)
    res = ev.deletion(model, x, maps, target=[0, 1, 2])
    assert res.step == 18 and res.curves.shape == (3, 229)
    assert res.fractions[-2] == pytest.approx(227 * 18 / 4096)
    for i in range(1):  # the reference loop runs 229 single-image forwards per image: one image is enough
        ref = reference_curve(model, x[i], maps[i], i, "del", 18, "zeros")
        np.testing.assert_allclose(res.curves[i], ref, atol=1e-5)
        assert res.auc[i] == pytest.approx(np.trapezoid(ref, res.fractions), abs=1e-6)


def test_substrates_mean_array_callable_and_raw_scores(model, x) -> None:
    maps = ev.random_maps(3, 64, 64, seed=1)
    ranks = ev.pixel_ranks(maps)
    mean = x.mean(axis=(2, 3), keepdims=True)
    a = ev.deletion(model, x, maps, substrate="mean", step=512, prob=False)
    b = ev.deletion(model, x, maps, substrate=np.broadcast_to(mean, x.shape), step=512, prob=False)
    c = ev.deletion(model, x, maps, substrate=lambda z: z.mean(axis=(2, 3), keepdims=True) + 0 * z, step=512,
                    prob=False)  # fmt: skip
    np.testing.assert_allclose(a.curves, b.curves, atol=1e-6)
    np.testing.assert_allclose(a.curves, c.curves, atol=1e-6)
    # by hand: the top 3 * 512 pixels set to the mean, raw logit of the top-1 class
    z = x.copy().reshape(3, 3, -1)
    for i in range(3):
        idx = ranks[i] < 3 * 512
        z[i][:, idx] = mean[i].reshape(3, 1)
    with torch.no_grad():
        logits = model(torch.from_numpy(z.reshape(x.shape))).numpy()
    np.testing.assert_allclose(a.curves[:, 3], logits[np.arange(3), a.targets], atol=1e-4)


def test_bad_input_is_a_typed_error(model, x) -> None:
    with pytest.raises(InputError, match="shape"):
        ev.deletion(model, x, np.zeros((3, 32, 32)))
    with pytest.raises(InputError, match="substrate"):
        ev.insertion(model, x, np.zeros((3, 64, 64)), substrate="noise")
    with pytest.raises(InputError, match="step"):
        ev.deletion(model, x, np.zeros((3, 64, 64)), step=0)
    with pytest.raises(InputError, match="0..4"):
        ev.deletion(model, x, np.zeros((3, 64, 64)), target=7)
    with pytest.raises(InputError, match="NaN"):
        ev.deletion(model, x, np.full((3, 64, 64), np.nan))


def test_quantus_pixel_flipping_gives_the_same_curve_without_its_first_point(model, x) -> None:
    """Quantus' PixelFlipping is deletion with a baseline value: its curve is ours without the
    unperturbed point; its AUC is np.trapz with dx=1 over steps (ours: over the fraction, [0, 1])."""
    quantus = pytest.importorskip("quantus")
    # Quantus wants features_in_step (3 channels x pixels) to divide H*W: 48x48 images, 256 pixels a step
    x = preprocess(generate(3, seed=11, size=48).images)
    maps = ev.random_maps(3, 48, 48, seed=5)  # no ties, so Quantus' unstable argsort gives our order
    res = ev.deletion(model, x, maps, step=256)
    y = res.targets
    a = np.broadcast_to(maps[:, None], x.shape).astype(np.float32)  # Quantus ranks channel values
    metric = quantus.PixelFlipping(features_in_step=3 * 256, perturb_baseline=0.0, disable_warnings=True,
                                   display_progressbar=False)  # fmt: skip
    curves = np.asarray(metric(model=model, x_batch=x, y_batch=y, a_batch=a, device="cpu", softmax=True,
                               channel_first=True))  # fmt: skip
    np.testing.assert_allclose(curves, res.curves[:, 1:], atol=1e-5)
