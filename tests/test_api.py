"""The public surface: names, lazy imports, the Explanation object."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import gradsight as gs

PUBLIC = {
    "explain", "saliency", "smoothgrad", "deconvnet", "guided_backprop", "gradcam", "guided_gradcam",
    "backward_rule", "Explanation", "METHODS", "GradsightError", "UnknownMethodError", "UnknownOptionError",
    "LayerNotFoundError", "LayerNotCalledError", "TargetError", "InputError", "ModelError",
    "NotDifferentiableError", "RuleNotAppliedError", "GradsightWarning", "ZeroGradientWarning",
    "UnsupportedActivationWarning", "targets", "render", "__version__",
}


def test_public_names():
    assert set(gs.__all__) >= PUBLIC
    for name in gs.__all__:
        assert getattr(gs, name) is not None


def test_import_loads_no_framework():
    code = "import sys, gradsight, gradsight.render; print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_methods_registry():
    assert list(gs.METHODS) == [
        "saliency", "smoothgrad", "deconvnet", "guided_backprop", "gradcam", "guided_gradcam",
        "gradcam_plus_plus", "xgradcam", "layercam", "hirescam", "eigencam", "scorecam", "integrated_gradients",
        "input_x_gradient",
    ]
    assert gs.METHODS["smoothgrad"].options == {
        "samples": 50, "noise": 0.15, "batch_size": 32, "seed": None, "base": "saliency", "aggregate": "mean",
        "base_options": None, "output": None,
    }


def _explanation() -> gs.Explanation:
    heat = np.zeros((2, 8, 8), np.float32)
    heat[0, 2:4, 2:4] = 1.0
    heat[1, :, 4:] = 0.5
    return gs.Explanation(
        method="gradcam", attributions=heat[:, ::2, ::2], heatmaps=heat, targets=np.array([1, 2]),
        scores=np.array([0.5, 0.7], np.float32), outputs=np.zeros((2, 3), np.float32), layer="conv",
    )


def test_explanation_overlay_save_and_png(tmp_path):
    exp = _explanation()
    images = np.full((2, 8, 8, 3), 100, np.uint8)
    pics = exp.overlay(images, cmap="gist_earth", alpha=0.25)
    assert len(pics) == 2 and pics[0].size == (8, 8)
    paths = exp.save(tmp_path, images, plain=True)
    assert [p.name for p in paths] == ["gradcam_000.png", "gradcam_001.png"]
    back = np.asarray(Image.open(paths[0]))
    assert back.shape == (8, 8, 3) and back.std() > 0
    png = exp._repr_png_()
    assert png.startswith(b"\x89PNG")
    assert "layer='conv'" in repr(exp) and len(exp) == 2
    with pytest.raises(ValueError, match="3 images for 2"):
        exp.overlay(np.zeros((3, 8, 8, 3), np.uint8))


def test_every_method_has_a_function_with_its_options_as_keywords() -> None:
    """``help(gs.<method>)`` shows the method's real parameters, not ``**options`` alone."""
    import inspect

    session = ["output", "eval_mode", "logits"]
    for name, spec in gs.METHODS.items():
        fn = getattr(gs, name)
        params = inspect.signature(fn).parameters
        keywords = [p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY]
        expected = [o for o in spec.options if o != "output"]
        assert keywords == expected + session, name
        assert [params[o].default for o in expected] == [spec.options[o] for o in expected], name
        assert "Parameters\n    ----------" in fn.__doc__, name
        assert not any(f"{{{part}}}" in fn.__doc__ for part in ("common", "session", "layer")), name


def test_methods_do_not_import_render() -> None:
    """Methods make heat maps with gradsight.maps (numpy only); render (PIL, matplotlib) stays unloaded."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, gradsight.methods, gradsight.api; "
        "assert 'gradsight.render' not in sys.modules and 'PIL' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
