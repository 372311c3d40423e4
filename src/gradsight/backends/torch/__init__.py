"""PyTorch backend (imported only when a torch model arrives)."""

from .backend import TorchBackend, TorchOps
from .rules import apply_rule

__all__ = ["TorchBackend", "TorchOps", "apply_rule"]
