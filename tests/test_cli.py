"""The ``gradsight`` command end to end: real PNG files in, PNG files out, one-line errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gradsight.cli import main
from gradsight.demo.shapes import CLASSES, generate
from gradsight.demo.shapes import preprocess as demo_preprocess
from gradsight.errors import InputError, ModelError
from gradsight.models import load_model, preprocess


@pytest.fixture(scope="module")
def shapes_pngs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three generated shapes images written as PNG files (the first two of a distinct size)."""
    folder = tmp_path_factory.mktemp("images")
    data = generate(3, seed=11)
    paths = []
    for i, im in enumerate(data.images):
        pic = Image.fromarray(im)
        if i < 2:  # the CLI must resize what it reads
            pic = pic.resize((96, 80))
        paths.append(folder / f"shape{i}.png")
        pic.save(paths[-1])
    return paths


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "RGB"
        return np.asarray(im)


def _assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gradsight: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


# --------------------------------------------------------------------------- entry points


def test_python_dash_m_help_runs_without_torch() -> None:
    proc = subprocess.run([sys.executable, "-m", "gradsight", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for command in ("explain", "layers", "demo"):
        assert command in proc.stdout
    # Help must stay fast: the CLI module loads no framework until a command needs one.
    code = "import sys, gradsight.cli; gradsight.cli.build_parser(); print('torch' in sys.modules)"
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "False", probe.stderr


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: gradsight" in capsys.readouterr().err


# --------------------------------------------------------------------------- explain


def test_explain_one_method_writes_an_overlay_per_image(
    shapes_pngs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["explain", *map(str, shapes_pngs), "--model", "demo", "--method", "gradcam", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "3/3" in err  # a progress bar for several images
    lines = out.strip().splitlines()
    assert len(lines) == 3
    for path, line in zip(shapes_pngs, lines):
        assert line.startswith(f"{path}: predicted ")
        assert any(f"({name})" in line for name in CLASSES)
        pic = _read(tmp_path / f"{path.stem}_gradcam.png")
        # The demo model sees 64x64; pictures are drawn at 128 px so they can be looked at.
        assert pic.shape == (128, 128, 3)
        assert pic.std() > 5


def test_explain_overlay_is_the_gradcam_heatmap_over_the_input(shapes_pngs: list[Path], tmp_path: Path) -> None:
    """The written picture equals 0.5 * image + 0.5 * jet(heat map) computed through the API."""
    import gradsight as gs
    from gradsight import render

    path = shapes_pngs[2]  # already 64x64: no resizing in the way
    assert main(["explain", str(path), "--model", "demo", "--out", str(tmp_path), "--alpha", "0.4"]) == 0
    image = np.asarray(Image.open(path).convert("RGB"))
    model, _ = load_model("demo")
    exp = gs.explain(model, demo_preprocess(image[None]), "gradcam")
    big = np.asarray(Image.fromarray(image).resize((128, 128), Image.Resampling.BICUBIC))
    expected = np.asarray(render.overlay(big, exp.heatmaps[0], cmap="jet", alpha=0.4))
    got = _read(tmp_path / f"{path.stem}_gradcam.png")
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_explain_all_writes_one_grid_per_image(
    shapes_pngs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["explain", *map(str, shapes_pngs[:2]), "--model", "demo", "--method", "all", "--samples", "4"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shape0_grid.png", "shape1_grid.png"]
    grid = _read(tmp_path / "shape0_grid.png")
    # Seven 128-px tiles side by side under a row of titles.
    assert 7 * 128 < grid.shape[1] < 7 * 140
    assert 128 < grid.shape[0] < 200
    tiles = [grid[-132:-4, 4 + k * 132: 4 + k * 132 + 128].astype(int) for k in range(7)]
    assert all(t.std() > 5 for t in tiles)
    for k in range(1, 7):  # every method drew something different from the input
        assert np.abs(tiles[k] - tiles[0]).mean() > 5
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 2
    assert "12/12" in err  # the progress bar: 2 images x 6 methods


def test_explain_target_and_layer_reach_the_method(
    shapes_pngs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(shapes_pngs[2])
    rc = main(["explain", path, "--model", "demo", "--method", "gradcam", "--target", "0", "--layer", "conv3",
               "--out", str(tmp_path / "a")])
    assert rc == 0
    assert main(["explain", path, "--model", "demo", "--method", "gradcam", "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    a, b = _read(tmp_path / "a" / "shape2_gradcam.png"), _read(tmp_path / "b" / "shape2_gradcam.png")
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1
    pred = int(out.split("predicted ")[1].split()[0])
    if pred != 0:
        assert "explained 0 (circle)" in out


def test_explain_layer_is_ignored_with_a_warning_for_gradient_methods(
    shapes_pngs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["explain", str(shapes_pngs[2]), "--model", "demo", "--method", "saliency", "--layer", "conv3",
               "--out", str(tmp_path)])
    assert rc == 0
    assert "warning: --layer is used only by gradcam" in capsys.readouterr().err
    assert _read(tmp_path / "shape2_saliency.png").std() > 5


def test_explain_same_stem_in_two_folders_gets_two_files(shapes_pngs: list[Path], tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    twin = other / shapes_pngs[0].name
    twin.write_bytes(shapes_pngs[1].read_bytes())
    out = tmp_path / "out"
    assert main(["explain", str(shapes_pngs[0]), str(twin), "--model", "demo", "--method", "saliency",
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["shape0_2_saliency.png", "shape0_saliency.png"]


# --------------------------------------------------------------------------- layers


def test_layers_lists_calls_in_order_and_marks_the_auto_layer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["layers", "--model", "demo"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [r[0] for r in rows] == [
        "conv1", "bn1", "relu", "pool1", "conv2", "bn2", "relu", "pool2",
        "conv3", "bn3", "relu", "pool3", "conv4", "bn4", "relu4", "gap", "classifier",
    ]  # fmt: skip
    marked = [line for line in out.splitlines() if "<- auto" in line]
    assert len(marked) == 1
    assert marked[0].split()[:2] == ["relu4", "ReLU"]
    assert "(1, 64, 8, 8)" in marked[0]
    assert "(1, 5)" in out


# --------------------------------------------------------------------------- bad input


@pytest.fixture()
def bad_png(tmp_path: Path) -> Path:
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture")
    return path


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["explain", "{missing}", "--model", "demo", "--out", "{out}"], ["image file not found", "nope.png"]),
        (["explain", "{bad}", "--model", "demo", "--out", "{out}"], ["cannot read", "notes.png"]),
        (["explain", "{good}", "--model", "demo", "--layer", "conv9", "--out", "{out}"], ["conv9", "Did you mean"]),
        (["explain", "{good}", "--model", "demo", "--method", "gradcan", "--out", "{out}"], ["gradcan", "'gradcam'"]),
        (["explain", "{good}", "--model", "demo", "--target", "7", "--out", "{out}"], ["7"]),
        (["explain", "{good}", "--model", "demo", "--target", "cat", "--out", "{out}"], ["--target"]),
        (["explain", "{good}", "--model", "demo", "--cmap", "jett", "--out", "{out}"], ["jett", "'jet'"]),
        (["explain", "{good}", "--model", "no_such_pkg_zz.net:build", "--out", "{out}"], ["no_such_pkg_zz"]),
        (["explain", "{good}", "--model", "gradsight.demo.model:NoSuchNet", "--out", "{out}"], ["NoSuchNet"]),
        (["explain", "{good}", "--model", "{missing_pt}", "--out", "{out}"], ["model file not found"]),
        (["explain", "{good}", "--out", "{out}"], ["--model"]),
        (["layers", "--model", "resnet"], ["resnet"]),
        (["demo", "--n", "0"], ["--n"]),
    ],
    ids=["missing-image", "unreadable-image", "unknown-layer", "unknown-method", "target-out-of-range",
         "target-not-int", "unknown-cmap", "missing-module", "missing-factory", "missing-model-file",
         "missing-model-arg", "bad-spec", "bad-n"],
)
def test_bad_input_exits_2_with_one_line(
    args: list[str], needles: list[str], tmp_path: Path, shapes_pngs: list[Path], bad_png: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fill = {"missing": str(tmp_path / "nope.png"), "bad": str(bad_png), "good": str(shapes_pngs[2]),
            "out": str(tmp_path / "out"), "missing_pt": str(tmp_path / "gone.pt")}
    rc = main([a.format(**fill) for a in args])
    out, err = capsys.readouterr()
    _assert_one_line_error(rc, err, *needles)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_debug_shows_the_exception(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="image file not found"):
        main(["explain", str(tmp_path / "nope.png"), "--model", "demo", "--out", str(tmp_path), "--debug"])
    with pytest.raises(InputError):  # --debug before the command works as well
        main(["--debug", "explain", str(tmp_path / "nope.png"), "--model", "demo", "--out", str(tmp_path)])


def test_keras_demo_missing_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "gradsight.demo.keras_model", None)  # makes the import fail
    rc = main(["demo", "--framework", "keras", "--out", str(tmp_path)])
    _assert_one_line_error(rc, capsys.readouterr().err, "Keras demo model is not available", "--framework torch")


# --------------------------------------------------------------------------- model specs

TINY = textwrap.dedent(
    """
    import torch
    from torch import nn
    import torch.nn.functional as F


    class TinyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            x = F.relu(self.conv(x))
            return self.head(x.mean((2, 3)))


    def build():
        return TinyNet()


    def build_named():
        net = TinyNet()
        net.class_names = ["cat", "dog", "fox"]
        net.input_size = 40
        return net


    def broken():
        raise ValueError("factory exploded")
    """
)


@pytest.fixture()
def tiny_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A model module written into tmp_path and importable for this test only."""
    name = f"tinynet_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(TINY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_factory_spec_with_weights_loads_the_state_dict(tiny_module: str, tmp_path: Path) -> None:
    module = __import__(tiny_module)
    torch.manual_seed(3)
    saved = module.build()
    torch.save(saved.state_dict(), tmp_path / "w.pt")

    fresh, info = load_model(f"{tiny_module}:build")
    model, info = load_model(f"{tiny_module}:build", weights=str(tmp_path / "w.pt"))
    for (name, p), q in zip(model.state_dict().items(), saved.state_dict().values()):
        assert torch.equal(p, q), name
    assert not torch.equal(fresh.conv.weight, saved.conv.weight)
    assert (info.framework, info.layout, info.input_size, info.preprocessing) == ("torch", "NCHW", None, "imagenet")

    _, named = load_model(f"{tiny_module}:build_named")
    assert named.class_names == ("cat", "dog", "fox") and named.input_size == 40


def test_factory_spec_end_to_end(
    tiny_module: str, tmp_path: Path, shapes_pngs: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    torch.save(__import__(tiny_module).build().state_dict(), tmp_path / "w.pt")
    out = tmp_path / "out"
    rc = main(["explain", str(shapes_pngs[0]), "--model", f"{tiny_module}:build_named", "--weights",
               str(tmp_path / "w.pt"), "--method", "guided_backprop", "--out", str(out)])
    stdout, err = capsys.readouterr()
    assert rc == 0, err
    assert any(f"({n})" in stdout for n in ("cat", "dog", "fox"))
    pic = _read(out / "shape0_guided_backprop.png")
    assert pic.shape == (128, 128, 3) and pic.std() > 1  # input_size 40, drawn at 128

    assert main(["layers", "--model", f"{tiny_module}:build", "--size", "32"]) == 0
    listing = capsys.readouterr().out
    assert "(1, 4, 32, 32)" in listing and "<- auto" in listing


def test_factory_spec_errors(tiny_module: str, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="factory exploded"):
        load_model(f"{tiny_module}:broken")
    with pytest.raises(ModelError, match="Did you mean: 'build'"):
        load_model(f"{tiny_module}:buidl")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ModelError, match="do not fit"):
        load_model(f"{tiny_module}:build", weights=str(tmp_path / "bad.pt"))
    with pytest.raises(ModelError, match="weights file not found"):
        load_model(f"{tiny_module}:build", weights=str(tmp_path / "none.pt"))
    with pytest.raises(ModelError, match="--framework keras"):
        load_model(f"{tiny_module}:build", framework="keras")


def test_weights_file_holding_a_pickled_model_is_not_unpickled(tiny_module: str, tmp_path: Path) -> None:
    torch.save(__import__(tiny_module).build(), tmp_path / "whole.pt")
    with pytest.raises(ModelError, match="weights_only=True"):
        load_model(f"{tiny_module}:build", weights=str(tmp_path / "whole.pt"))


def test_pickled_model_needs_trust_pickle(
    tiny_module: str, tmp_path: Path, shapes_pngs: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    torch.save(__import__(tiny_module).build(), tmp_path / "whole.pt")
    args = ["explain", str(shapes_pngs[0]), "--model", str(tmp_path / "whole.pt"), "--out", str(tmp_path / "o")]
    rc = main(args)
    _assert_one_line_error(rc, capsys.readouterr().err, "unpickling runs code", "--trust-pickle")
    assert not (tmp_path / "o").exists()

    assert main([*args, "--trust-pickle", "--method", "saliency"]) == 0
    assert _read(tmp_path / "o" / "shape0_saliency.png").std() > 1

    torch.save(__import__(tiny_module).build().state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ModelError, match="state_dict"):
        load_model(str(tmp_path / "sd.pt"), trust_pickle=True)


# --------------------------------------------------------------------------- preprocessing


def test_preprocess_matches_the_references() -> None:
    images = generate(2, seed=4).images
    np.testing.assert_allclose(preprocess(images, "demo", "NCHW"), demo_preprocess(images, "NCHW"), rtol=1e-6)
    np.testing.assert_allclose(preprocess(images, "demo", "NHWC"), demo_preprocess(images, "NHWC"), rtol=1e-6)
    px = images[1, 5, 7].astype(np.float64) / 255
    want = (px - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(preprocess(images, "imagenet", "NCHW")[1, :, 5, 7], want, rtol=1e-5)
    np.testing.assert_allclose(preprocess(images, "none", "NHWC")[1, 5, 7], px, rtol=1e-6)


def test_keras_model_file_end_to_end(
    tmp_path: Path, shapes_pngs: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    keras = pytest.importorskip("keras")
    pytest.importorskip("gradsight.backends.keras")
    model = keras.Sequential([
        keras.Input((48, 48, 3)),
        keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
        keras.layers.Conv2D(6, 3, activation="relu", name="c2"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(3, name="head"),
    ])  # fmt: skip
    model.save(tmp_path / "tiny.keras")
    spec = str(tmp_path / "tiny.keras")

    _, info = load_model(spec)
    assert (info.framework, info.layout, info.input_size) == ("keras", "NHWC", 48)
    assert main(["layers", "--model", spec]) == 0
    listing = capsys.readouterr().out
    marked = [line for line in listing.splitlines() if "<- auto" in line]
    assert len(marked) == 1 and marked[0].split()[:3] == ["c2", "Conv2D", "(1,"]

    out = tmp_path / "out"
    rc = main(["explain", str(shapes_pngs[0]), "--model", spec, "--method", "gradcam", "--layer", "c1",
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    pic = _read(out / "shape0_gradcam.png")
    assert pic.shape == (128, 128, 3) and pic.std() > 5
    capsys.readouterr()  # the successful run's notes (preprocessing) are not part of the next error
    rc = main(["explain", str(shapes_pngs[0]), "--model", spec, "--weights", spec, "--out", str(out)])
    _assert_one_line_error(rc, capsys.readouterr().err, "--weights")
