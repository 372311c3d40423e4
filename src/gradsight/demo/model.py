"""``ShapesNet``, the small demo CNN trained on the shapes benchmark, and its bundled weights.

The weights in ``weights/shapes_net.pt`` were produced by ``scripts/train_demo.py``
(``python scripts/train_demo.py`` from the repository root retrains them).

Examples
--------
>>> import torch
>>> from gradsight.demo.model import load_demo_model
>>> from gradsight.demo.shapes import generate, preprocess
>>> model = load_demo_model()
>>> data = generate(4, seed=12345)
>>> logits = model(torch.from_numpy(preprocess(data.images)))  # (4, 5)
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from .shapes import CLASSES

__all__ = ["LOC_WEIGHTS_PATH", "ShapesNet", "WEIGHTS_PATH", "load_demo_model", "load_loc_model"]

WEIGHTS_PATH: Path = Path(__file__).resolve().parent / "weights" / "shapes_net.pt"
"""The packaged ``state_dict`` of the trained :class:`ShapesNet`."""

LOC_WEIGHTS_PATH: Path = Path(__file__).resolve().parent / "weights" / "shapes_net_loc.pt"
"""The packaged ``state_dict`` of ``demo-loc``: :class:`ShapesNet` fine-tuned with a localisation signal."""


class ShapesNet(nn.Module):
    """A small conv-BN-ReLU network for 64x64 RGB shapes images, 5 classes.

    Input: float32 ``(N, 3, 64, 64)`` normalised with
    :func:`gradsight.demo.shapes.preprocess`. Output: ``(N, 5)`` logits (no softmax),
    in the order of :data:`gradsight.demo.shapes.CLASSES`.

    Structure (module names as in ``named_modules()``)::

        conv1 Conv2d(3, 16, 3, padding=1, bias=False)  -> bn1 BatchNorm2d(16) -> relu -> pool1 MaxPool2d(2)
        conv2 Conv2d(16, 32, 3, padding=1, bias=False) -> bn2 BatchNorm2d(32) -> relu -> pool2 MaxPool2d(2)
        conv3 Conv2d(32, 64, 3, padding=1, bias=False) -> bn3 BatchNorm2d(64) -> relu -> pool3 MaxPool2d(2)
        conv4 Conv2d(64, 64, 3, padding=1, bias=False) -> bn4 BatchNorm2d(64) -> relu4        # (N, 64, 8, 8)
        gap   AdaptiveAvgPool2d(1) -> flatten -> classifier Linear(64, 5)

    ``relu`` is ONE ``nn.ReLU(inplace=True)`` instance called three times per forward
    pass (after ``bn1``, ``bn2`` and ``bn3``, like torchvision ResNet's ``self.relu``).
    ``relu4`` is a separate, out-of-place ``nn.ReLU()``; its output (equivalently the
    last conv block ``conv4 -> bn4 -> relu4``) is the ``(N, 64, 8, 8)`` feature map used
    for Grad-CAM, so ``"relu4"`` is the natural target layer (``"conv4"`` and ``"bn4"``
    are 8x8 too). BatchNorm uses PyTorch defaults (``eps=1e-5``, ``momentum=0.1``); a
    Keras twin needs ``Conv2D(use_bias=False)``, ``BatchNormalization(epsilon=1e-5)``,
    ``MaxPooling2D(2)``, ``GlobalAveragePooling2D`` and ``Dense(5)``.

    Parameters
    ----------
    num_classes : int, default 5
        Number of output logits.
    """

    def __init__(self, num_classes: int = len(CLASSES)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)  # shared: used after bn1, bn2 and bn3
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 64, kernel_size=3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.pool3 = nn.MaxPool2d(2)
        self.conv4 = nn.Conv2d(64, 64, kernel_size=3, padding=1, bias=False)
        self.bn4 = nn.BatchNorm2d(64)
        self.relu4 = nn.ReLU()  # last conv block's output: (N, 64, 8, 8)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the ``(N, num_classes)`` logits of a ``(N, 3, 64, 64)`` batch."""
        x = self.pool1(self.relu(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu(self.bn2(self.conv2(x))))
        x = self.pool3(self.relu(self.bn3(self.conv3(x))))
        x = self.relu4(self.bn4(self.conv4(x)))
        x = torch.flatten(self.gap(x), 1)
        return self.classifier(x)


def load_demo_model() -> ShapesNet:
    """Build :class:`ShapesNet` with the bundled trained weights, in eval mode, on CPU.

    Returns
    -------
    ShapesNet
        The trained demo model (``model.training`` is ``False``).

    Raises
    ------
    FileNotFoundError
        If the weights file is missing (run ``python scripts/train_demo.py``).
    """
    return with_bundled_weights(ShapesNet(), WEIGHTS_PATH, "Demo weights", "scripts/train_demo.py")


def load_loc_model() -> ShapesNet:
    """``demo-loc``: :class:`ShapesNet` fine-tuned with a localisation signal, in eval mode, on CPU.

    Same architecture, data and classes as the demo CNN; the weights were trained further by
    ``python scripts/train_demo_loc.py`` with a second loss term that pulls the true class's
    activation map at ``relu4`` towards the shape's mask (the generator's own masks). It shows
    what a model trained to localise gives the pointing game; the demo CNN is unchanged.
    """
    return with_bundled_weights(ShapesNet(), LOC_WEIGHTS_PATH, "demo-loc weights", "scripts/train_demo_loc.py")


M = TypeVar("M", bound=nn.Module)


def with_bundled_weights(model: M, path: Path, what: str, script: str) -> M:
    """``model`` with the ``state_dict`` at ``path`` loaded (CPU), in eval mode; FileNotFoundError naming ``script``."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} not found at {path}. Reinstall gradsight, or retrain them "
            f"with `python {script}` from the repository root."
        )
    model.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
    return model.eval()
