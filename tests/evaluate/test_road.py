"""ROAD: the imputation against a dense hand-written solve and Quantus; drops by hand."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("scipy")

from gradsight import evaluate as ev
from gradsight.demo.model import load_demo_model
from gradsight.demo.shapes import generate, preprocess
from gradsight.errors import InputError


def dense_reference(img: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Each removed pixel = weighted mean of its in-image neighbours (1/6 direct, 1/12 diagonal), dense solve."""
    c, h, w = img.shape
    unknown = [(r, q) for r in range(h) for q in range(w) if removed[r, q]]
    pos = {p: i for i, p in enumerate(unknown)}
    a = np.zeros((len(unknown), len(unknown)))
    b = np.zeros((len(unknown), c))
    for i, (r, q) in enumerate(unknown):
        for dr in (-1, 0, 1):
            for dq in (-1, 0, 1):
                if (dr, dq) == (0, 0) or not (0 <= r + dr < h and 0 <= q + dq < w):
                    continue
                wt = 1 / 6 if dr == 0 or dq == 0 else 1 / 12
                a[i, i] += wt
                if removed[r + dr, q + dq]:
                    a[i, pos[(r + dr, q + dq)]] -= wt
                else:
                    b[i] += wt * img[:, r + dr, q + dq]
    sol = np.linalg.solve(a, b)
    out = img.copy()
    for i, (r, q) in enumerate(unknown):
        out[:, r, q] = sol[i]
    return out


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(0)
    return rng.normal(size=(3, 12, 10)), rng.random((12, 10)) < 0.6


def test_imputation_matches_a_dense_solve(small) -> None:
    img, removed = small
    removed[0, :] = True  # a border row: neighbours outside the image are left out
    np.testing.assert_allclose(ev.impute(img, removed, noise=0), dense_reference(img, removed), atol=1e-10)
    noisy = ev.impute(img, removed, noise=0.01, rng=np.random.default_rng(1))
    diff = (noisy - dense_reference(img, removed))[:, removed]
    assert 0.007 < diff.std() < 0.013 and np.all((noisy - img)[:, ~removed] == 0)


def test_imputation_matches_quantus(small) -> None:
    pytest.importorskip("quantus")
    from quantus.functions.perturb_func import noisy_linear_imputation

    img, removed = small
    ref = noisy_linear_imputation(img.copy(), indices=np.flatnonzero(removed.reshape(-1)), noise=0.0)
    np.testing.assert_allclose(ev.impute(img, removed, noise=0), ref, atol=1e-10)


def test_drops_by_hand() -> None:
    model = load_demo_model()
    data = generate(2, seed=4)
    x = preprocess(data.images)
    maps = ev.random_maps(2, 64, 64, seed=2)
    res = ev.road(model, x, maps, target=data.labels.tolist(), percentages=(30, 70), batch_size=3)
    ranks = ev.pixel_ranks(maps)

    def prob(z: np.ndarray, i: int) -> float:
        with torch.no_grad():
            return float(torch.softmax(model(torch.from_numpy(z[None].astype(np.float32))), 1)[0, data.labels[i]])

    for i in range(2):
        base = prob(x[i], i)
        assert res.base[i] == pytest.approx(base, abs=1e-6)
        for j, p in enumerate((30, 70)):
            k = round(p / 100 * 4096)
            for o, removed in enumerate((ranks[i] < k, ranks[i] >= 4096 - k)):
                z = ev.impute(x[i], removed.reshape(64, 64), 0.01, np.random.default_rng([0, i, j, o]))
                got = (res.morf if o == 0 else res.lerf)[i, j]
                assert got == pytest.approx(base - prob(z, i), abs=1e-5)
    np.testing.assert_allclose(res.summary, ((res.morf - res.lerf) / 2).mean(1))


def test_a_faithful_map_beats_a_random_one() -> None:
    model = load_demo_model()
    data = generate(4, seed=4)
    x = preprocess(data.images)
    kw = {"target": data.labels.tolist(), "percentages": (20, 50, 80)}
    assert ev.road(model, x, "gradcam", **kw).summary.mean() > 0.1 > abs(
        ev.road(model, x, ev.random_maps(4, 64, 64), **kw).summary.mean()
    )
    with pytest.raises(InputError, match="percentages"):
        ev.road(model, x, "gradcam", percentages=(0, 50))
