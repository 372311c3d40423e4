"""Keras model files (.keras, legacy .h5): round trips, loader errors, the .h5 user's scenario."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

from keras_nets import SubclassedNet, TfLeaky, TfRelu, batch, rectifier_net, vgg_style  # noqa: E402
from PIL import Image  # noqa: E402

import gradsight as gs  # noqa: E402
from gradsight.backends.keras import load_model  # noqa: E402
from helpers import assert_rel  # noqa: E402

CUSTOM = {"TfRelu": TfRelu, "TfLeaky": TfLeaky}


@pytest.fixture(scope="module")
def h5_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[keras.Model, Path]:
    """The .h5 user's model: VGG-style with block5_conv3 and a softmax head, saved as custom_model.h5."""
    keras.utils.set_random_seed(20)
    model = vgg_style(size=32, classes=4, softmax=True)
    path = tmp_path_factory.mktemp("h5") / "custom_model.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras calls .h5 "legacy"
        model.save(path)
    return model, path


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_round_trip_nested_model_gives_the_same_explanations(tmp_path: Path, suffix: str) -> None:
    keras.utils.set_random_seed(21)
    model = rectifier_net()
    path = tmp_path / f"nested{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)
    loaded = load_model(path, custom_objects=CUSTOM)
    x = batch(2)
    for method, kw in (("guided_backprop", {}), ("gradcam", {"layer": "base/b_conv3"})):
        a = gs.explain(model, x, method=method, target=[0, 2], **kw).attributions
        b = gs.explain(loaded, x, method=method, target=[0, 2], **kw).attributions
        assert_rel(b, a, 1e-6)


def test_round_trip_subclassed_model(tmp_path: Path) -> None:
    @keras.saving.register_keras_serializable(package="gradsight_tests")
    class SavedNet(SubclassedNet):
        pass

    keras.utils.set_random_seed(22)
    model = SavedNet()
    x = batch(2)
    model(x)
    model.save(tmp_path / "sub.keras")
    loaded = load_model(tmp_path / "sub.keras")
    assert_rel(gs.saliency(loaded, x, target=1).attributions, gs.saliency(model, x, target=1).attributions, 1e-6)


def test_loader_errors(tmp_path: Path) -> None:
    with pytest.raises(gs.ModelError, match="does not exist"):
        load_model(tmp_path / "missing.h5")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(gs.ModelError, match="not a Keras model file"):
        load_model(tmp_path / "notes.txt")
    (tmp_path / "broken.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(gs.ModelError, match="is not an HDF5 file"):
        load_model(tmp_path / "broken.h5")
    (tmp_path / "broken.keras").write_bytes(b"PK not a zip")
    with pytest.raises(gs.ModelError, match="could not load"):
        load_model(tmp_path / "broken.keras")


def test_h5_user_gradcam_at_block5_conv3(h5_model: tuple[keras.Model, Path]) -> None:
    original, path = h5_model
    model = load_model(path)
    x = batch(2, 32)
    with pytest.warns(gs.GradsightWarning, match="softmax"):
        exp = gs.gradcam(model, x, layer="block5_conv3")
    grad_model = keras.Model(original.input, [original.get_layer("block5_conv3").output, original.output])
    with tf.GradientTape() as tape:
        a, probs = grad_model(x)
        score = tf.reduce_sum(tf.gather(probs, exp.targets, axis=1, batch_dims=1))
    w = tf.reduce_mean(tape.gradient(score, a), axis=(1, 2), keepdims=True)
    assert_rel(exp.attributions, tf.nn.relu(tf.reduce_sum(w * a, axis=-1)).numpy(), 1e-5)
    np.testing.assert_array_equal(exp.targets, original(x).numpy().argmax(1))

    logit = gs.gradcam(model, x, layer="block5_conv3", logits=True)  # the pre-softmax score, no warning
    assert logit.layer == "block5_conv3" and logit.heatmaps.shape == (2, 32, 32)
    np.testing.assert_array_equal(logit.targets, exp.targets)


def test_h5_user_scenario_through_the_cli(h5_model: tuple[keras.Model, Path], tmp_path: Path) -> None:
    cli = pytest.importorskip("gradsight.cli")
    _, path = h5_model
    rng = np.random.default_rng(0)
    images = []
    for i in range(2):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(p)
        images.append(str(p))
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = cli.main(["explain", *images, "--model", str(path), "--layer", "block5_conv3", "--method", "gradcam",
                       "--preprocess", "none", "--out", str(out)])
    assert rc in (0, None)
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["img0_gradcam.png", "img1_gradcam.png"]
    assert Image.open(pngs[0]).size[0] >= 32


def test_cli_reports_a_missing_layer_in_the_h5_model(h5_model: tuple[keras.Model, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    cli = pytest.importorskip("gradsight.cli")
    _, path = h5_model
    img = tmp_path / "img.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
    rc = cli.main(["explain", str(img), "--model", str(path), "--layer", "block5_conv", "--out", str(tmp_path)])
    assert rc == 2
    assert "block5_conv3" in capsys.readouterr().err  # the close match is offered
