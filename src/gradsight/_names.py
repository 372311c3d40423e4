"""How methods are named in pictures, and which are drawn as gradient images (no imports).

One table for the captions (``render``), the grids of the demo runner and the CLI, and
the viewer, so a method is titled the same everywhere.
"""

from __future__ import annotations

__all__ = ["GRADIENT_IMAGE_METHODS", "METHOD_TITLES"]

METHOD_TITLES = {
    "saliency": "saliency",
    "smoothgrad": "SmoothGrad",
    "deconvnet": "deconvnet",
    "guided_backprop": "guided backprop",
    "gradcam": "Grad-CAM",
    "guided_gradcam": "guided Grad-CAM",
    "gradcam_plus_plus": "Grad-CAM++",
    "xgradcam": "XGrad-CAM",
    "layercam": "Layer-CAM",
    "hirescam": "HiResCAM",
    "eigencam": "Eigen-CAM",
    "scorecam": "Score-CAM",
    "integrated_gradients": "Integrated Gradients",
    "input_x_gradient": "input x gradient",
    "attention_rollout": "attention rollout",
}
"""How each method is named in captions and grid titles."""

GRADIENT_IMAGE_METHODS = ("deconvnet", "guided_backprop", "guided_gradcam")
"""Methods drawn as a signed RGB gradient image (mid-grey is zero), not a heat map."""
