"""Renamed import paths keep working for one release, with a DeprecationWarning, and give
the very objects of their new home; the one preprocess is the same function everywhere."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

import gradsight.detect
import gradsight.detection
import gradsight.targets
from gradsight import inputs, models
from gradsight.backends import outputs
from gradsight.demo import shapes


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        (gradsight.detection, "explain_detections", gradsight.detect),
        (gradsight.detection, "BoxExplanations", gradsight.detect),
        (gradsight.targets, "select_output", outputs),
    ],
)
def test_moved_names_warn_and_are_the_new_objects(old, name, new):
    with pytest.warns(DeprecationWarning, match=f"{name} moved to {new.__name__}"):
        got = getattr(old, name)
    assert got is getattr(new, name)


def test_detection_cli_module_warns_and_forwards():
    sys.modules.pop("gradsight.detection_cli", None)
    with pytest.warns(DeprecationWarning, match="gradsight.detection_cli moved"):
        old = importlib.import_module("gradsight.detection_cli")
    from gradsight.cli import explain_boxes

    assert old.explain_detector is explain_boxes.explain_boxes and old.draw_box is explain_boxes.draw_box


def test_explain_detections_box_iou_is_match_iou():
    torch = pytest.importorskip("torch")
    from gradsight.demo.detector import load_demo_detector
    from gradsight.demo.shapes_detect import generate

    model = load_demo_detector()
    x = torch.from_numpy(shapes.preprocess(generate(1, seed=5).images))
    new = gradsight.detect.explain_detections(model, x, "saliency", match_iou=0.3)
    with pytest.warns(DeprecationWarning, match="match_iou"):
        old = gradsight.detect.explain_detections(model, x, "saliency", box_iou=0.3)
    assert new.explanation is not None
    np.testing.assert_array_equal(old.explanation.attributions, new.explanation.attributions)
    np.testing.assert_array_equal(old.image_index, new.image_index)


def test_one_preprocess():
    assert models.preprocess is inputs.preprocess and models.ModelInfo is inputs.ModelInfo
    images = np.random.default_rng(0).integers(0, 256, (2, 5, 5, 3), dtype=np.uint8)
    # reference: (x / 255 - mean) / std by hand, channels first
    ref = ((images / 255.0 - shapes.MEAN.astype(np.float64)) / shapes.STD.astype(np.float64)).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(shapes.preprocess(images), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(shapes.preprocess(images, "NHWC"), inputs.preprocess(images, "demo", "NHWC"))
    single = shapes.preprocess(images[0])
    assert single.shape == (3, 5, 5)
    np.testing.assert_array_equal(single, shapes.preprocess(images)[0])
