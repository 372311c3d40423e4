"""Targets beyond one class on PyTorch: TopK, Segmentation, Detection, several outputs,
each against a hand-written reference; and the errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import gradsight as gs
from detection_refs import best_class, cell_weights, decoded_box
from gradsight.detection import YoloConfig
from gradsight.targets import ClassTarget, Detection, Segmentation, TopK
from helpers import assert_rel
from torch_nets import FunctionalNet, InplaceReusedNet, make

K = 3
ALL_METHODS = ["saliency", "deconvnet", "guided_backprop", "gradcam", "guided_gradcam", "smoothgrad"]
OPTIONS = {"smoothgrad": {"samples": 3, "seed": 5, "batch_size": 4, "base": "guided_backprop"}}


@pytest.fixture(params=[FunctionalNet, InplaceReusedNet], ids=lambda c: c.__name__)
def net(request):
    return make(request.param)


@pytest.fixture
def x():
    return torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(11))


# --------------------------------------------------------------------------- TopK


@pytest.mark.parametrize("method", ALL_METHODS)
def test_topk_equals_k_separate_single_class_runs(net, x, method):
    kw = dict(OPTIONS.get(method, {}), **({"layer": net.cam_layer} if "gradcam" in method else {}))
    exp = gs.explain(net, x, method, target=TopK(K), **kw)
    with torch.no_grad():
        logits = net(x)
    ranked = torch.argsort(logits, dim=1, descending=True)[:, :K].numpy()  # independent of ops.topk
    np.testing.assert_array_equal(exp.targets, ranked)
    assert exp.k == K and exp.scores.shape == (3, K)
    assert_rel(exp.scores, np.take_along_axis(logits.numpy(), ranked, 1), 1e-6)
    assert exp.attributions.shape[:2] == (3, K) and exp.heatmaps.shape == (3, K, 16, 16)
    for j in range(K):
        one = gs.explain(net, x, method, target=ranked[:, j].tolist(), **kw)
        assert_rel(exp.attributions[:, j], one.attributions, 1e-5)
        assert_rel(exp.heatmaps[:, j], one.heatmaps, 1e-4)
        assert_rel(exp.scores[:, j], one.scores, 1e-6)


def test_topk_columns_differ(net, x):
    exp = gs.saliency(net, x, target=TopK(2))
    a, b = exp.attributions[:, 0], exp.attributions[:, 1]
    assert np.abs(a - b).max() > 1e-2 * np.abs(a).max()


def test_topk_loop_fallback_gives_the_same_numbers(net, x, monkeypatch):
    """Where the batched backward is refused, k backward passes on the retained graph run instead."""
    batched = gs.guided_backprop(net, x, target=TopK(K)).attributions
    real = torch.autograd.grad

    def no_batching(*args, **kwargs):
        if kwargs.get("is_grads_batched"):
            raise RuntimeError("no batching rule (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", no_batching)
    looped = gs.guided_backprop(net, x, target=TopK(K)).attributions
    assert_rel(looped, batched, 1e-6)


def test_class_target_with_k_columns(net, x):
    classes = np.array([[0, 4], [1, 1], [3, 2]])
    exp = gs.saliency(net, x, target=ClassTarget(classes))
    np.testing.assert_array_equal(exp.targets, classes)
    for j in range(2):
        assert_rel(exp.attributions[:, j], gs.saliency(net, x, target=classes[:, j].tolist()).attributions, 1e-5)


def test_topk_pictures_one_per_sample_and_target(net, x, tmp_path):
    exp = gs.gradcam(net, x, target=TopK(2), layer=net.cam_layer)
    paths = exp.save(tmp_path)
    assert [p.name for p in paths][:3] == ["gradcam_000_k0.png", "gradcam_000_k1.png", "gradcam_001_k0.png"]
    assert len(paths) == 6
    images = np.zeros((3, 16, 16, 3), np.uint8)
    assert len(exp.overlay(images)) == 6


def test_smoke_topk_repr_png(net, x):
    assert gs.gradcam(net, x, target=TopK(2), layer=net.cam_layer)._repr_png_()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- Segmentation


class TinySegmenter(nn.Module):
    """conv-ReLU-conv to per-pixel class scores at half resolution; optionally channels-last."""

    def __init__(self, classes: int = 4, channels_last: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, stride=2)
        self.out = nn.Conv2d(8, classes, 1)
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.out(F.leaky_relu(self.conv2(torch.relu(self.conv1(x))), 0.1))
        return y.permute(0, 2, 3, 1) if self.channels_last else y


def _seg_reference(model, x, classes, mask):
    """d/dx of sum_{h,w} mask[i, h, w] * out[i, class_i, h, w], written out."""
    xr = x.clone().requires_grad_(True)
    out = model(xr)
    if model.channels_last:
        out = out.permute(0, 3, 1, 2)
    per_class = out[torch.arange(len(x)), torch.as_tensor(classes)]  # (N, h, w)
    score = (per_class * torch.tensor(np.array(mask), dtype=out.dtype)).sum((1, 2))
    return torch.autograd.grad(score.sum(), xr)[0].numpy(), score.detach().numpy()


@pytest.mark.parametrize("channels_last", [False, True])
def test_segmentation_against_masked_sum(x, channels_last):
    torch.manual_seed(0)
    model = TinySegmenter(channels_last=channels_last).eval()
    layout = "channels_last" if channels_last else "channels_first"
    mask = np.random.default_rng(0).random((8, 8)) > 0.5
    exp = gs.saliency(model, x, target=Segmentation(2, mask=mask, layout=layout))
    ref, score = _seg_reference(model, x, [2, 2, 2], np.broadcast_to(mask, (3, 8, 8)))
    assert_rel(exp.attributions, ref, 1e-5)
    assert_rel(exp.scores, score, 1e-6)
    np.testing.assert_array_equal(exp.targets, [2, 2, 2])
    # per-sample classes and masks
    masks = np.random.default_rng(1).random((3, 8, 8)) * (np.random.default_rng(2).random((3, 8, 8)) > 0.3)
    exp = gs.saliency(model, x, target=Segmentation([0, 3, 1], mask=masks, layout=layout))
    assert_rel(exp.attributions, _seg_reference(model, x, [0, 3, 1], masks)[0], 1e-5)


def test_segmentation_default_mask_is_the_predicted_pixels(x):
    torch.manual_seed(0)
    model = TinySegmenter().eval()
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    classes = [int(np.bincount(p.ravel()).argmax()) for p in pred]  # a class each sample predicts somewhere
    exp = gs.saliency(model, x, target=Segmentation(classes))
    ref, score = _seg_reference(model, x, classes, pred == np.array(classes)[:, None, None])
    assert_rel(exp.attributions, ref, 1e-5)
    assert_rel(exp.scores, score, 1e-6)


def test_segmentation_gradcam_and_smoothgrad_freeze_the_mask(x):
    torch.manual_seed(0)
    model = TinySegmenter().eval()
    mask = np.zeros((8, 8), bool)
    mask[2:6, 1:5] = True
    sg = gs.smoothgrad(model, x, target=Segmentation(1, mask=mask), samples=3, seed=0, batch_size=4)
    assert sg.attributions.shape == (3, 3, 16, 16)
    cam = gs.gradcam(model, x, target=Segmentation(1, mask=mask), layer="conv2")
    a = model.conv2(torch.relu(model.conv1(x))).detach().requires_grad_(True)
    score = (model.out(F.leaky_relu(a, 0.1))[:, 1] * torch.from_numpy(mask)).sum((1, 2))
    (g,) = torch.autograd.grad(score.sum(), a)
    ref = F.relu((g.mean((2, 3), keepdim=True) * a).sum(1)).detach().numpy()
    assert_rel(cam.attributions, ref, 1e-5)


# --------------------------------------------------------------------------- Detection

ANCHORS = (((6.0, 5.0), (11.0, 13.0)), ((18.0, 16.0), (30.0, 26.0)))
STRIDES = (4, 8)
NUM_CLASSES = 3


class TwoScaleHead(nn.Module):
    """A random YOLO-style two-scale detector: (p4, p8) raw heads, channels-first or -last."""

    def __init__(self, channels_last: bool = False) -> None:
        super().__init__()
        depth = 2 * (5 + NUM_CLASSES)
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, stride=2), nn.LeakyReLU(0.1),
                                  nn.Conv2d(8, 12, 3, padding=1, stride=2), nn.LeakyReLU(0.1))
        self.down = nn.Conv2d(12, 16, 3, padding=1, stride=2)
        self.head4 = nn.Conv2d(12, depth, 1)
        self.head8 = nn.Conv2d(16, depth, 1)
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.stem(x)
        p4, p8 = self.head4(f), self.head8(F.leaky_relu(self.down(f), 0.1))
        if self.channels_last:
            return p4.permute(0, 2, 3, 1), p8.permute(0, 2, 3, 1)
        return p4, p8


def _config(channels_last: bool) -> YoloConfig:
    return YoloConfig(NUM_CLASSES, STRIDES, ANCHORS, layout="channels_last" if channels_last else "channels_first")


def ref_detection_score(heads, classes, weights, channels_last):
    """sum over scales, cells, anchors of w * sigmoid(objectness) * sigmoid(class logit), written out."""
    total = 0
    for p, wgt in zip(heads, weights):
        if channels_last:
            p = p.permute(0, 3, 1, 2)
        n, _, h, w = p.shape
        t = p.reshape(n, 2, 5 + NUM_CLASSES, h, w)
        obj = torch.sigmoid(t[:, :, 4])
        cls = torch.sigmoid(t[torch.arange(n), :, 5 + torch.as_tensor(classes)])
        total = total + (obj * cls * torch.as_tensor(wgt, dtype=p.dtype)).sum((1, 2, 3))
    return total


def _ref_grad(model, x, classes, weights, channels_last):
    xr = x.clone().requires_grad_(True)
    score = ref_detection_score(model(xr), classes, weights, channels_last)
    return torch.autograd.grad(score.sum(), xr)[0].numpy(), score.detach().numpy()


@pytest.fixture
def xd():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize("channels_last", [False, True])
def test_detection_every_cell_against_formula(xd, channels_last):
    torch.manual_seed(1)
    model = TwoScaleHead(channels_last).eval()
    with torch.no_grad():
        heads = [h.numpy() for h in model(xd)]
    weights = cell_weights(heads, STRIDES, ANCHORS, NUM_CLASSES, channels_last)
    exp = gs.saliency(model, xd, target=Detection(_config(channels_last), class_index=[2, 0]))
    ref, score = _ref_grad(model, xd, [2, 0], weights, channels_last)
    assert_rel(exp.attributions, ref, 1e-5)
    assert_rel(exp.scores, score, 1e-6)
    np.testing.assert_array_equal(exp.targets, [2, 0])
    assert isinstance(exp.outputs, list) and len(exp.outputs) == 2
    # class None: the class of the most confident cell/anchor
    best = best_class(heads, ANCHORS, NUM_CLASSES, channels_last)
    exp = gs.saliency(model, xd, target=Detection(_config(channels_last)))
    np.testing.assert_array_equal(exp.targets, best)
    assert_rel(exp.attributions, _ref_grad(model, xd, best, weights, channels_last)[0], 1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
def test_detection_one_box_against_formula(xd, channels_last):
    torch.manual_seed(2)
    model = TwoScaleHead(channels_last).eval()
    with torch.no_grad():
        heads = [h.numpy() for h in model(xd)]
    # a box near what cell (row 3, col 2), anchor 1 of the first scale decodes to, per sample
    boxes = []
    for i in range(2):
        v = heads[0][i, 3, 2, 8:16] if channels_last else heads[0][i, 8:16, 3, 2]
        boxes.append(decoded_box(v, 3, 2, STRIDES[0], ANCHORS[0][1]) + [1.0, -0.5, 0.5, 1.0])
    boxes = np.array(boxes)
    weights = cell_weights(heads, STRIDES, ANCHORS, NUM_CLASSES, channels_last, boxes, 0.4)
    assert all(w.sum() >= 1 for w in weights[:1]) and sum(w.sum() for w in weights) < sum(w.size for w in weights) / 4
    target = Detection(_config(channels_last), class_index=1, box=boxes, iou=0.4)
    for method in ("saliency", "smoothgrad"):
        exp = gs.explain(model, xd, method, target=target, **({"samples": 2, "noise": 0.0} if method == "smoothgrad" else {}))
        assert_rel(exp.attributions, _ref_grad(model, xd, [1, 1], weights, channels_last)[0], 1e-5)
    # gradcam and guided gradcam run on a multi-output detector (smoke test of the plumbing)
    assert gs.gradcam(model, xd, target=target, layer="stem").attributions.shape == (2, 8, 8)
    assert gs.guided_gradcam(model, xd, target=target, layer="stem").attributions.shape == (2, 3, 32, 32)


def test_detection_single_scale_and_output_selection(xd):
    torch.manual_seed(3)
    model = TwoScaleHead().eval()
    cfg = YoloConfig(NUM_CLASSES, (8,), (ANCHORS[1],))
    exp = gs.saliency(model, xd, target=Detection(cfg, class_index=0), output=1)
    with torch.no_grad():
        heads = [model(xd)[1].numpy()]
    weights = cell_weights(heads, (8,), (ANCHORS[1],), NUM_CLASSES, False)
    xr = xd.clone().requires_grad_(True)
    score = ref_detection_score([model(xr)[1]], [0, 0], weights, False)
    assert_rel(exp.attributions, torch.autograd.grad(score.sum(), xr)[0].numpy(), 1e-5)
    with pytest.raises(gs.TargetError, match="choose one with output=INDEX"):
        gs.saliency(model, xd, target=Detection(cfg, class_index=0))


# --------------------------------------------------------------------------- errors


def test_detection_config_mismatch_says_what_shape_it_expected(xd):
    model = TwoScaleHead().eval()
    wrong = YoloConfig(4, STRIDES, ANCHORS)  # 2 * (5 + 4) = 18 channels, the head has 16
    with pytest.raises(gs.TargetError, match=r"has shape \(2, 16, 8, 8\), but the config expects \(N, 18, H, W\)"):
        gs.saliency(model, xd, target=Detection(wrong, 0))
    with pytest.raises(gs.TargetError, match="looks channels-last.*layout='channels_last'"):
        gs.saliency(TwoScaleHead(channels_last=True).eval(), xd, target=Detection(YoloConfig(NUM_CLASSES, STRIDES, ANCHORS), 0))
    three = YoloConfig(NUM_CLASSES, (4, 8, 16), ANCHORS + (((40.0, 40.0),),))
    with pytest.raises(gs.TargetError, match=r"out of range|3 scale\(s\)"):
        gs.saliency(model, xd, target=Detection(three, 0))
    with pytest.raises(gs.TargetError, match=r"3 scale\(s\).*has 2 tensor"):
        gs.saliency(model, xd, target=Detection(three, 0), output=(0, 1))
    swapped = YoloConfig(NUM_CLASSES, (8, 4), ANCHORS)
    with pytest.raises(gs.TargetError, match="order of strides"):
        gs.saliency(model, xd, target=Detection(swapped, 0))
    with pytest.raises(gs.TargetError, match="out of range"):
        Detection(_config(False), class_index=3)
    with pytest.raises(gs.TargetError, match="IoU >= 0.9"):
        gs.saliency(model, xd, target=Detection(_config(False), 0, box=(0, 0, 1, 1), iou=0.9))
    with pytest.raises(gs.TargetError, match=r"one stride and one list of \(w, h\) anchors per scale"):
        YoloConfig(3, (8, 16), ANCHORS[:1])


def test_topk_larger_than_the_number_of_classes(net, x):
    n = net(x).shape[1]
    with pytest.raises(gs.TargetError, match=rf"TopK\({n + 1}\) asks for more classes than the model has outputs \({n}\)"):
        gs.gradcam(net, x, target=TopK(n + 1), layer=net.cam_layer)
    with pytest.raises(gs.TargetError, match="positive int"):
        TopK(0)


def test_segmentation_mask_of_the_wrong_size(x):
    model = TinySegmenter().eval()
    with pytest.raises(gs.TargetError, match=r"mask has shape \(16, 16\).*must be \(8, 8\) or \(3, 8, 8\)"):
        gs.saliency(model, x, target=Segmentation(1, mask=np.ones((16, 16), bool)))
    with pytest.raises(gs.TargetError, match="out of range"):
        gs.saliency(model, x, target=Segmentation(4))
    with pytest.raises(gs.TargetError, match="4-D"):
        gs.saliency(make(FunctionalNet), x, target=Segmentation(1))
    with torch.no_grad():
        model.out.bias[3] = -1e3  # class 3 is never predicted
    with pytest.raises(gs.TargetError, match=r"no output pixel is predicted as class\(es\) \[3, 3, 3\]"):
        gs.saliency(model, x, target=Segmentation(3))


def test_several_outputs_selected_by_tuple(xd):
    model = TwoScaleHead().eval()
    exp = gs.saliency(model, xd, target=lambda outs: outs[0].sum((1, 2, 3)) - outs[1].mean((1, 2, 3)), output=(0, 1))
    xr = xd.clone().requires_grad_(True)
    p4, p8 = model(xr)
    ref = torch.autograd.grad((p4.sum((1, 2, 3)) - p8.mean((1, 2, 3))).sum(), xr)[0]
    assert_rel(exp.attributions, ref.numpy(), 1e-5)
    with pytest.raises(gs.TargetError, match="single output"):
        gs.saliency(make(FunctionalNet), torch.randn(1, 3, 16, 16), output=(0, 1))


def test_public_names():
    assert set(gs.targets.__all__) == {
        "Target", "ClassTarget", "TopK", "Segmentation", "Detection", "YoloConfig", "CallableTarget", "as_target",
        "select_output",
    }
    assert {"YoloConfig", "Detections", "detect", "nms", "box_iou", "mean_average_precision", "explain_detections"} <= set(
        gs.detection.__all__
    )
    for module in (gs.targets, gs.detection):
        for name in module.__all__:
            assert getattr(module, name) is not None
