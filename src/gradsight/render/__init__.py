"""Pictures from attribution maps: scaling, resizing, colour, overlays and grids.

Pure numpy + Pillow; matplotlib is imported only when a colormap is needed.
Shapes follow the batch-first convention: maps are (N, H, W) (or one (H, W)),
RGB images are uint8 (N, H, W, 3). Inputs that are not images get their own pictures:
:func:`feature_bars` (tables), :func:`signal_plot` (1-D signals), :func:`volume_strip`
(volumes and video).
"""

from __future__ import annotations

from ..maps import normalize, normalize_signed, reduce_channels, resize
from ._color import colorize, colorize_signed, displayable, to_rgb_uint8
from ._compose import grid, overlay, save_png
from ._labels import caption, colorbar, labelled, with_colorbar
from ._plots import feature_bars, signal_plot, volume_strip

__all__ = [
    "normalize",
    "normalize_signed",
    "resize",
    "reduce_channels",
    "colorize",
    "colorize_signed",
    "to_rgb_uint8",
    "displayable",
    "overlay",
    "grid",
    "save_png",
    "caption",
    "colorbar",
    "labelled",
    "with_colorbar",
    "feature_bars",
    "signal_plot",
    "volume_strip",
]
