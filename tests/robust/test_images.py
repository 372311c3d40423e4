"""How the CLI reads pictures (issue 9, finding 3, images): 16-bit, EXIF, bombs, sizes, aspect."""

from __future__ import annotations

import numpy as np
from PIL import Image

from gradsight.cli import _images, main
from robust_helpers import one_line_error


def test_16_bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # really a 16-bit file
    rgb = np.asarray(_images.read_image(path))
    expected = np.round(ramp.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert rgb.shape == (48, 64, 3)
    np.testing.assert_array_equal(rgb[..., 0], expected)
    np.testing.assert_array_equal(rgb[..., 1], expected)
    assert rgb.mean() < 140  # before: clipped to 255 almost everywhere


def test_exif_orientation_is_applied(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)  # stored landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": a phone held upright
    path = tmp_path / "phone.png"
    Image.fromarray(pixels).save(path, exif=exif)
    got = np.asarray(_images.read_image(path))
    np.testing.assert_array_equal(got, np.rot90(pixels, k=-1))  # independent: numpy's clockwise rotation


def test_decompression_bomb_is_exit_2_one_line(tmp_path, monkeypatch, capsys):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (200, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 40000 px > 2 x limit: Pillow refuses
    rc = main(["explain", str(path), "--model", "demo", "--out", str(tmp_path / "o")])
    one_line_error(rc, capsys.readouterr().err, "bomb.png", "decompression bomb")


def test_size_has_a_clear_limit(tmp_path, capsys):
    path = tmp_path / "a.png"
    Image.new("RGB", (20, 20)).save(path)
    rc = main(["explain", str(path), "--model", "demo", "--size", "100000", "--out", str(tmp_path / "o")])
    one_line_error(rc, capsys.readouterr().err, "--size", "2048", "100000")


def test_resize_modes_against_hand_made_squares():
    rng = np.random.default_rng(1)
    wide = rng.integers(1, 255, (40, 60, 3), dtype=np.uint8)  # H=40, W=60
    im = Image.fromarray(wide)
    np.testing.assert_array_equal(np.asarray(_images.square(im, "crop")), wide[:, 10:50])
    fit = np.asarray(_images.square(im, "fit"))
    assert fit.shape == (60, 60, 3)
    np.testing.assert_array_equal(fit[10:50], wide)
    assert not fit[:10].any() and not fit[50:].any()  # black bars
    assert _images.square(im, "squash") is im  # stretched later by the resize to the model's square


def test_squash_is_announced_and_crop_is_not(tmp_path, capsys):
    path = tmp_path / "wide.png"
    Image.fromarray(np.full((40, 80, 3), 120, np.uint8)).save(path)
    assert main(["explain", str(path), "--model", "demo", "--out", str(tmp_path / "a")]) == 0
    assert "squashed to a square; --resize fit or crop" in capsys.readouterr().err
    assert main(["explain", str(path), "--model", "demo", "--out", str(tmp_path / "b"), "--resize", "crop"]) == 0
    assert "squash" not in capsys.readouterr().err


def test_model_input_plan_reads_like_explain_16_bit_exif_and_resize_for_gray_models(tmp_path):
    """Issue 10's input plan (1-channel models read in L mode) keeps issue 9's reading rules."""
    from gradsight.cli._inputs import read_images

    ramp = np.linspace(0, 65535, 40 * 60).reshape(40, 60).astype(np.uint16)  # H=40, W=60
    deep = tmp_path / "deep.png"
    Image.fromarray(ramp).save(deep)
    (gray,), note = read_images([deep], channels=1, resize="crop")
    expected = np.round(ramp.astype(np.float64) * 255 / 65535).astype(np.uint8)
    assert gray.mode == "L" and note is None  # 16-bit gray is gray: nothing converted to say
    np.testing.assert_array_equal(np.asarray(gray), expected[:, 10:50])  # scaled, not clipped; centre square

    pixels = np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    phone = tmp_path / "phone.png"
    Image.fromarray(pixels).save(phone, exif=exif)
    (rgb,), _ = read_images([phone], channels=3, resize="squash")
    np.testing.assert_array_equal(np.asarray(rgb), np.rot90(pixels, k=-1))
