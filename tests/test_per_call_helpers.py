"""Per-call helpers made faster for issue 15 give exactly the old numbers: the heat maps' channel
reduction, the input check on host tensors, SmoothGrad's noisy copies (PyTorch adds x in place)."""

from __future__ import annotations

import numpy as np
import pytest

from gradsight import _checks, maps

torch = pytest.importorskip("torch")


def _reference_absmax(a: np.ndarray, axis: int) -> np.ndarray:
    return np.abs(a.astype(np.float64)).max(axis=axis).astype(np.float32)


@pytest.mark.parametrize("shape,axis", [((3, 5, 6, 3), -1), ((3, 3, 5, 6), 1), ((2, 40, 4, 5), 1), ((2, 4, 5, 1), 3)])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_absmax_channel_reduction_equals_the_float64_one(shape, axis, dtype) -> None:
    a = np.random.default_rng(0).normal(size=shape).astype(dtype)
    a.flat[3], a.flat[7], a.flat[9] = np.nan, -np.inf, -0.0
    out = maps.reduce_channels(a, axis)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, _reference_absmax(a, axis))
    ints = np.full(shape, -3, np.int32)  # other dtypes keep the float64 path
    np.testing.assert_array_equal(maps.reduce_channels(ints, axis), np.full(out.shape, 3, np.float32))


def test_input_check_flags_on_host_tensors() -> None:
    tf = pytest.importorskip("tensorflow")
    x = np.random.default_rng(1).normal(size=(4, 3, 5, 2)).astype(np.float32)
    x[1, 0, 0, 0], x[2, 1, 1, 1], x[3] = np.nan, -np.inf, 0.5
    for xt in (tf.constant(x), torch.from_numpy(x), x):
        rows = _checks._per_sample(xt)
        np.testing.assert_array_equal(rows["finite"], [True, False, False, True])
        np.testing.assert_array_equal(rows["nan"], [False, True, False, False])
        np.testing.assert_array_equal(rows["inf"], [False, False, True, False])
        np.testing.assert_array_equal(rows["constant"][[0, 3]], [False, True])


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_tiled_plus_equals_tile_then_add(layout, dtype) -> None:
    from gradsight.backends.torch.ops import TorchOps

    ops = TorchOps()
    x = torch.randn(3, 2, 4, 5, dtype=dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    noise = np.random.default_rng(2).normal(size=(2 * 3, 2, 4, 5)).astype(np.float32)
    expected = ops.tile_batch(x, 2) + ops.from_numpy(noise.copy(), x)
    out = ops.tiled_plus(noise, x, 2)
    assert torch.equal(out, expected) and out.dtype == dtype
    assert out.is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")
    assert not x.requires_grad


def test_smoothgrad_noise_is_the_documented_draw() -> None:
    """Copy s gets seed [root, s]'s standard normals (float32, channels first) times sigma, whatever
    the batch size: a hand-written loop of that recipe gives the same attributions."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    x = torch.randn(5, 3, 8, 8)
    t = [0, 1, 2, 0, 1]
    flat = x.reshape(5, -1).numpy()
    sigma = (0.15 * (flat.max(1) - flat.min(1))).astype(np.float32).reshape(5, 1, 1, 1)
    total = np.zeros(x.shape, np.float32)
    for s in range(6):
        eps = np.random.default_rng([3, s]).standard_normal(tuple(x.shape), dtype=np.float32) * sigma
        rows = (x + torch.from_numpy(eps)).requires_grad_(True)
        (g,) = torch.autograd.grad(net(rows).gather(1, torch.tensor(t)[:, None]).sum(), rows)
        total += g.numpy()
    import gradsight as gs

    for bs in (2, 5, 64):
        for xl in (x, x.contiguous(memory_format=torch.channels_last)):
            out = gs.explain(net, xl, method="smoothgrad", target=t, samples=6, batch_size=bs, seed=3).attributions
            np.testing.assert_allclose(out, total / 6, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("h, w, out", [((8, 8, (32, 32))), ((7, 5, (224, 97))), ((32, 32, (16, 16)))])
def test_resize_matrix_path_equals_interpolate_and_keeps_non_finite_values_local(h, w, out) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    m = (rng.standard_normal((6, h, w)) * 10).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(m)[:, None], size=out, mode="bilinear",
                                          align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(maps.resize(m, out), ref, rtol=1e-6, atol=1e-6)
    m[2, h // 2, w // 2] = np.inf  # the two-tap path: inf reaches its neighbours only, as in F.interpolate
    got = maps.resize(m, out)
    ref = torch.nn.functional.interpolate(torch.from_numpy(m)[:, None], size=out, mode="bilinear",
                                          align_corners=False)[:, 0].numpy()
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(ref))
    assert np.isfinite(got[[0, 1, 3, 4, 5]]).all()
    np.testing.assert_allclose(got[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=1e-6, atol=1e-6)
