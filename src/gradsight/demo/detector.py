"""``TinyYolo``, the demo detector: Darknet conv-BN-LeakyReLU(0.1) blocks and a two-scale YOLO head.

Trained by ``scripts/train_detector.py`` on :mod:`gradsight.demo.shapes_detect` images;
the weights ship in ``weights/tiny_yolo.pt``. Its head is described by :data:`CONFIG`,
the :class:`~gradsight.detection.YoloConfig` that :class:`gradsight.targets.Detection`
and :func:`gradsight.detection.detect` take.

Examples
--------
>>> import torch, gradsight as gs
>>> from gradsight.demo.detector import CONFIG, load_demo_detector
>>> from gradsight.demo.shapes import preprocess
>>> from gradsight.demo.shapes_detect import generate
>>> model = load_demo_detector()
>>> x = preprocess(generate(2, seed=99).images)                 # (2, 3, 64, 64)
>>> p8, p16 = model(torch.from_numpy(x))                         # (2, 20, 8, 8), (2, 20, 4, 4)
>>> boxes = gs.detection.detect([p8.detach().numpy(), p16.detach().numpy()], CONFIG, channels_last=False)
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..detection import YoloConfig
from .shapes import CLASSES

__all__ = ["CONFIG", "INPUT_SIZE", "CAM_LAYER", "WEIGHTS_PATH", "ConvBlock", "TinyYolo", "load_demo_detector"]

INPUT_SIZE = 64
"""Side of the square RGB images the detector takes (normalised with ``shapes.preprocess``)."""

CONFIG = YoloConfig(
    num_classes=len(CLASSES),
    strides=(8, 16),
    anchors=(((12.0, 12.0), (16.0, 16.0)), ((20.0, 20.0), (25.0, 25.0))),
)
"""The head: outputs ``(p8, p16)``, strides 8 and 16, two anchors each, the shapes' five classes."""

CAM_LAYER = "pool3"
"""The 8x8 feature map that feeds both scales: the natural Grad-CAM layer."""

WEIGHTS_PATH: Path = Path(__file__).resolve().parent / "weights" / "tiny_yolo.pt"

LEAKY = 0.1


class ConvBlock(nn.Module):
    """Darknet's conv (no bias) - BatchNorm - LeakyReLU(0.1).

    ``functional=True`` calls ``F.leaky_relu`` instead of holding an ``nn.LeakyReLU``
    module: the detector has both spellings, and the backward rules must see both.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, functional: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.functional = functional
        self.act = None if functional else nn.LeakyReLU(LEAKY, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.leaky_relu(x, LEAKY) if self.act is None else self.act(x)


class TinyYolo(nn.Module):
    """A tiny YOLOv3-style detector for 64x64 images.

    Input (N, 3, 64, 64) normalised with :func:`gradsight.demo.shapes.preprocess`.
    Output ``(p8, p16)``: raw heads (N, 2 * (5 + 5), 8, 8) and (N, 20, 4, 4),
    channels-first, anchors x (tx, ty, tw, th, objectness, 5 class logits).

    Layout (``named_modules()`` names)::

        block1 3->16 (LeakyReLU module)  pool1  32x32
        block2 16->32 (module)           pool2  16x16
        block3 32->64 (module)           pool3   8x8   -- route
        block4 64->128 (F.leaky_relu)    pool4   4x4
        block5 128->128 (F.leaky_relu)           4x4 -> head16 1x1 conv -> p16
        block6 1x1 128->32 (F.leaky_relu), nearest upsample x2, concat [up, pool3]
        block7 96->64 (F.leaky_relu)             8x8 -> head8 1x1 conv -> p8
    """

    def __init__(self, config: YoloConfig = CONFIG) -> None:
        super().__init__()
        # Read by tools (the CLI, gradsight.detection.explain_detections).
        self.detection_config = config
        self.input_size = INPUT_SIZE
        self.class_names = CLASSES
        self.cam_layer = CAM_LAYER
        self.block1 = ConvBlock(3, 16)
        self.pool1 = nn.MaxPool2d(2)
        self.block2 = ConvBlock(16, 32)
        self.pool2 = nn.MaxPool2d(2)
        self.block3 = ConvBlock(32, 64)
        self.pool3 = nn.MaxPool2d(2)
        self.block4 = ConvBlock(64, 128, functional=True)
        self.pool4 = nn.MaxPool2d(2)
        self.block5 = ConvBlock(128, 128, functional=True)
        self.head16 = nn.Conv2d(128, config.channels(1), 1)
        self.block6 = ConvBlock(128, 32, kernel=1, functional=True)
        self.block7 = ConvBlock(96, 64, functional=True)
        self.head8 = nn.Conv2d(64, config.channels(0), 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        route = self.pool3(self.block3(self.pool2(self.block2(self.pool1(self.block1(x))))))
        deep = self.block5(self.pool4(self.block4(route)))
        up = F.interpolate(self.block6(deep), scale_factor=2, mode="nearest")
        p8 = self.head8(self.block7(torch.cat([up, route], dim=1)))
        return p8, self.head16(deep)


def load_demo_detector() -> TinyYolo:
    """:class:`TinyYolo` with the bundled trained weights, in eval mode, on CPU.

    The model carries ``detection_config`` (:data:`CONFIG`), ``input_size`` (64),
    ``class_names`` and ``cam_layer`` for tools such as the CLI.
    """
    from .model import with_bundled_weights

    return with_bundled_weights(TinyYolo(), WEIGHTS_PATH, "demo detector weights", "scripts/train_detector.py")
