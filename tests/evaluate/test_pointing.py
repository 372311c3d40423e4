"""Pointing game and energy pointing game against a brute-force reference and Quantus."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("scipy")

from gradsight.errors import InputError
from gradsight.evaluate import boxes_to_masks, energy_pointing_game, pointing_game


def brute_force_hit(m: np.ndarray, mask: np.ndarray, tol: float) -> bool:
    """The first maximum in raster order; distance to every mask pixel by hand."""
    best, where = -math.inf, (0, 0)
    for r in range(m.shape[0]):
        for c in range(m.shape[1]):
            if m[r, c] > best:
                best, where = m[r, c], (r, c)
    return any(math.hypot(r - where[0], c - where[1]) <= tol for r, c in zip(*np.nonzero(mask)))


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(0)
    maps = rng.random((40, 24, 24)) ** 4
    maps[::5] = np.round(maps[::5], 1)  # ties among maxima: raster order decides
    masks = np.zeros((40, 24, 24), dtype=bool)
    for i in range(40):
        r, c, h, w = rng.integers(0, 18, 2).tolist() + rng.integers(2, 7, 2).tolist()
        masks[i, r : r + h, c : c + w] = True
    return maps, masks


@pytest.mark.parametrize("tol", [0, 1, 2.5, 15])
def test_pointing_game_matches_brute_force(case, tol: float) -> None:
    maps, masks = case
    res = pointing_game(maps, masks, tolerance=tol)
    ref = np.array([brute_force_hit(maps[i], masks[i], tol) for i in range(len(maps))])
    np.testing.assert_array_equal(res.hits, ref)
    assert res.accuracy == pytest.approx(ref.mean())
    assert 0 < ref.mean() < 1 or tol == 15


def test_empty_masks_are_skipped_and_boxes_work(case) -> None:
    maps, masks = case
    masks = masks.copy()
    masks[3] = False
    res = pointing_game(maps, masks, tolerance=0)
    assert res.skipped == 1 and not res.valid[3]
    assert res.accuracy == pytest.approx(np.delete(res.hits, 3).mean())
    boxes = np.array([[2, 3, 6, 5]] * 2)  # x0, y0, x1, y1
    bm = boxes_to_masks(boxes, 24, 24)
    assert bm[0].sum() == 8 and bm[0, 3:5, 2:6].all()
    np.testing.assert_array_equal(pointing_game(maps[:2], boxes).hits, pointing_game(maps[:2], bm).hits)


def test_energy_pointing_game_by_hand(case) -> None:
    maps, masks = case
    signed = maps - 0.2
    e = energy_pointing_game(signed, masks)
    for i in range(5):
        pos = np.clip(signed[i], 0, None)
        assert e[i] == pytest.approx(pos[masks[i]].sum() / pos.sum())
    assert energy_pointing_game(np.zeros((1, 24, 24)), masks[:1])[0] == 0.0


def test_agrees_with_quantus(case) -> None:
    """Quantus' PointingGame is tolerance 0 and calls a hit when ANY maximum is on the mask; on maps
    with a unique maximum it equals ours. Its RelevanceMassAccuracy is our energy game on maps >= 0."""
    quantus = pytest.importorskip("quantus")
    maps, masks = case
    unique = np.array([(m == m.max()).sum() == 1 for m in maps])
    a, s = maps[unique][:, None], masks[unique][:, None].astype(float)
    kw = {"model": None, "x_batch": np.zeros_like(a), "y_batch": np.zeros(len(a), int), "a_batch": a,
          "s_batch": s, "channel_first": True}  # fmt: skip
    q = quantus.PointingGame(disable_warnings=True, display_progressbar=False)(**kw)
    np.testing.assert_array_equal(np.asarray(q, bool), pointing_game(maps[unique], masks[unique], 0).hits)
    q = quantus.RelevanceMassAccuracy(disable_warnings=True, display_progressbar=False)(**kw)
    np.testing.assert_allclose(q, energy_pointing_game(maps[unique], masks[unique]), atol=1e-6)


def test_bad_input_is_a_typed_error(case) -> None:
    maps, masks = case
    with pytest.raises(InputError, match="shape"):
        pointing_game(maps, masks[:, :10])
    with pytest.raises(InputError, match="tolerance"):
        pointing_game(maps, masks, tolerance=-1)
