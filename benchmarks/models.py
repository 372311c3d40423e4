"""Benchmark models written out by hand (torchvision is not needed).

- :func:`resnet50`: torchvision's ResNet-50 layout (Bottleneck blocks [3, 4, 6, 3],
  stride on the 3x3 convolution, one ``self.relu = nn.ReLU(inplace=True)`` module
  called three times per block, ``out += identity``), randomly initialised the way
  torchvision does it. Module names match torchvision's (``layer4``, ``fc``, ...).
- :func:`cifar_resnet`: a CIFAR ResNet (He et al. 2016, section 4.2: 3 stages of
  ``n`` BasicBlocks, 16/32/64 channels, 6n+2 layers; ``n=3`` is ResNet-20) for
  (N, 3, 32, 32) inputs, in two variants: ``functional=False`` uses one reused
  ``nn.ReLU(inplace=True)`` module per block; ``functional=True`` calls ``F.relu``
  (the form Captum's module-hook rules do not see).

Weights are random: timings do not depend on them, and nothing here is loaded from
the network.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Bottleneck", "ResNet50", "BasicBlock", "CifarResNet", "resnet50", "cifar_resnet"]


def _init(model: nn.Module) -> None:
    # torchvision's ResNet initialisation.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: 1x1 -> 3x3 (stride) -> 1x1, expansion 4."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)  # one module, called three times
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet50(nn.Module):
    """ResNet-50 with torchvision's module names; input (N, 3, 224, 224), output (N, classes)."""

    def __init__(self, num_classes: int = 1000, layers: tuple[int, ...] = (3, 4, 6, 3)) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)
        _init(self)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class BasicBlock(nn.Module):
    """3x3 -> 3x3 residual block; ReLU as a reused module or as ``F.relu`` calls."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, functional: bool = False) -> None:
        super().__init__()
        self.functional = functional
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if not functional:
            self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def _relu(self, t: torch.Tensor) -> torch.Tensor:
        return F.relu(t) if self.functional else self.relu(t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self._relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self._relu(out + identity)


class CifarResNet(nn.Module):
    """CIFAR ResNet-(6n+2); input (N, 3, 32, 32), output (N, classes); ``layer3`` is the last stage."""

    def __init__(self, n: int = 3, num_classes: int = 10, functional: bool = False) -> None:
        super().__init__()
        self.functional = functional
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        if not functional:
            self.relu = nn.ReLU(inplace=True)
        blocks: list[list[nn.Module]] = [[], [], []]
        inplanes = 16
        for stage, planes in enumerate((16, 32, 64)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks[stage].append(BasicBlock(inplanes, planes, stride, functional))
                inplanes = planes
        self.layer1, self.layer2, self.layer3 = (nn.Sequential(*b) for b in blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv1(x))
        x = F.relu(x) if self.functional else self.relu(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet50(num_classes: int = 1000, seed: int = 0) -> ResNet50:
    """A randomly initialised ResNet-50 in eval mode."""
    torch.manual_seed(seed)
    return ResNet50(num_classes).eval()


def cifar_resnet(functional: bool = False, n: int = 3, num_classes: int = 10, seed: int = 0) -> CifarResNet:
    """A randomly initialised CIFAR ResNet-(6n+2) in eval mode (same weights for both variants)."""
    torch.manual_seed(seed)
    return CifarResNet(n, num_classes, functional).eval()
