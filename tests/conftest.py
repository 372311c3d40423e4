"""Test modules that import a framework at module level are left out when it is missing.

The suite runs with only PyTorch, only Keras/TensorFlow, or both installed
(tests/test_one_framework.py proves it). Most framework tests skip themselves with
``pytest.importorskip``; the modules below import torch at the top (their helpers are
torch nets), so they are not collected without it.
"""

from __future__ import annotations

import importlib.util


def _available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


TORCH_MODULES = [
    "test_captum_integrated_gradients.py",
    "test_cli.py",
    "test_inspect.py",
    "test_methods_cam_family.py",
    "test_model_inputs.py",
    "test_serve_api.py",
    "test_softmax_models.py",
    "test_targets_detector.py",
    "test_targets_torch.py",
    "test_torch_captum.py",
    "test_torch_errors.py",
    "test_torch_methods.py",
    "test_torch_rules.py",
    "test_torch_state.py",
]

collect_ignore = [] if _available("torch") else list(TORCH_MODULES)
