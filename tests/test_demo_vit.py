"""The bundled demo ViT (``--model demo-vit``): it loads, is trained, and its maps match
hand-written references (tokens hooked, class token dropped, reshaped to the 8 x 8 grid)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gradsight as gs
from gradsight.cli import main
from gradsight.demo.shapes import generate, preprocess
from gradsight.models import load_model
from helpers import assert_rel

torch = pytest.importorskip("torch")

from test_methods_cam_family import ref_eigencam, ref_scorecam  # noqa: E402

DATA = generate(64, seed=12345)  # the images the demo CNN's tests check too; never trained on
X = torch.from_numpy(preprocess(DATA.images))


@pytest.fixture(scope="module")
def vit():
    model, info = load_model("demo-vit")
    assert info.framework == "torch" and info.input_size == 64 and info.preprocessing == "demo"
    return model


def hooked_tokens(model, x, targets, layer="blocks.3.norm1"):
    """Hand-written: the layer's (N, 65, 64) tokens and their gradient, class token dropped, as NCHW grids."""
    seen = []
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        out = model(x)
    finally:
        handle.remove()
    (g,) = torch.autograd.grad(out[torch.arange(len(x)), torch.as_tensor(targets)].sum(), seen[0])
    grid = lambda t: t[:, 1:].reshape(len(x), 8, 8, -1).permute(0, 3, 1, 2).double()  # noqa: E731
    return grid(seen[0].detach()), grid(g), out.detach()


def test_demo_vit_is_trained(vit):
    """The accuracy the README states (1000 test images of seed 1) is checked on 64 images of another seed."""
    with torch.no_grad():
        acc = float((vit(X).argmax(1).numpy() == DATA.labels).mean())
    assert acc >= 0.9


def test_gradcam_auto_layer_matches_reshape_reference(vit):
    x = X[:8]
    exp = gs.gradcam(vit, x)
    assert exp.layer == "blocks.3.norm1" and exp.attributions.shape == (8, 8, 8) and exp.heatmaps.shape == (8, 64, 64)
    a, g, out = hooked_tokens(vit, x, exp.targets)
    np.testing.assert_array_equal(exp.targets, out.argmax(1).numpy())
    ref = torch.relu((g.mean((2, 3), keepdim=True) * a).sum(1)).numpy()
    assert_rel(exp.attributions, ref, 1e-5)


def test_maps_point_at_the_shape(vit):
    """On the trained model the maps are not noise: the pointing game (the peak on the shape's mask,
    no tolerance) on the 64 images, where random maps score 0.10 (0.16 at most over 20 draws)."""
    from gradsight import evaluate as ev

    cam = ev.pointing_game(gs.gradcam(vit, X).heatmaps, DATA.masks, tolerance=0).accuracy
    rollout = ev.pointing_game(gs.attention_rollout(vit, X).heatmaps, DATA.masks, tolerance=0).accuracy
    assert cam >= 0.3 and rollout >= 0.45, (cam, rollout)  # measured: 0.375 and 0.547


def test_cams_without_a_gradient_read_the_token_grid(vit):
    """Eigen-CAM and Score-CAM on the transformer layer, against the references on the reshaped tokens."""
    x, targets = X[:2], DATA.labels[:2]
    a, _, _ = hooked_tokens(vit, x, targets)
    assert_rel(gs.eigencam(vit, x, target=targets).attributions, ref_eigencam(a).numpy(), 1e-5)
    one = gs.scorecam(vit, x[:1], target=targets[:1], batch_size=64).attributions  # 64 masked copies
    assert_rel(one, ref_scorecam(vit, x[:1], targets[:1], a[:1]).numpy(), 1e-4)


def test_attention_rollout_matches_hand_written_rollout(vit):
    x = X[:3]
    seen = []
    handles = [b.attn.softmax.register_forward_hook(lambda m, i, o: seen.append(o)) for b in vit.blocks]
    with torch.no_grad():
        vit(x)
    for h in handles:
        h.remove()
    r = torch.eye(65).double().expand(3, 65, 65)
    for att in seen:
        a = (att.double().mean(1) + torch.eye(65)) / 2
        r = (a / a.sum(-1, keepdim=True)) @ r
    ref = r[:, 0, 1:].reshape(3, 8, 8).numpy()
    assert_rel(gs.attention_rollout(vit, x).attributions, ref, 1e-5)


def test_cli_explains_with_the_bundled_vit(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from PIL import Image

    path = tmp_path / "star.png"
    Image.fromarray(DATA.images[0]).save(path)
    rc = main(["explain", str(path), "--model", "demo-vit", "--method", "gradcam", "--out", str(tmp_path / "out"),
               "--plain"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out.startswith(f"{path}: predicted ")
    assert "automatic" in err and "blocks.3.norm1" in err
    pic = np.asarray(Image.open(tmp_path / "out" / "star_gradcam.png").convert("RGB"))
    assert pic.shape == (128, 128, 3)
    assert main(["layers", "--model", "demo-vit"]) == 0
    marked = [line for line in capsys.readouterr().out.splitlines() if "<- auto" in line]
    assert len(marked) == 1 and marked[0].startswith("blocks.3.norm1 ")


def test_keras_demo_vit_says_it_is_pytorch_only():
    with pytest.raises(gs.ModelError, match="PyTorch model only"):
        load_model("demo-vit", framework="keras")
