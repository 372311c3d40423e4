"""The demo YOLO-style detector: guided backprop and deconvnet through every LeakyReLU
(modules and functional calls) against an independent reference; the numpy decoding,
IoU, NMS and mAP against worked examples; the bundled weights detect shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gradsight as gs
from detection_refs import cell_weights, decoded_box, random_tiny_yolo
from gradsight.demo.detector import CONFIG, WEIGHTS_PATH
from gradsight.detection import Detections, YoloConfig, average_precision, box_iou, detect, mean_average_precision, nms
from gradsight.targets import Detection
from helpers import assert_rel

SLOPE = 0.1


# --- reference rules, written here (the zennit habit) ---
class _GuidedRef(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return F.leaky_relu(x, SLOPE)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g.clamp(min=0) * torch.where(x > 0, 1.0, SLOPE)


class _DeconvRef(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return F.leaky_relu(x, SLOPE)

    @staticmethod
    def backward(ctx, g):
        return F.leaky_relu(g, SLOPE)


ACTS = {
    "saliency": lambda t: F.leaky_relu(t, SLOPE),
    "guided_backprop": _GuidedRef.apply,
    "deconvnet": _DeconvRef.apply,
}


def ref_block(block, x, act):
    conv, bn = block.conv, block.bn
    y = F.conv2d(x, conv.weight, padding=conv.padding)
    return act(F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps))


def ref_detector(m, x, act):
    """TinyYolo's forward written out with the activation injected (7 LeakyReLUs)."""
    route = F.max_pool2d(ref_block(m.block3, F.max_pool2d(ref_block(m.block2, F.max_pool2d(ref_block(m.block1, x, act), 2), act), 2), act), 2)
    deep = ref_block(m.block5, F.max_pool2d(ref_block(m.block4, route, act), 2), act)
    up = F.interpolate(ref_block(m.block6, deep, act), scale_factor=2, mode="nearest")
    p8 = F.conv2d(ref_block(m.block7, torch.cat([up, route], 1), act), m.head8.weight, m.head8.bias)
    return p8, F.conv2d(deep, m.head16.weight, m.head16.bias)


def ref_score(heads, classes, weights):
    """sum of w * sigmoid(objectness) * sigmoid(class logit) over scales, cells, anchors."""
    total = 0
    for p, w in zip(heads, weights):
        n, _, h, wd = p.shape
        t = p.reshape(n, 2, 10, h, wd)
        total = total + (torch.sigmoid(t[:, :, 4]) * torch.sigmoid(t[torch.arange(n), :, 5 + torch.as_tensor(classes)])
                         * torch.as_tensor(w, dtype=p.dtype)).sum((1, 2, 3))
    return total


@pytest.fixture(scope="module")
def det():
    return random_tiny_yolo()


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))


def _reference(det, x, method, classes, weights):
    xr = x.clone().requires_grad_(True)
    score = ref_score(ref_detector(det, xr, ACTS[method]), classes, weights)
    return torch.autograd.grad(score.sum(), xr)[0].numpy()


def test_reference_forward_matches_the_detector(det, x):
    with torch.no_grad():
        for a, b in zip(det(x), ref_detector(det, x, ACTS["saliency"])):
            assert_rel(a.numpy(), b.numpy(), 1e-5)


def test_rules_reach_every_leaky_relu(det, x):
    for rule in ("guided", "deconvnet"):
        with gs.backward_rule(det, rule) as report:
            det(x)
        assert report.overridden == {"leaky_relu": 7}, rule  # 3 nn.LeakyReLU(inplace) modules + 4 F.leaky_relu calls


@pytest.mark.parametrize("method", ["saliency", "guided_backprop", "deconvnet"])
def test_detection_gradients_through_every_leaky_relu(det, x, method):
    with torch.no_grad():
        heads = [h.numpy() for h in det(x)]
    weights = cell_weights(heads, CONFIG.strides, CONFIG.anchors, 5, False)
    exp = gs.explain(det, x, method, target=Detection(CONFIG, class_index=[3, 1]))
    assert_rel(exp.attributions, _reference(det, x, method, [3, 1], weights), 1e-4)


@pytest.mark.parametrize("method", ["guided_backprop", "deconvnet"])
def test_one_box_with_rules_and_measurably_different_from_plain(det, x, method):
    with torch.no_grad():
        heads = [h.numpy() for h in det(x)]
    boxes = np.array([decoded_box(heads[0][i, 10:20, 4, 3], 4, 3, 8, CONFIG.anchors[0][1]) for i in range(2)])
    weights = cell_weights(heads, CONFIG.strides, CONFIG.anchors, 5, False, boxes, 0.5)
    target = Detection(CONFIG, class_index=2, box=boxes, iou=0.5)
    exp = gs.explain(det, x, method, target=target)
    assert_rel(exp.attributions, _reference(det, x, method, [2, 2], weights), 1e-4)
    plain = gs.saliency(det, x, target=target).attributions
    assert_rel(plain, _reference(det, x, "saliency", [2, 2], weights), 1e-4)
    # The TF1-style override changed nothing; this one changes the result by a large margin.
    assert np.abs(exp.attributions - plain).max() > 0.3 * np.abs(plain).max()


def test_topk_runs_batched_through_the_detector_rules(det, x):
    """A callable over the (p8, p16) heads with k scores per sample is not allowed; TopK on a
    classifier built from the detector's head is: the k rule-backward passes run batched."""

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.det = det

        def forward(self, t):
            p8 = self.det(t)[0].reshape(len(t), 2, 10, 8, 8)
            return p8[:, :, 5:].amax((1, 3, 4))  # (N, 5) class evidence

    model = Pooled().eval()
    exp = gs.guided_backprop(model, x, target=gs.targets.TopK(3))
    for j in range(3):
        one = gs.guided_backprop(model, x, target=exp.targets[:, j].tolist())
        assert_rel(exp.attributions[:, j], one.attributions, 1e-5)


# --------------------------------------------------------------------------- numpy side


def test_box_iou_worked_example():
    a = np.array([[0, 0, 10, 10], [5, 5, 15, 15]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0], [50 / 150, 0]])
    np.testing.assert_allclose(box_iou([0, 0, 10, 10], [[2, 2, 4, 4], [10, 0, 20, 10]]), [[4 / 100, 0]])


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]])
    scores = np.array([0.9, 0.95, 0.5, 0.3])
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [1, 2])
    np.testing.assert_array_equal(nms(boxes, scores, 0.99), [1, 0, 2, 3])


def test_average_precision_worked_example():
    # 2 ground truths; detections ranked TP, FP, TP: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    assert average_precision(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(0.5 + 0.5 * 2 / 3)
    preds = [Detections(np.array([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], np.float32),
                        np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 0, 0]))]
    m, aps = mean_average_precision(preds, [np.array([[0, 0, 10, 10], [21, 21, 31, 31]])], [np.array([0, 0])], 2)
    assert m == pytest.approx(0.5 + 0.5 * 2 / 3) and np.isnan(aps[1])


def test_detect_decodes_a_planted_box():
    cfg = YoloConfig(2, (8,), (((10.0, 20.0),),))
    head = np.full((1, 7, 4, 4), -10.0, np.float32)
    head[0, :, 2, 1] = [0.0, 0.0, np.log(2.0), 0.0, 5.0, -5.0, 5.0]  # centre (1.5, 2.5) * 8, size (20, 20), class 1
    (found,) = detect([head], cfg, channels_last=False)
    np.testing.assert_allclose(found.boxes, [[2, 10, 22, 30]], atol=1e-5)
    np.testing.assert_array_equal(found.classes, [1])
    assert found.scores[0] == pytest.approx(1 / (1 + np.exp(-5.0)) ** 2)
    (same,) = detect([head.transpose(0, 2, 3, 1)], cfg, channels_last=True)
    np.testing.assert_allclose(same.boxes, found.boxes)


# --------------------------------------------------------------------------- bundled weights


@pytest.mark.skipif(not WEIGHTS_PATH.is_file(), reason="demo detector weights not trained yet")
def test_bundled_detector_finds_the_shapes():
    from gradsight.demo.detector import load_demo_detector
    from gradsight.demo.shapes import preprocess
    from gradsight.demo.shapes_detect import generate

    model = load_demo_detector()
    data = generate(60, seed=2)
    with torch.no_grad():
        heads = [h.numpy() for h in model(torch.from_numpy(preprocess(data.images)))]
    preds = detect(heads, CONFIG, channels_last=False, conf_threshold=0.01)
    m, _ = mean_average_precision(preds, data.boxes, data.labels, 5, 0.5)
    assert m > 0.5


# --------------------------------------------------------------------------- CLI


@pytest.mark.skipif(not WEIGHTS_PATH.is_file(), reason="demo detector weights not trained yet")
def test_cli_writes_one_picture_per_detected_box(tmp_path, capsys):
    from PIL import Image

    from gradsight.cli import main
    from gradsight.demo.shapes_detect import generate

    data = generate(1, seed=7)
    image = tmp_path / "shapes.png"
    Image.fromarray(data.images[0]).save(image)
    out = tmp_path / "out"
    assert main(["explain", str(image), "--model", "demo-detector", "--target", "detection",
                 "--method", "guided_backprop", "--out", str(out)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if " box " in ln]
    files = sorted(out.glob("shapes_box*_guided_backprop.png"))
    assert len(files) == len(lines) >= len(data.boxes)  # every shape found (a spare box of another class may come too)
    with Image.open(files[0]) as pic:
        assert pic.size == (128, 128)
    # Grad-CAM uses the model's declared layer (pool3, 8x8)
    assert main(["explain", str(image), "--model", "demo-detector", "--method", "gradcam", "--out", str(out)]) == 0
    assert len(sorted(out.glob("shapes_box*_gradcam.png"))) == len(files)


def test_cli_detection_needs_a_detector(tmp_path, capsys):
    from PIL import Image

    from gradsight.cli import main

    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(image)
    assert main(["explain", str(image), "--model", "demo", "--target", "detection", "--out", str(tmp_path)]) == 2
    assert "detection_config" in capsys.readouterr().err
