"""Targets beyond one class on Keras: TopK, Segmentation, Detection against hand-written
references (tf.GradientTape on the formulas written out), and the Keras twin of the demo
detector: guided backprop and deconvnet through every LeakyReLU layer and
keras.ops.leaky_relu call, against a reference forward with the rules written here and
against PyTorch on the same weights."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

import gradsight as gs  # noqa: E402
from detection_refs import best_class, cell_weights, decoded_box, random_tiny_yolo  # noqa: E402
from gradsight.demo.detector import CONFIG  # noqa: E402
from gradsight.demo.keras_detector import build_keras_detector, convert_state_dict, read_torch_state_dict  # noqa: E402
from gradsight.targets import ClassTarget, Detection, Segmentation, TopK  # noqa: E402
from helpers import assert_rel  # noqa: E402

K = 3
SLOPE = 0.1


def _cnn(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(12, 3, padding="same", strides=2, name="conv2")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.2, name="leaky")(x)
    x = keras.layers.Conv2D(12, 3, padding="same", name="conv3")(x)
    x = keras.layers.ReLU(name="relu3")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(6, name="fc")(x))


@pytest.fixture(scope="module")
def cnn():
    return _cnn()


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(11).standard_normal((3, 16, 16, 3)).astype(np.float32)


# --------------------------------------------------------------------------- TopK


@pytest.mark.parametrize("method", ["saliency", "deconvnet", "guided_backprop", "gradcam", "guided_gradcam", "smoothgrad"])
def test_topk_equals_k_separate_single_class_runs(cnn, x, method):
    kw = {"layer": "conv3"} if "gradcam" in method else {"samples": 3, "seed": 5, "batch_size": 4} if method == "smoothgrad" else {}
    exp = gs.explain(cnn, x, method, target=TopK(K), **kw)
    logits = np.asarray(cnn(x))
    ranked = np.argsort(-logits, axis=1, kind="stable")[:, :K]
    np.testing.assert_array_equal(exp.targets, ranked)
    assert_rel(exp.scores, np.take_along_axis(logits, ranked, 1), 1e-5)
    assert exp.attributions.shape[:2] == (3, K) and exp.heatmaps.shape == (3, K, 16, 16)
    for j in range(K):
        one = gs.explain(cnn, x, method, target=ranked[:, j].tolist(), **kw)
        assert_rel(exp.attributions[:, j], one.attributions, 1e-4)


def test_class_target_with_k_columns(cnn, x):
    classes = np.array([[0, 4], [1, 1], [3, 2]])
    exp = gs.saliency(cnn, x, target=ClassTarget(classes))
    np.testing.assert_array_equal(exp.targets, classes)
    for j in range(2):
        assert_rel(exp.attributions[:, j], gs.saliency(cnn, x, target=classes[:, j].tolist()).attributions, 1e-4)


def test_topk_larger_than_the_number_of_classes(cnn, x):
    with pytest.raises(gs.TargetError, match=r"TopK\(7\) asks for more classes than the model has outputs \(6\)"):
        gs.gradcam(cnn, x, target=TopK(7))


# --------------------------------------------------------------------------- Segmentation


def _segmenter() -> keras.Model:
    keras.utils.set_random_seed(1)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", strides=2)(x)
    x = keras.layers.LeakyReLU(negative_slope=0.1)(x)
    return keras.Model(inputs, keras.layers.Conv2D(4, 1, name="out")(x))  # (N, 8, 8, 4)


def test_segmentation_against_masked_sum(x):
    model = _segmenter()
    masks = np.random.default_rng(1).random((3, 8, 8)) * (np.random.default_rng(2).random((3, 8, 8)) > 0.3)
    classes = [0, 3, 1]
    exp = gs.saliency(model, x, target=Segmentation(classes, mask=masks))
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = model(xt)
        score = tf.reduce_sum(tf.gather(out, classes, axis=3, batch_dims=1) * masks, axis=(1, 2))
    assert_rel(exp.attributions, tape.gradient(score, xt).numpy(), 1e-4)
    assert_rel(exp.scores, score.numpy(), 1e-5)
    with pytest.raises(gs.TargetError, match=r"must be \(8, 8\) or \(3, 8, 8\)"):
        gs.saliency(model, x, target=Segmentation(1, mask=np.ones((16, 16))))


def test_segmentation_default_mask_is_the_predicted_pixels(x):
    model = _segmenter()
    pred = np.asarray(model(x)).argmax(-1)
    classes = [int(np.bincount(p.ravel()).argmax()) for p in pred]
    exp = gs.saliency(model, x, target=Segmentation(classes))
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = model(xt)
        mask = (pred == np.array(classes)[:, None, None]).astype(np.float32)
        score = tf.reduce_sum(tf.gather(out, classes, axis=3, batch_dims=1) * mask, axis=(1, 2))
    assert_rel(exp.attributions, tape.gradient(score, xt).numpy(), 1e-4)


# --------------------------------------------------------------------------- the detector twin


@pytest.fixture(scope="module")
def torch_det():
    return random_tiny_yolo()


@pytest.fixture(scope="module")
def keras_det(torch_det, tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "tiny_yolo.pt"
    torch.save(torch_det.state_dict(), path)
    model = build_keras_detector()
    for name, weights in convert_state_dict(read_torch_state_dict(path)).items():
        model.get_layer(name).set_weights(weights)
    return model


@pytest.fixture(scope="module")
def xd():
    return np.random.default_rng(5).standard_normal((2, 64, 64, 3)).astype(np.float32)


def _leaky(t):
    return tf.where(t > 0, t, SLOPE * t)


@tf.custom_gradient
def _guided(t):
    return _leaky(t), lambda g: tf.maximum(g, 0.0) * tf.where(t > 0, 1.0, SLOPE)


@tf.custom_gradient
def _deconv(t):
    return _leaky(t), lambda g: tf.where(g > 0, g, SLOPE * g)


ACTS = {"saliency": _leaky, "guided_backprop": _guided, "deconvnet": _deconv}


def ref_keras_detector(m, x, act):
    """The twin's forward written with tf ops, the activation injected (7 LeakyReLUs)."""

    def block(name, t):
        conv, bn = m.get_layer(f"{name}_conv"), m.get_layer(f"{name}_bn")
        y = tf.nn.conv2d(t, conv.kernel, 1, "SAME")
        return act((y - bn.moving_mean) / tf.sqrt(bn.moving_variance + 1e-5) * bn.gamma + bn.beta)

    def pool(t):
        return tf.nn.max_pool2d(t, 2, 2, "VALID")

    route = pool(block("block3", pool(block("block2", pool(block("block1", x))))))
    deep = block("block5", pool(block("block4", route)))
    up = tf.repeat(tf.repeat(block("block6", deep), 2, axis=1), 2, axis=2)
    h8, h16 = m.get_layer("head8"), m.get_layer("head16")
    p8 = tf.nn.conv2d(block("block7", tf.concat([up, route], -1)), h8.kernel, 1, "SAME") + h8.bias
    return p8, tf.nn.conv2d(deep, h16.kernel, 1, "SAME") + h16.bias


def ref_score(heads, classes, weights):
    """sum of w * sigmoid(objectness) * sigmoid(class logit), channels-last heads."""
    total = 0.0
    for p, w in zip(heads, weights):
        n, h, wd, _ = p.shape
        t = tf.reshape(p, (n, h, wd, 2, 10))
        cls = tf.gather(t[..., 5:], classes, axis=4, batch_dims=1)  # (n, h, w, 2)
        total += tf.reduce_sum(tf.sigmoid(t[..., 4]) * tf.sigmoid(cls) * np.transpose(w, (0, 2, 3, 1)), axis=(1, 2, 3))
    return total


def _reference(model, x, method, classes, weights):
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        score = ref_score(ref_keras_detector(model, xt, ACTS[method]), classes, weights)
    return tape.gradient(score, xt).numpy()


def test_twin_matches_pytorch_and_the_reference_forward(torch_det, keras_det, xd):
    with torch.no_grad():
        t = [h.numpy().transpose(0, 2, 3, 1) for h in torch_det(torch.from_numpy(xd.transpose(0, 3, 1, 2)))]
    for a, b, c in zip(keras_det(xd), t, ref_keras_detector(keras_det, tf.constant(xd), _leaky)):
        assert_rel(np.asarray(a), b, 1e-5)
        assert_rel(np.asarray(c), b, 1e-5)


def test_rules_reach_every_leaky_relu_layer_and_op_call(keras_det, xd):
    for rule in ("guided", "deconvnet"):
        with gs.backward_rule(keras_det, rule) as report:
            keras_det(xd)
        assert report.count == 7, (rule, report.overridden)


@pytest.mark.parametrize("method", ["saliency", "guided_backprop", "deconvnet"])
def test_detection_through_every_leaky_relu(keras_det, torch_det, xd, method):
    heads = [np.asarray(h) for h in keras_det(xd)]
    weights = cell_weights(heads, CONFIG.strides, CONFIG.anchors, 5, True)
    exp = gs.explain(keras_det, xd, method, target=Detection(CONFIG, class_index=[3, 1]))
    assert_rel(exp.attributions, _reference(keras_det, xd, method, [3, 1], weights), 1e-4)
    # the other backend on the same weights
    other = gs.explain(torch_det, xd.transpose(0, 3, 1, 2), method, target=Detection(CONFIG, class_index=[3, 1]))
    assert_rel(exp.attributions, other.attributions.transpose(0, 2, 3, 1), 1e-4)


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_one_box_measurably_different_from_plain(keras_det, xd, method):
    heads = [np.asarray(h) for h in keras_det(xd)]
    boxes = np.array([decoded_box(heads[0][i, 4, 3, 10:20], 4, 3, 8, CONFIG.anchors[0][1]) for i in range(2)])
    weights = cell_weights(heads, CONFIG.strides, CONFIG.anchors, 5, True, boxes, 0.5)
    target = Detection(CONFIG, class_index=2, box=boxes)
    exp = gs.explain(keras_det, xd, method, target=target)
    assert_rel(exp.attributions, _reference(keras_det, xd, method, [2, 2], weights), 1e-4)
    plain = gs.saliency(keras_det, xd, target=target).attributions
    assert np.abs(exp.attributions - plain).max() > 0.3 * np.abs(plain).max()


def test_detection_best_class_and_config_errors(keras_det, xd):
    heads = [np.asarray(h) for h in keras_det(xd)]
    exp = gs.saliency(keras_det, xd, target=Detection(CONFIG))
    np.testing.assert_array_equal(exp.targets, best_class(heads, CONFIG.anchors, 5, True))
    wrong = gs.detection.YoloConfig(4, CONFIG.strides, CONFIG.anchors)
    with pytest.raises(gs.TargetError, match=r"has shape \(2, 8, 8, 20\), but the config expects \(N, H, W, 18\)"):
        gs.saliency(keras_det, xd, target=Detection(wrong, 0))


def test_topk_and_gradcam_on_the_detector_twin(keras_det, xd):
    cam = gs.gradcam(keras_det, xd, target=Detection(CONFIG, class_index=1), layer="pool3")
    assert cam.attributions.shape == (2, 8, 8) and cam.layer == "pool3"


def test_cli_keras_twin_writes_the_same_boxes_as_pytorch(tmp_path, capsys):
    from PIL import Image

    from gradsight.cli import main
    from gradsight.demo.detector import WEIGHTS_PATH
    from gradsight.demo.shapes_detect import generate

    if not WEIGHTS_PATH.is_file():
        pytest.skip("demo detector weights not trained yet")
    image = tmp_path / "shapes.png"
    Image.fromarray(generate(1, seed=7).images[0]).save(image)
    boxes = {}
    for framework in ("torch", "keras"):
        out = tmp_path / framework
        assert main(["explain", str(image), "--model", "demo-detector", "--framework", framework, "--target",
                     "detection", "--method", "guided_backprop", "--out", str(out)]) == 0
        boxes[framework] = [ln.split(" -> ")[0] for ln in capsys.readouterr().out.splitlines() if " box " in ln]
        files = sorted(out.glob("shapes_box*_guided_backprop.png"))
        assert len(files) == len(boxes[framework]) > 0
    assert boxes["torch"] == boxes["keras"]
    for a, b in zip(sorted((tmp_path / "torch").glob("*.png")), sorted((tmp_path / "keras").glob("*.png"))):
        assert np.abs(np.asarray(Image.open(a), float) - np.asarray(Image.open(b), float)).mean() < 1.0
