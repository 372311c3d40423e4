"""Deprecated: moved to :mod:`gradsight.cli.explain_boxes` and the bundled-model registry
(:mod:`gradsight.demo.registry`). This module goes away in the next release."""

from __future__ import annotations

import warnings
from typing import Any

from .cli.explain_boxes import BOX_COLOURS as BOX_COLOURS
from .cli.explain_boxes import draw_box
from .cli.explain_boxes import explain_boxes as explain_detector
from .demo.registry import load_bundled

__all__ = ["explain_detector", "load_demo_detector", "draw_box"]

warnings.warn(
    "gradsight.detection_cli moved: gradsight.cli.explain_boxes (explain_boxes, draw_box) and "
    "gradsight.demo.registry.load_bundled('demo-detector', framework); the old module goes away in the next release.",
    DeprecationWarning,
    stacklevel=2,
)


def load_demo_detector(framework: str = "torch") -> tuple[Any, Any]:
    """The bundled detector and its ModelInfo: ``load_bundled("demo-detector", framework)``."""
    return load_bundled("demo-detector", framework)
