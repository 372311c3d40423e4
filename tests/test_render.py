"""Tests of gradsight.render against independent references and hand-worked numbers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from gradsight import render
from gradsight.render import (
    colorize,
    colorize_signed,
    grid,
    normalize,
    normalize_signed,
    overlay,
    reduce_channels,
    resize,
    save_png,
    to_rgb_uint8,
)


def _cmap(name):
    import matplotlib

    return matplotlib.colormaps[name]


def test_import_is_light():
    code = (
        "import sys, gradsight, gradsight.render;"
        "bad=[m for m in ('matplotlib','torch','tensorflow') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_all_is_complete():
    assert sorted(render.__all__) == sorted(
        ["normalize", "normalize_signed", "resize", "reduce_channels", "colorize",
         "colorize_signed", "to_rgb_uint8", "displayable", "overlay", "grid", "save_png",
         "caption", "colorbar", "labelled", "with_colorbar", "feature_bars", "signal_plot", "volume_strip"]
    )
    for name in render.__all__:
        assert callable(getattr(render, name))


# ---------------------------------------------------------------- resize


@pytest.mark.parametrize("in_hw", [(1, 1), (7, 7), (5, 9), (13, 3), (224, 224)])
@pytest.mark.parametrize(
    "out_hw", [(1, 1), (2, 300), (3, 5), (7, 7), (17, 11), (224, 224), (299, 301)]
)
def test_resize_matches_torch(in_hw, out_hw):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    x = np.random.default_rng(sum(in_hw) * 7 + sum(out_hw)).standard_normal((3, *in_hw))
    x = x.astype(np.float32)
    ref = F.interpolate(torch.from_numpy(x)[:, None], out_hw, mode="bilinear", align_corners=False)
    got = resize(x, out_hw)
    assert got.dtype == np.float32 and got.shape == (3, *out_hw)
    np.testing.assert_allclose(got, ref[:, 0].numpy(), rtol=0, atol=1e-6)
    # float64 in: torch computes in double, so do we
    ref64 = F.interpolate(torch.from_numpy(x.astype(np.float64))[:, None], out_hw,
                          mode="bilinear", align_corners=False)
    np.testing.assert_allclose(resize(x.astype(np.float64), out_hw), ref64[:, 0].numpy(),
                               rtol=0, atol=1e-6)


def test_resize_large_upsample_matches_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    x = np.random.default_rng(1).random((1, 14, 14), dtype=np.float32)
    ref = F.interpolate(torch.from_numpy(x)[:, None], (1001, 999), mode="bilinear",
                        align_corners=False)
    np.testing.assert_allclose(resize(x, (1001, 999)), ref[:, 0].numpy(), rtol=0, atol=1e-6)


def test_resize_2d_and_channels_last_and_tensor():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    x = np.random.default_rng(2).random((2, 6, 5, 3)).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), (9, 4), mode="bilinear",
                        align_corners=False).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(resize(x, (9, 4)), ref, rtol=0, atol=1e-6)
    assert resize(x[0, :, :, 0], (9, 4)).shape == (9, 4)
    np.testing.assert_allclose(resize(torch.from_numpy(x[..., 0]), (9, 4)), ref[..., 0], atol=1e-6)


def test_resize_hand_worked():
    # 1x2 -> 1x4: source x = (i + .5) / 2 - .5 = -.25 (clamped 0), .25, .75, 1.25 (clamped 1)
    got = resize(np.array([[0.0, 4.0]]), (1, 4))
    np.testing.assert_allclose(got, [[0.0, 1.0, 3.0, 4.0]])
    assert resize(np.array([[5.0]]), (3, 2)).tolist() == [[5.0] * 2] * 3


def test_resize_errors():
    with pytest.raises(ValueError, match="shape"):
        resize(np.zeros(4), (2, 2))
    with pytest.raises(ValueError, match="size"):
        resize(np.zeros((2, 2)), (0, 2))


# ---------------------------------------------------------------- normalize


def test_normalize_hand_worked():
    maps = np.array([[[1.0, 3.0], [5.0, 9.0]], [[-2.0, -2.0], [0.0, 2.0]]])
    got = normalize(maps)
    assert got.dtype == np.float32 and got.shape == (2, 2, 2)
    np.testing.assert_allclose(got[0], [[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_allclose(got[1], [[0.0, 0.0], [0.5, 1.0]])
    np.testing.assert_allclose(normalize(maps[0]), got[0])  # (H, W) in, (H, W) out


def test_normalize_constant_is_zero():
    got = normalize(np.full((2, 3, 3), 7.0))
    assert not np.isnan(got).any() and (got == 0).all()


def test_normalize_percentile_clip():
    # 0..99 and one outlier 1000; the 50th percentile of 0,1,...,99,1000 is 50
    flat = np.append(np.arange(100.0), 1000.0)
    got = normalize(flat.reshape(1, 1, -1), clip_percentile=50).ravel()
    assert got[0] == 0.0 and got[25] == pytest.approx(0.5)
    assert (got[50:] == 1.0).all()
    assert np.percentile(flat, 50) == 50.0
    with pytest.raises(ValueError, match="clip_percentile"):
        normalize(flat.reshape(1, -1), clip_percentile=0)


def test_normalize_signed():
    maps = np.array([[[-2.0, 0.0], [1.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]])
    got = normalize_signed(maps)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got[0], [[-0.5, 0.0], [0.25, 1.0]])
    assert (got[1] == 0).all()
    clipped = normalize_signed(np.array([[1.0, -2.0, 3.0, 100.0]]), clip_percentile=50)
    # 50th percentile of |.| = 2.5
    np.testing.assert_allclose(clipped, [[0.4, -0.8, 1.0, 1.0]])


# ---------------------------------------------------------------- reduce_channels


def test_reduce_channels_both_layouts():
    a = np.array([[1.0, -3.0], [2.0, 0.0]])  # channel 0 (H=1, W=2 after reshape below)
    b = np.array([[-2.0, 1.0], [2.0, 0.0]])  # channel 1
    nchw = np.stack([a, b])[None]  # (1, 2, 2, 2)
    nhwc = nchw.transpose(0, 2, 3, 1)
    expected = {
        "absmax": [[2.0, 3.0], [2.0, 0.0]],
        "abssum": [[3.0, 4.0], [4.0, 0.0]],
        "sum": [[-1.0, -2.0], [4.0, 0.0]],
        "l2": [[np.sqrt(5), np.sqrt(10)], [np.sqrt(8), 0.0]],
    }
    for how, want in expected.items():
        for arr, axis in ((nchw, 1), (nhwc, -1), (nhwc, 3)):
            got = reduce_channels(arr, channel_axis=axis, how=how)
            assert got.shape == (1, 2, 2) and got.dtype == np.float32
            np.testing.assert_allclose(got[0], want, rtol=1e-6)


def test_reduce_channels_errors():
    with pytest.raises(ValueError, match="'absmax', 'abssum', 'sum', 'l2'"):
        reduce_channels(np.zeros((1, 3, 2, 2)), 1, how="max")
    with pytest.raises(ValueError, match="shape"):
        reduce_channels(np.zeros((3, 2, 2)), 0)


# ---------------------------------------------------------------- colour


@pytest.mark.parametrize("name", ["jet", "gist_earth", "inferno", "viridis", "gray"])
def test_colorize_matches_matplotlib(name):
    x = np.random.default_rng(3).random((2, 5, 7))
    x[0, 0, :3] = [0.0, 1.0, 0.5]
    rgba = _cmap(name)(x)
    want = np.floor(rgba[..., :3] * 255 + 0.5).astype(np.uint8)
    got = colorize(x, name)
    assert got.dtype == np.uint8 and got.shape == (2, 5, 7, 3)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(colorize(x[1], name), want[1])


def test_colorize_known_values():
    # jet(0) = (0, 0, .5), jet(1) = (.5, 0, 0); gray is exact at both ends
    np.testing.assert_array_equal(colorize(np.array([[0.0, 1.0]]), "jet"),
                                  [[[0, 0, 128], [128, 0, 0]]])
    np.testing.assert_array_equal(colorize(np.array([[0.0, 1.0]]), "gray"), [[[0] * 3, [255] * 3]])
    # out of range is clipped
    np.testing.assert_array_equal(colorize(np.array([[-1.0, 2.0]]), "gray"), [[[0] * 3, [255] * 3]])


def test_colorize_unknown_lists_close_matches():
    with pytest.raises(ValueError, match="'jet'"):
        colorize(np.zeros((2, 2)), "jett")
    with pytest.raises(ValueError, match="'viridis'"):
        colorize(np.zeros((2, 2)), "viridas")


def test_colorize_signed_zero_is_centre():
    maps = np.array([[[-3.0, 0.0, 3.0]], [[0.0, 0.0, 0.0]]])
    got = colorize_signed(maps, "bwr")
    cm = _cmap("bwr")
    centre = np.floor(np.asarray(cm(0.5))[:3] * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(got[0, 0, 1], centre)
    assert (got[1] == centre).all()
    np.testing.assert_array_equal(got[0, 0, 0], np.floor(np.asarray(cm(0.0))[:3] * 255 + 0.5))
    np.testing.assert_array_equal(got[0, 0, 2], np.floor(np.asarray(cm(1.0))[:3] * 255 + 0.5))
    assert tuple(got[0, 0, 0]) == (0, 0, 255) and tuple(got[0, 0, 2]) == (255, 0, 0)


# ---------------------------------------------------------------- to_rgb_uint8


@pytest.fixture
def rgb_batch():
    return np.random.default_rng(4).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)


def test_to_rgb_uint8_array_forms(rgb_batch):
    want = rgb_batch
    np.testing.assert_array_equal(to_rgb_uint8(want), want)
    np.testing.assert_array_equal(to_rgb_uint8(want.transpose(0, 3, 1, 2)), want)
    np.testing.assert_array_equal(to_rgb_uint8(want.transpose(0, 3, 1, 2), layout="NCHW"), want)
    np.testing.assert_array_equal(to_rgb_uint8(want, layout="NHWC"), want)
    np.testing.assert_array_equal(to_rgb_uint8(want[0]), want[:1])
    np.testing.assert_array_equal(to_rgb_uint8(want[0].transpose(2, 0, 1)), want[:1])
    # floats in [0, 1] and in [0, 255]
    np.testing.assert_array_equal(to_rgb_uint8(want / 255.0), want)
    np.testing.assert_array_equal(to_rgb_uint8(want.astype(np.float32)), want)
    np.testing.assert_array_equal(to_rgb_uint8(np.array([[[0.5, 1.2, -0.1]]])), [[[[128, 255, 0]]]])


def test_to_rgb_uint8_gray_forms(rgb_batch):
    g = rgb_batch[..., 0]  # (2, 4, 5)
    want = np.repeat(g[..., None], 3, axis=-1)
    np.testing.assert_array_equal(to_rgb_uint8(g), want)
    np.testing.assert_array_equal(to_rgb_uint8(g[0]), want[:1])
    np.testing.assert_array_equal(to_rgb_uint8(g[..., None]), want)
    np.testing.assert_array_equal(to_rgb_uint8(g[:, None]), want)


def test_to_rgb_uint8_pil_list_tensor(rgb_batch):
    want = rgb_batch
    pil = [Image.fromarray(im) for im in want]
    np.testing.assert_array_equal(to_rgb_uint8(pil[1]), want[1:])
    np.testing.assert_array_equal(to_rgb_uint8(pil), want)
    np.testing.assert_array_equal(to_rgb_uint8([want[0], want[1]]), want)
    gray = Image.fromarray(want[0, ..., 0])  # mode "L"
    np.testing.assert_array_equal(to_rgb_uint8(gray), np.repeat(want[:1, ..., :1], 3, -1))
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(want.transpose(0, 3, 1, 2) / 255.0).requires_grad_(False)
    np.testing.assert_array_equal(to_rgb_uint8(t), want)


def test_to_rgb_uint8_errors():
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        to_rgb_uint8(np.zeros(5))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        to_rgb_uint8(np.zeros((1, 2, 3, 4, 5)))
    with pytest.raises(ValueError, match="channel"):
        to_rgb_uint8(np.zeros((2, 5, 6, 7)))
    with pytest.raises(ValueError, match="layout"):
        to_rgb_uint8(np.zeros((2, 5, 6, 3)), layout="CHW")
    with pytest.raises(ValueError, match="same size"):
        to_rgb_uint8([np.zeros((2, 2, 3)), np.zeros((3, 2, 3))])


# ---------------------------------------------------------------- overlay


def test_overlay_hand_worked():
    image = np.array([[[100, 0, 200], [10, 20, 30]], [[0, 0, 0], [255, 255, 255]]], dtype=np.uint8)
    heat = np.array([[0.0, 1.0], [1.0, 0.0]])
    out = overlay(image, heat, cmap="gray", alpha=0.25)
    assert isinstance(out, Image.Image) and out.size == (2, 2) and out.mode == "RGB"
    # 0.75 * image + 0.25 * (0 or 255), rounded
    want = [[[75, 0, 150], [71, 79, 86]], [[64, 64, 64], [191, 191, 191]]]
    np.testing.assert_array_equal(np.asarray(out), want)
    # jet ends: 0 -> (0, 0, 128), 1 -> (128, 0, 0); alpha 1 shows colour only
    out = np.asarray(overlay(image, heat, cmap="jet", alpha=1.0))
    np.testing.assert_array_equal(out[0, 0], [0, 0, 128])
    np.testing.assert_array_equal(out[0, 1], [128, 0, 0])
    np.testing.assert_array_equal(np.asarray(overlay(image, heat, alpha=0.0)), image)


def test_overlay_resizes_heatmap():
    image = np.zeros((8, 6, 3), dtype=np.uint8)
    heat = np.array([[0.0, 1.0]])
    out = np.asarray(overlay(image, heat, cmap="gray", alpha=1.0))
    assert out.shape == (8, 6, 3)
    want = colorize(resize(heat, (8, 6)), "gray")
    np.testing.assert_array_equal(out, want)
    # CHW float image and a (1, h, w) heatmap are accepted
    out2 = overlay(image.transpose(2, 0, 1) / 255.0, heat[None], cmap="gray", alpha=1.0)
    np.testing.assert_array_equal(np.asarray(out2), want)


def test_overlay_errors():
    with pytest.raises(ValueError, match="alpha"):
        overlay(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2)), alpha=1.5)
    with pytest.raises(ValueError, match="single image"):
        overlay(np.zeros((2, 2, 2, 3), np.uint8), np.zeros((2, 2)))


# ---------------------------------------------------------------- grid / save


def _text_band_has_ink(img, box):
    band = np.asarray(img.crop(box)).astype(int)
    return (np.abs(band - 255).sum(axis=-1) > 0).sum()


@pytest.mark.parametrize("src, tile_size", [(64, 160), (224, None)])
def test_grid_size_and_text(src, tile_size):
    rng = np.random.default_rng(5)
    tiles = [[rng.integers(0, 256, (src, src, 3), dtype=np.uint8) for _ in range(3)]
             for _ in range(2)]
    tiles[1][2] = Image.fromarray(tiles[1][2])
    tiles[0][1] = rng.integers(0, 256, (src, src), dtype=np.uint8)  # grayscale
    cell = tile_size or src
    pad = 4
    plain = grid(tiles, tile_size=tile_size, pad=pad)
    assert plain.size == (pad + 3 * (cell + pad), pad + 2 * (cell + pad))
    img = grid(tiles, titles=["input", "saliency", "grad-cam"], row_labels=["cat", "dog"],
               tile_size=tile_size, pad=pad)
    w, h = img.size
    assert w > plain.width and h > plain.height
    extra_h, extra_w = h - plain.height, w - plain.width
    # title band (above the tiles) and label column (left of tiles) contain dark pixels
    assert _text_band_has_ink(img, (extra_w, 0, w, extra_h)) > 20
    assert _text_band_has_ink(img, (0, extra_h, extra_w, h)) > 20
    # tiles are where expected: first tile, resized, at (pad + extra_w, pad + extra_h)
    first = Image.fromarray(tiles[0][0]).resize((cell, cell), Image.Resampling.BICUBIC) \
        if cell != src else Image.fromarray(tiles[0][0])
    x0, y0 = pad + extra_w, pad + extra_h
    got = np.asarray(img.crop((x0, y0, x0 + cell, y0 + cell)))
    np.testing.assert_array_equal(got, np.asarray(first))


def test_grid_ragged_default_size_and_long_title():
    small = np.zeros((10, 20, 3), np.uint8)
    big = np.zeros((30, 15, 3), np.uint8)
    img = grid([[small], [big, None]], titles=["a very long title that must wrap", "b"], pad=2)
    # cell = (max w, max h) = (20, 30); two columns, two rows, plus a title band
    assert img.width == 2 + 2 * 22 and img.height > 2 + 2 * 32
    with pytest.raises(ValueError, match="titles"):
        grid([[small]], titles=["a", "b"])
    with pytest.raises(ValueError):
        grid([])


def test_save_png_round_trip(tmp_path):
    rgb = np.random.default_rng(6).integers(0, 256, (12, 9, 3), dtype=np.uint8)
    path = save_png(rgb, tmp_path / "a" / "b" / "x.png")
    assert path == tmp_path / "a" / "b" / "x.png" and path.is_file()
    with Image.open(path) as back:
        assert back.format == "PNG" and back.size == (9, 12)
        arr = np.asarray(back.convert("RGB"))
    np.testing.assert_array_equal(arr, rgb)
    assert arr.std() > 0
    img = grid([[rgb, rgb]], titles=["x", "y"])
    path = save_png(img, str(tmp_path / "g.png"))
    with Image.open(path) as back:
        assert back.size == img.size and np.asarray(back).std() > 0
