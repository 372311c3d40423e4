"""The shapes benchmark data (``gradsight.demo.shapes``) and the bundled demo model."""

from __future__ import annotations

import numpy as np
import pytest

from gradsight.demo import shapes
from gradsight.demo.shapes import CLASSES, IMAGE_SIZE, MEAN, STD, ShapesData, generate, preprocess


@pytest.fixture(scope="module")
def data200() -> ShapesData:
    return generate(200, seed=0)


def test_constants() -> None:
    assert CLASSES == ("circle", "square", "triangle", "star", "cross")
    assert IMAGE_SIZE == 64
    for c in (MEAN, STD):
        assert c.dtype == np.float32 and c.shape == (3,)
    assert np.all(STD > 0)


def test_shapes_and_dtypes(data200: ShapesData) -> None:
    d = data200
    assert len(d) == 200
    assert d.images.shape == (200, 64, 64, 3) and d.images.dtype == np.uint8
    assert d.labels.shape == (200,) and d.labels.dtype == np.int64
    assert d.masks.shape == (200, 64, 64) and d.masks.dtype == np.bool_
    assert d.labels.min() >= 0 and d.labels.max() < len(CLASSES)


def test_other_size_and_empty() -> None:
    d = generate(3, seed=5, size=48)
    assert d.images.shape == (3, 48, 48, 3) and d.masks.shape == (3, 48, 48)
    e = generate(0)
    assert e.images.shape == (0, 64, 64, 3) and e.labels.shape == (0,)


def test_deterministic_same_seed() -> None:
    a, b = generate(12, seed=3), generate(12, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.masks, b.masks)


def test_different_seed_differs() -> None:
    a, b = generate(12, seed=3), generate(12, seed=4)
    assert not np.array_equal(a.images, b.images)
    assert not np.array_equal(a.masks, b.masks)


def test_prefix_property(data200: ShapesData) -> None:
    small = generate(7, seed=0)
    np.testing.assert_array_equal(small.images, data200.images[:7])
    np.testing.assert_array_equal(small.labels, data200.labels[:7])
    np.testing.assert_array_equal(small.masks, data200.masks[:7])
    sub = data200[:7]
    assert isinstance(sub, ShapesData) and len(sub) == 7
    assert len(data200[3]) == 1


def test_masks_nonempty_and_inside(data200: ShapesData) -> None:
    area = data200.masks.sum(axis=(1, 2))
    assert area.min() > 40  # every target is a sizeable shape
    assert area.max() < 0.5 * 64 * 64
    # the shape never touches the image border
    border = np.zeros((64, 64), dtype=bool)
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = True
    assert not (data200.masks & border).any()


def test_mask_marks_the_shape(data200: ShapesData) -> None:
    # inside the mask the colour is (nearly) uniform and differs from the ring around it
    d = data200
    for i in range(20):
        m = d.masks[i]
        inside = d.images[i][m].astype(np.float64)
        grown = m.copy()
        for ax in (0, 1):
            for sh in (-2, 2):
                grown |= np.roll(m, sh, axis=ax)
        ring = d.images[i][grown & ~m].astype(np.float64)
        assert np.linalg.norm(inside.mean(0) - ring.mean(0)) > 25, i


def test_all_classes_occur(data200: ShapesData) -> None:
    counts = np.bincount(data200.labels, minlength=len(CLASSES))
    assert counts.shape == (len(CLASSES),)
    assert counts.min() >= 20  # balanced-ish


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate(-1)
    with pytest.raises(ValueError):
        generate(2, seed=-1)
    with pytest.raises(ValueError):
        preprocess(np.zeros((2, 8, 8, 3), np.uint8), layout="CHW")
    with pytest.raises(ValueError):
        preprocess(np.zeros((2, 8, 8), np.uint8))


def test_preprocess_layouts_and_values() -> None:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (2, 5, 6, 3), dtype=np.uint8)
    nchw = preprocess(imgs)
    nhwc = preprocess(imgs, layout="NHWC")
    assert nchw.shape == (2, 3, 5, 6) and nchw.dtype == np.float32
    assert nhwc.shape == (2, 5, 6, 3) and nhwc.dtype == np.float32
    np.testing.assert_array_equal(nchw, nhwc.transpose(0, 3, 1, 2))
    # hand computation for a few pixels
    for n, y, x, c in [(0, 0, 0, 0), (1, 4, 5, 2), (0, 2, 3, 1)]:
        want = (imgs[n, y, x, c] / 255.0 - float(MEAN[c])) / float(STD[c])
        assert nchw[n, c, y, x] == pytest.approx(want, abs=1e-5)
        assert nhwc[n, y, x, c] == pytest.approx(want, abs=1e-5)
    # a single image keeps its rank
    single = preprocess(imgs[1])
    assert single.shape == (3, 5, 6)
    np.testing.assert_array_equal(single, nchw[1])
    np.testing.assert_array_equal(preprocess(imgs[1], layout="NHWC"), nhwc[1])


def test_preprocess_statistics() -> None:
    x = preprocess(generate(300, seed=7).images)
    assert np.abs(x.mean(axis=(0, 2, 3))).max() < 0.1
    assert np.abs(x.std(axis=(0, 2, 3)) - 1).max() < 0.1


def test_shapes_module_does_not_import_torch() -> None:
    src = open(shapes.__file__, encoding="utf-8").read()
    assert "import torch" not in src


def test_demo_model_accuracy() -> None:
    torch = pytest.importorskip("torch")
    from gradsight.demo.model import WEIGHTS_PATH, ShapesNet, load_demo_model

    assert WEIGHTS_PATH.is_file()
    assert WEIGHTS_PATH.stat().st_size < 2 * 1024 * 1024
    model = load_demo_model()
    assert isinstance(model, ShapesNet) and not model.training
    d = generate(300, seed=12345)  # training used seed 0, its test set seed 1
    with torch.no_grad():
        logits = model(torch.from_numpy(preprocess(d.images)))
    assert logits.shape == (300, len(CLASSES))
    acc = float((logits.argmax(1).numpy() == d.labels).mean())
    assert acc >= 0.95, acc


def test_demo_model_structure() -> None:
    torch = pytest.importorskip("torch")
    from gradsight.demo.model import ShapesNet

    model = ShapesNet().eval()
    names = dict(model.named_modules())
    assert isinstance(names["classifier"], torch.nn.Linear)
    assert names["relu"].inplace
    calls: list[tuple[int, ...]] = []
    model.relu.register_forward_hook(lambda m, i, o: calls.append(tuple(o.shape)))
    feats: list[tuple[int, ...]] = []
    model.relu4.register_forward_hook(lambda m, i, o: feats.append(tuple(o.shape)))
    out = model(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 5)
    assert len(calls) == 3  # one shared ReLU instance, called three times
    assert feats == [(2, 64, 8, 8)]
