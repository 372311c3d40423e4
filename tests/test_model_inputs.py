"""Getting images into the model users bring: channel count and rank (gray, RGB, RGBA; with or
without a channel axis), preprocessing modes and their defaults, pictures from normalised input,
the automatic Grad-CAM layer, and the messages around them.

References: Keras' own ``preprocess_input`` functions (caffe, tf, torch modes), formulas written
out in the test, and hand-built models whose right answer is known.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import gradsight as gs
from gradsight.backends.autolayer import pick
from gradsight.cli import main
from gradsight.inputs import InputSpec, preprocess
from gradsight.models import default_preprocessing, input_spec
from helpers import assert_rel

keras = pytest.importorskip("keras")

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 256, (2, 5, 5, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- preprocessing modes


def test_preprocessing_modes_match_keras_preprocess_input() -> None:
    from keras.applications import imagenet_utils

    raw = PIXELS.astype(np.float32)
    nhwc = InputSpec("NHWC", 3)
    assert_rel(preprocess(PIXELS, "caffe", nhwc), imagenet_utils.preprocess_input(raw.copy(), mode="caffe"), 1e-6)
    assert_rel(preprocess(PIXELS, "tf", nhwc), imagenet_utils.preprocess_input(raw.copy(), mode="tf"), 1e-6)
    assert_rel(preprocess(PIXELS, "imagenet", nhwc), imagenet_utils.preprocess_input(raw.copy(), mode="torch"), 1e-6)
    assert_rel(preprocess(PIXELS, "unit", nhwc), raw / 255, 1e-7)
    assert_rel(preprocess(PIXELS, "raw", nhwc), raw, 0)
    nchw = preprocess(PIXELS, "imagenet", InputSpec("NCHW", 3))
    np.testing.assert_array_equal(nchw, preprocess(PIXELS, "imagenet", nhwc).transpose(0, 3, 1, 2))


def test_gray_and_rankless_layouts() -> None:
    gray = PIXELS[..., 0]
    g = gray.astype(np.float32)
    assert_rel(preprocess(gray, "unit", InputSpec("NHW", 1)), g / 255, 1e-7)
    assert preprocess(gray, "unit", InputSpec("NCHW", 1)).shape == (2, 1, 5, 5)
    assert_rel(preprocess(gray, "unit", InputSpec("NF", 1)), g.reshape(2, 25) / 255, 1e-7)
    mean, std = np.mean([0.485, 0.456, 0.406]), np.mean([0.229, 0.224, 0.225])
    assert_rel(preprocess(gray, "imagenet", InputSpec("NHWC", 1))[..., 0], (g / 255 - mean) / std, 1e-6)
    assert_rel(preprocess(gray, "caffe", InputSpec("NHW", 1)), g - np.mean([103.939, 116.779, 123.68]), 1e-6)
    rgba = np.concatenate([PIXELS, RNG.integers(0, 256, (2, 5, 5, 1), dtype=np.uint8)], -1)
    out = preprocess(rgba, "imagenet", InputSpec("NHWC", 4))
    assert_rel(out[..., :3], preprocess(PIXELS, "imagenet", InputSpec("NHWC", 3)), 1e-6)
    assert_rel(out[..., 3], rgba[..., 3] / 255.0, 1e-7)


# --------------------------------------------------------------------------- what the model takes


class TorchMnistMLP(nn.Module):
    """Takes (N, 28, 28): flattens itself."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 3, "takes (N, 28, 28)"
        return self.net(x)


def _keras_mnist_mlp() -> keras.Model:
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(10, activation="softmax")])


def _keras_mnist_cnn() -> keras.Model:
    keras.utils.set_random_seed(2)
    L = keras.layers
    return keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(),
                             L.Flatten(), L.Dense(10, activation="softmax")])


def test_input_spec_of_models_users_bring() -> None:
    torch.manual_seed(0)
    assert input_spec(_keras_mnist_cnn()) == InputSpec("NHWC", 1, (28, 28))
    assert input_spec(_keras_mnist_mlp()) == InputSpec("NHW", 1, (28, 28))
    flat = keras.Sequential([keras.Input((784,)), keras.layers.Dense(3)])
    assert input_spec(flat) == InputSpec("NF", 1, (28, 28))
    assert input_spec(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())) == InputSpec("NCHW", 1)
    assert input_spec(nn.Sequential(nn.Conv2d(4, 2, 3))) == InputSpec("NCHW", 4)
    assert input_spec(TorchMnistMLP()) == InputSpec("NHW", 1, (28, 28))
    assert input_spec(nn.Sequential(nn.Linear(784, 3))) == InputSpec("NF", 1, (28, 28))
    with pytest.raises(gs.InputError, match="2 input channels"):
        input_spec(nn.Sequential(nn.Conv2d(2, 2, 3)))


# --------------------------------------------------------------------------- 1-channel and rankless models, CLI


def torch_mnist_mlp() -> nn.Module:
    torch.manual_seed(3)
    return TorchMnistMLP()


def torch_mnist_cnn() -> nn.Module:
    torch.manual_seed(4)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 13 * 13, 10))


def torch_flat() -> nn.Module:
    torch.manual_seed(11)
    return nn.Sequential(nn.Linear(784, 10))


def keras_mnist_mlp() -> keras.Model:
    return _keras_mnist_mlp()


def keras_mnist_cnn() -> keras.Model:
    return _keras_mnist_cnn()


@pytest.fixture()
def digit_rgb(tmp_path: Path) -> Path:
    """A digit saved as an RGB PNG, as users' scans often are."""
    img = np.zeros((28, 28, 3), np.uint8)
    img[4:24, 12:16] = 255
    path = tmp_path / "digit.png"
    Image.fromarray(img).save(path)
    return path


@pytest.mark.parametrize(
    "factory", ["torch_mnist_mlp", "torch_mnist_cnn", "torch_flat", "keras_mnist_mlp", "keras_mnist_cnn"]
)
def test_cli_layers_and_explain_on_one_channel_models(
    factory: str, digit_rgb: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    spec = f"test_model_inputs:{factory}"
    assert main(["layers", "--model", spec]) == 0
    out = capsys.readouterr()
    assert "warning" not in out.err, out.err
    mlp = "mlp" in factory or "flat" in factory
    shape = "(1, 784)" if "flat" in factory else "(1, 28, 28)" if mlp else "(1, 1, 28, 28)" if "torch" in factory else "(1, 28, 28, 1)"
    assert shape in out.out
    assert ("no layer has a spatial" in out.out) == mlp

    rc = main(["explain", str(digit_rgb), "--model", spec, "--method", "saliency", "--out", str(tmp_path / "o")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "images converted RGB -> gray" in out.err
    assert "--preprocess unit" in out.err  # the guess is said
    # The picture is the saliency of the gray [0, 1] digit: recompute it with the API.
    gray = np.asarray(Image.open(digit_rgb).convert("L"), np.float32) / 255
    model = globals()[factory]()
    x = gray.reshape(1, 784) if "flat" in factory else gray[None] if mlp else (
        gray[None, None] if "torch" in factory else gray[None, ..., None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = gs.saliency(model, x, logits="keras" in factory)
    pred = int(exp.outputs[0].argmax())
    assert f"predicted {pred} " in out.out

    if mlp:
        rc = main(["explain", str(digit_rgb), "--model", spec, "--method", "guided_gradcam", "--out", str(tmp_path)])
        err = capsys.readouterr().err
        assert rc == 2 and "guided_backprop or saliency" in err and "needs image batches" not in err


# --------------------------------------------------------------------------- preprocessing defaults


def keras_with_rescaling() -> keras.Model:
    keras.utils.set_random_seed(5)
    L = keras.layers
    return keras.Sequential([keras.Input((16, 16, 3)), L.Rescaling(1 / 255), L.Conv2D(3, 3), L.GlobalAveragePooling2D(),
                             L.Dense(3)])


def test_preprocessing_default_from_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_preprocessing(keras_with_rescaling()) == ("raw", None)
    norm = keras.layers.Normalization()
    norm.adapt(RNG.random((20, 3)).astype(np.float32))
    unit_model = keras.Sequential([keras.Input((3,)), norm, keras.layers.Dense(2)])
    assert default_preprocessing(unit_model) == ("unit", None)
    assert default_preprocessing(_keras_mnist_cnn())[0] == "unit"
    mode, note = default_preprocessing(nn.Sequential(nn.Conv2d(3, 2, 3)))
    assert mode == "imagenet" and "--preprocess" in note
    assert default_preprocessing(nn.Sequential(nn.Conv2d(3, 2, 3)), "demo") == ("demo", None)

    # The CLI feeds raw pixels to the model with a Rescaling layer: its score is the model's on raw pixels.
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    img = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    rc = main(["explain", str(tmp_path / "a.png"), "--model", "test_model_inputs:keras_with_rescaling",
               "--method", "saliency", "--out", str(tmp_path / "o")])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "--preprocess" not in out.err  # known from the model: no note
    y = keras_with_rescaling()(img[None].astype(np.float32)).numpy()[0]
    assert f"score {float(y.max()):.4g}" in out.out


def test_save_with_normalised_model_input_de_normalises_with_a_warning(tmp_path: Path) -> None:
    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 28 * 28, 3))
    digit = np.zeros((1, 1, 28, 28), np.float32)
    digit[..., 4:24, 12:16] = 1.0
    x = (digit - 0.1307) / 0.3081  # the MNIST normalisation
    exp = gs.saliency(model, x)
    with pytest.warns(gs.GradsightWarning, match="normalised model input"):
        (a,) = exp.save(tmp_path / "a", x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (b,) = exp.save(tmp_path / "b", digit)
    pa, pb = np.asarray(Image.open(a), np.int16), np.asarray(Image.open(b), np.int16)
    assert np.abs(pa - pb).max() <= 1  # the digit is there, as with the original image


# --------------------------------------------------------------------------- the automatic layer


def test_pick_rule() -> None:
    hw8, hw4 = (8, 8), (4, 4)
    # CIFAR VGG-style: conv, relu, pool, dropout -> the conv stage's last output at 8x8
    assert pick(["Conv2d", "ReLU", "MaxPool2d", "Dropout"], [hw8, hw8, hw4, hw4]) == 1
    # ResNet: conv3, bn3, relu, block, stage (all 7x7) -> the stage
    assert pick(["Conv2d", "BatchNorm2d", "ReLU", "Bottleneck", "Sequential"], [(7, 7)] * 5) == 4
    assert pick(["Conv2D", "Dropout"], [hw8, hw8]) == 0  # a dropout at the same size is not taken
    assert pick(["Dense", "Reshape"], [hw8, hw8]) == 1  # no convolution: the last spatial layer
    assert pick([], []) is None


def keras_cifar() -> keras.Model:
    keras.utils.set_random_seed(7)
    L = keras.layers
    return keras.Sequential([
        keras.Input((16, 16, 3)), L.Conv2D(4, 3, padding="same", activation="relu", name="conv1"),
        L.MaxPooling2D(name="pool1"), L.Conv2D(6, 3, padding="same", activation="relu", name="conv2"),
        L.MaxPooling2D(name="pool2"), L.Dropout(0.25, name="drop"), L.Flatten(), L.Dense(4, name="head"),
    ])


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)) + x)


def test_automatic_layer_is_the_last_conv_stage(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    model = keras_cifar()
    x = RNG.random((2, 16, 16, 3), dtype=np.float32)
    exp = gs.gradcam(model, x)
    assert exp.layer == "conv2" and exp.attributions.shape == (2, 8, 8)
    assert_rel(exp.attributions, gs.gradcam(model, x, layer="conv2").attributions, 0)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    assert main(["layers", "--model", "test_model_inputs:keras_cifar"]) == 0
    marked = [ln for ln in capsys.readouterr().out.splitlines() if "<- auto" in ln]
    assert len(marked) == 1 and marked[0].split()[0] == "conv2"

    torch.manual_seed(8)
    vgg = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout2d(0.2),
                        nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    xt = torch.rand(2, 3, 16, 16)
    assert gs.gradcam(vgg, xt).layer == "1"  # the ReLU after the last conv, at 16x16, not pool/dropout at 8x8
    res = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Sequential(ResBlock(4), ResBlock(4)),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    assert gs.gradcam(res, xt).layer == "1"  # the whole stage (after the residual addition)


def test_unknown_layer_with_no_close_match_lists_the_convolutions(capsys: pytest.CaptureFixture[str],
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(gs.LayerNotFoundError, match=r"Its convolutional layers: 'conv1', 'conv2'"):
        gs.gradcam(keras_cifar(), RNG.random((1, 16, 16, 3), dtype=np.float32), layer="zzz")
    torch.manual_seed(9)
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Flatten())
    with pytest.raises(gs.LayerNotFoundError, match=r"Its convolutional layers: '0'"):
        gs.gradcam(model, torch.rand(1, 3, 8, 8), layer="qqq")
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "z.png")
    rc = main(["explain", str(tmp_path / "z.png"), "--model", "test_model_inputs:keras_cifar", "--layer", "zzz",
               "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "'conv1', 'conv2'" in err


# --------------------------------------------------------------------------- messages


def noisy_factory() -> nn.Module:
    warnings.warn("a library's own remark", UserWarning, stacklevel=1)
    torch.manual_seed(10)
    return nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.LazyLinear(2))


def test_other_libraries_warnings_are_not_gradsight_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    assert main(["layers", "--model", "test_model_inputs:noisy_factory", "--size", "8"]) == 0
    assert "remark" not in capsys.readouterr().err
    assert main(["layers", "--model", "test_model_inputs:noisy_factory", "--size", "8", "--debug"]) == 0
    err = capsys.readouterr().err
    assert "gradsight: UserWarning from test_model_inputs: a library's own remark" in err
    assert "gradsight: warning:" not in err
