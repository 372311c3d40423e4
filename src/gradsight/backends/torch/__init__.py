"""PyTorch backend (imported only when a torch model arrives)."""

from .backend import TorchBackend, TorchPrimitives, looped_backward
from .ops import TorchOps
from .rules import apply_rule

__all__ = ["TorchBackend", "TorchOps", "TorchPrimitives", "apply_rule", "looped_backward"]
