"""``ShapesNetFine``: a demo CNN whose last stage keeps 16x16 resolution, for finer CAMs.

Same data, preprocessing and classes as :class:`~gradsight.demo.model.ShapesNet`; the
difference is the last stage: after two 2x poolings (64 -> 16) there is no more pooling.
Two dilated 3x3 convolutions (dilation 2 and 4) grow the receptive field to 66 pixels
(the whole image) while the feature map stays 16x16, then global average pooling and a
linear classifier. A CAM at ``relu5`` is therefore a 16x16 map (4 input pixels per cell)
instead of the demo CNN's 8x8 (8 per cell). The weights in ``weights/shapes_net_fine.pt``
were produced by ``python scripts/train_demo_fine.py``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .shapes import CLASSES

__all__ = ["FINE_WEIGHTS_PATH", "ShapesNetFine", "load_fine_model"]

FINE_WEIGHTS_PATH: Path = Path(__file__).resolve().parent / "weights" / "shapes_net_fine.pt"
"""The packaged ``state_dict`` of the trained :class:`ShapesNetFine`."""


class ShapesNetFine(nn.Module):
    """Conv-BN-ReLU network for 64x64 RGB shapes images, 5 classes, last stage at 16x16.

    Structure (module names as in ``named_modules()``)::

        conv1 Conv2d(3, 16, 3, padding=1)   -> bn1 -> relu1 -> pool1 MaxPool2d(2)    # 32x32
        conv2 Conv2d(16, 32, 3, padding=1)  -> bn2 -> relu2 -> pool2 MaxPool2d(2)    # 16x16
        conv3 Conv2d(32, 64, 3, padding=1)  -> bn3 -> relu3                          # 16x16
        conv4 Conv2d(64, 64, 3, padding=2, dilation=2) -> bn4 -> relu4               # 16x16
        conv5 Conv2d(64, 64, 3, padding=4, dilation=4) -> bn5 -> relu5               # (N, 64, 16, 16)
        gap AdaptiveAvgPool2d(1) -> flatten -> classifier Linear(64, 5)

    Convolutions have no bias (BatchNorm follows); every ReLU is its own out-of-place
    module. ``relu5`` is the automatic CAM layer (the last spatial layer).
    """

    def __init__(self, num_classes: int = len(CLASSES)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.relu3 = nn.ReLU()
        self.conv4 = nn.Conv2d(64, 64, 3, padding=2, dilation=2, bias=False)
        self.bn4 = nn.BatchNorm2d(64)
        self.relu4 = nn.ReLU()
        self.conv5 = nn.Conv2d(64, 64, 3, padding=4, dilation=4, bias=False)
        self.bn5 = nn.BatchNorm2d(64)
        self.relu5 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the ``(N, num_classes)`` logits of a ``(N, 3, 64, 64)`` batch."""
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        x = self.relu3(self.bn3(self.conv3(x)))
        x = self.relu4(self.bn4(self.conv4(x)))
        x = self.relu5(self.bn5(self.conv5(x)))
        return self.classifier(torch.flatten(self.gap(x), 1))


def load_fine_model() -> ShapesNetFine:
    """:class:`ShapesNetFine` with the bundled trained weights, in eval mode, on CPU.

    Raises ``FileNotFoundError`` if the weights file is missing (run
    ``python scripts/train_demo_fine.py``).
    """
    from .model import with_bundled_weights

    return with_bundled_weights(ShapesNetFine(), FINE_WEIGHTS_PATH, "Fine demo weights", "scripts/train_demo_fine.py")
