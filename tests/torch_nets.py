"""Small PyTorch models that exercise the messy cases, each with an independent
reference forward that takes the activation functions as arguments.

The reference forwards replicate the architecture by hand so that the rule can be
injected with a custom autograd function written in the tests (the zennit habit):
they do not go through gradsight's TorchFunctionMode at all.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

Act = Callable[[torch.Tensor, float], torch.Tensor]


def plain_act(x: torch.Tensor, slope: float) -> torch.Tensor:
    return F.leaky_relu(x, slope) if slope else F.relu(x)


class FunctionalNet(nn.Module):
    """Every functional rectifier spelling: F.relu, torch.relu, Tensor.relu, relu_, F.leaky_relu."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 12, 3, padding=1, stride=2)
        self.conv4 = nn.Conv2d(12, 12, 3, padding=1)
        self.fc = nn.Linear(12, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = torch.relu(self.conv2(x)) + x.relu()
        x = self.conv3(x)
        x = F.relu(x, inplace=True)
        x = self.conv4(x).relu_()
        x = F.leaky_relu(x, 0.2)
        x = torch.relu_(x * 1.5 - 0.1)
        return self.fc(x.mean((2, 3)))

    # reference split at conv4's output (a layer Grad-CAM can use)
    def ref_features(self, x: torch.Tensor, act: Act) -> torch.Tensor:
        x = act(self.conv1(x), 0.0)
        x = act(self.conv2(x), 0.0) + act(x, 0.0)
        x = act(self.conv3(x), 0.0)
        return self.conv4(x)

    def ref_head(self, a: torch.Tensor, act: Act) -> torch.Tensor:
        x = act(act(a, 0.0), 0.2)
        x = act(x * 1.5 - 0.1, 0.0)
        return self.fc(x.mean((2, 3)))

    cam_layer = "conv4"


class InplaceReusedNet(nn.Module):
    """conv-BN-ReLU(inplace=True) blocks with one ReLU module called three times, and a LeakyReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.leaky = nn.LeakyReLU(0.1, inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16, 5)
        for bn in (self.bn1, self.bn2, self.bn3):  # non-trivial running statistics
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.pool(self.relu(self.bn2(self.conv2(x))))
        x = self.bn3(self.conv3(x))
        x = self.relu(x)
        x = self.leaky(x - 0.05)
        return self.fc(x.mean((2, 3)))

    def ref_features(self, x: torch.Tensor, act: Act) -> torch.Tensor:
        x = act(self.bn1(self.conv1(x)), 0.0)
        x = self.pool(act(self.bn2(self.conv2(x)), 0.0))
        return self.bn3(self.conv3(x))

    def ref_head(self, a: torch.Tensor, act: Act) -> torch.Tensor:
        x = act(act(a, 0.0) - 0.05, 0.1)
        return self.fc(x.mean((2, 3)))

    cam_layer = "bn3"


class ModuleReluNet(nn.Module):
    """nn.ReLU modules only (not in place): the case Captum handles correctly."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make(cls: type[nn.Module], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return cls().eval()
