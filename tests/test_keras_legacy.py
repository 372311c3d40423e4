"""Keras model files as users bring them: Keras 2.x .h5 (TF1-era layouts too), to_json + save_weights
pairs, weights-only files, custom layers, files that are not HDF5 — through the API and the CLI.

Keras 2 files are written at run time by real Keras 2 (the tf-keras package); the layouts it can no
longer write are committed fixtures (tests/fixtures/keras_legacy/README.md says what wrote them).
References: the outputs Keras 2 itself computes from the same file, and the weight arrays read from
the file with h5py.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")
k2 = pytest.importorskip("tf_keras")

from PIL import Image  # noqa: E402

import gradsight as gs  # noqa: E402
from gradsight.backends.keras import load_model  # noqa: E402
from gradsight.cli import main  # noqa: E402
from helpers import assert_rel  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "keras_legacy"


def _h5_weights(path: Path) -> dict[str, np.ndarray]:
    """Every weight array stored in a Keras 2 .h5 file, by its stored name ("conv2d_1/kernel:0")."""
    out = {}
    with h5py.File(path, "r") as f:
        g = f["model_weights"] if "model_weights" in f else f
        for layer in g.attrs["layer_names"]:
            layer = layer.decode() if isinstance(layer, bytes) else layer
            for name in g[layer].attrs["weight_names"]:
                name = name.decode() if isinstance(name, bytes) else name
                out[name] = np.asarray(g[layer][name])
    return out


def _one_line_error(capsys: pytest.CaptureFixture[str], rc: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("gradsight:")]
    assert len(lines) == 1 and lines[0].startswith("gradsight: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "ModelError:" not in lines[0] and lines[0].count("could not") <= 1, lines[0]  # not wrapped twice
    return lines[0]


# --------------------------------------------------------------------------- TF1-era fixtures


@pytest.mark.parametrize("stem", ["tf1_mnist_cnn", "tf1_mlp_list"])
def test_tf1_era_h5_loads_with_the_weights_of_the_file(stem: str) -> None:
    path = FIXTURES / f"{stem}.h5"
    with pytest.raises(Exception):  # noqa: B017 - the gap: Keras 3 alone cannot read this layout
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            keras.models.load_model(path, compile=False)
    model = load_model(path)
    ref = np.load(FIXTURES / "reference_outputs.npz")
    assert_rel(model.predict(ref[f"{stem}_x"], verbose=0), ref[f"{stem}_y"], 1e-6)  # Keras 2's own outputs
    stored = _h5_weights(path)
    loaded = {f"{v.path.split('/')[-2]}/{v.name}:0": v.numpy() for v in model.weights}
    assert set(stored) == set(loaded)
    for name, value in stored.items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)


def test_tf1_era_h5_explained_at_the_last_conv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    model = load_model(FIXTURES / "tf1_mnist_cnn.h5")
    x = np.load(FIXTURES / "reference_outputs.npz")["tf1_mnist_cnn_x"]
    exp = gs.gradcam(model, x, logits=True)
    assert exp.layer == "conv2d_2"  # the last convolution (11x11), not the pooling or dropout after it (5x5)
    # Reference: Grad-CAM by hand with a sub-model on the same loaded weights, pre-softmax score.
    logits_model = keras.Model(model.inputs, [model.get_layer("conv2d_2").output, model.get_layer("dense_1").output])
    w, b = model.get_layer("dense_1").get_weights()
    with tf.GradientTape() as tape:
        a, _ = logits_model(x)
        flat = model.get_layer("flatten_1")(model.get_layer("dropout_1")(model.get_layer("max_pooling2d_2")(a)))
        z = tf.matmul(flat, w) + b
        score = tf.reduce_sum(tf.gather(z, exp.targets, axis=1, batch_dims=1))
    alpha = tf.reduce_mean(tape.gradient(score, a), axis=(1, 2), keepdims=True)
    assert_rel(exp.attributions, tf.nn.relu(tf.reduce_sum(alpha * a, axis=-1)).numpy(), 1e-5)


# --------------------------------------------------------------------------- files written by Keras 2


def _k2_functional() -> k2.Model:
    k2.utils.set_random_seed(3)
    L = k2.layers
    inp = k2.Input((16, 16, 3))
    base = k2.Sequential([L.Conv2D(6, 3, activation="relu", input_shape=(16, 16, 3)), L.BatchNormalization(),
                          L.Conv2D(8, 3, padding="same", activation="relu", name="last_conv")], name="base")
    h = base(inp)
    h = L.MaxPooling2D()(h)
    h = L.GlobalAveragePooling2D()(h)
    out = L.Dense(4, activation="softmax")(h)
    model = k2.Model(inp, out)
    bn = base.layers[1]  # non-trivial moving statistics, so a wrong weight order would show
    bn.set_weights([np.random.default_rng(4).uniform(0.5, 1.5, 6).astype(np.float32) for _ in range(4)])
    return model


def test_keras2_h5_with_a_nested_model_loads_and_matches_keras2(tmp_path: Path) -> None:
    model = _k2_functional()
    path = tmp_path / "k2.h5"
    model.save(path)
    x = np.random.default_rng(5).random((2, 16, 16, 3), dtype=np.float32)
    loaded = load_model(path)
    assert_rel(loaded.predict(x, verbose=0), model.predict(x, verbose=0), 1e-5)
    exp = gs.gradcam(loaded, x, logits=True)
    assert exp.layer == "base/last_conv"


def test_keras2_h5_transfer_learning_layout_loads(tmp_path: Path) -> None:
    """A base Functional (a VGG16 stand-in with its own Input) called inside a classifier: Keras 2
    numbers that call node 1; Keras 3 alone fails with 'Invalid Functional model configuration'."""
    k2.utils.set_random_seed(12)
    L = k2.layers
    base_in = k2.Input((16, 16, 3))
    base = k2.Model(base_in, L.Conv2D(4, 3, activation="relu", name="block5_conv3")(base_in), name="vgg16")
    inp = k2.Input((16, 16, 3))
    model = k2.Model(inp, L.Dense(3, activation="softmax")(L.GlobalAveragePooling2D()(base(inp))))
    path = tmp_path / "transfer.h5"
    model.save(path)
    with pytest.raises(Exception):  # noqa: B017 - the gap
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            keras.models.load_model(path, compile=False)
    x = np.random.default_rng(13).random((2, 16, 16, 3), dtype=np.float32)
    loaded = load_model(path)
    assert_rel(loaded.predict(x, verbose=0), model.predict(x, verbose=0), 1e-5)
    assert gs.gradcam(loaded, x, logits=True).layer == "vgg16/block5_conv3"


def test_json_and_weights_pair_through_api_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _k2_functional()
    arch, weights = tmp_path / "arch.json", tmp_path / "w.h5"
    arch.write_text(model.to_json())
    model.save_weights(weights)
    with pytest.raises(Exception):  # noqa: B017 - the gap: Keras 3's model_from_json refuses Keras 2 JSON
        keras.models.model_from_json(arch.read_text())
    x = np.random.default_rng(6).random((2, 16, 16, 3), dtype=np.float32)
    loaded = load_model(arch, weights=weights)
    assert_rel(loaded.predict(x, verbose=0), model.predict(x, verbose=0), 1e-5)

    from gradsight.models import load_model as load_spec

    _, info = load_spec(str(arch), weights=str(weights))
    assert info.framework == "keras" and info.input_size == 16
    assert main(["layers", "--model", str(arch), "--weights", str(weights)]) == 0
    assert "base/last_conv" in capsys.readouterr().out

    with pytest.raises(gs.ModelError, match="without weights"):
        load_model(arch)
    other = k2.Sequential([k2.layers.Dense(3, input_shape=(5,))])
    other.save_weights(tmp_path / "other.h5")
    with pytest.raises(gs.ModelError, match="do not fit the architecture"):
        load_model(arch, weights=tmp_path / "other.h5")


def test_keras3_json_and_weights_pair(tmp_path: Path) -> None:
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    (tmp_path / "a.json").write_text(model.to_json())
    model.save_weights(tmp_path / "m.weights.h5")
    loaded = load_model(tmp_path / "a.json", weights=tmp_path / "m.weights.h5")
    x = np.random.default_rng(8).random((2, 6, 6, 1), dtype=np.float32)
    assert_rel(loaded(x).numpy(), model(x).numpy(), 1e-6)


def test_weights_only_h5_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "weights.h5"
    _k2_functional().save_weights(path)
    with pytest.raises(gs.ModelError) as info:
        load_model(path)
    text = str(info.value)
    assert "holds only weights" in text and "architecture" in text and "custom_objects" not in text
    line = _one_line_error(capsys, main(["layers", "--model", str(path)]), "holds only weights")
    assert "custom_objects" not in line


class Scale(k2.layers.Layer):  # a Keras 2 custom layer
    def __init__(self, factor: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class Scale3(keras.layers.Layer):  # the Keras 3 twin the user passes in custom_objects
    def __init__(self, factor: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor


def test_custom_layer_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    k2.utils.set_random_seed(9)
    inp = k2.Input((4,))
    model = k2.Model(inp, k2.layers.Dense(2)(Scale(3.0)(inp)))
    path = tmp_path / "custom.h5"
    model.save(path)
    with pytest.raises(gs.ModelError, match="custom layer class 'Scale'") as info:
        load_model(path)
    assert "custom_objects={'Scale': Scale}" in str(info.value)
    x = np.random.default_rng(10).random((2, 4), dtype=np.float32)
    loaded = load_model(path, custom_objects={"Scale": Scale3})
    assert_rel(loaded(x).numpy(), model.predict(x, verbose=0), 1e-6)
    _one_line_error(capsys, main(["layers", "--model", str(path)]), "custom layer class 'Scale'")


def test_files_that_are_not_keras_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.h5").write_text("hello")
    with pytest.raises(gs.ModelError, match="is not an HDF5 file"):
        load_model(tmp_path / "notes.h5")
    keras.utils.set_random_seed(11)
    m3 = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    m3.save(tmp_path / "real.keras")
    (tmp_path / "real.keras").rename(tmp_path / "renamed.h5")
    with pytest.raises(gs.ModelError, match="rename it to .keras"):
        load_model(tmp_path / "renamed.h5")
    (tmp_path / "arch_as.h5").write_text(json.dumps({"class_name": "Sequential", "config": {}}))
    with pytest.raises(gs.ModelError, match="looks like JSON"):
        load_model(tmp_path / "arch_as.h5")
    with zipfile.ZipFile(tmp_path / "torch.h5", "w") as z:
        z.writestr("archive/data.pkl", b"x")
    with pytest.raises(gs.ModelError, match="PyTorch file"):
        load_model(tmp_path / "torch.h5")
    old = tmp_path / "keras1.h5"
    with h5py.File(old, "w") as f:
        f.attrs["keras_version"] = "1.2.2"
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": []})
    with pytest.raises(gs.ModelError, match="Keras 1.2.2"):
        load_model(old)
    removed = tmp_path / "removed.h5"
    with h5py.File(removed, "w") as f:
        f.attrs["keras_version"] = "2.4.0"
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {"name": "s", "layers": [
            {"class_name": "LocallyConnected2D", "config": {"name": "lc", "batch_input_shape": [None, 8, 8, 1]}}]}})
    with pytest.raises(gs.ModelError, match="LocallyConnected2D layers: a Keras 2 layer that Keras 3 removed"):
        load_model(removed)
    _one_line_error(capsys, main(["layers", "--model", str(tmp_path / "notes.h5")]), "is not an HDF5 file")


def test_cli_explains_a_tf1_era_mnist_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    digit = np.zeros((28, 28), np.uint8)
    digit[6:22, 12:16] = 255  # a "1"
    Image.fromarray(digit, mode="L").save(tmp_path / "one.png")
    out = tmp_path / "out"
    rc = main(["explain", str(tmp_path / "one.png"), "--model", str(FIXTURES / "tf1_mnist_cnn.h5"),
               "--method", "gradcam", "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert (out / "one_gradcam.png").exists()
    assert "conv2d_2" in captured.out + captured.err  # the chosen layer is printed
