"""Assertions shared by the test suites."""

from __future__ import annotations

import numpy as np


def assert_rel(actual, expected, tol: float = 1e-5) -> None:
    """max |a - b| <= tol * max |b| (relative to the reference's scale)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = np.abs(expected).max()
    assert scale > 0, "reference is all zeros: the comparison would prove nothing"
    err = np.abs(actual - expected).max()
    assert err <= tol * scale, f"max error {err:.3g} > {tol} x {scale:.3g}"
