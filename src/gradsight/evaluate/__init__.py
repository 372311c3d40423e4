"""Which explanation to trust: faithfulness, localisation and sanity checks.

- :func:`deletion`, :func:`insertion` (Petsiuk et al. 2018, RISE): curves and AUCs;
- :func:`road` (Rong et al. 2022): remove and impute, MoRF / LeRF;
- :func:`pointing_game`, :func:`energy_pointing_game` (Zhang et al. 2016) with masks;
- :func:`randomization_check` (Adebayo et al. 2018): model-parameter randomisation.

Everything here calls :func:`gradsight.explain` / :func:`gradsight.predict` and works the
same on PyTorch and Keras models. ``scipy`` is needed (and ``scikit-image`` for the
sanity check's SSIM and HOG): ``pip install gradsight[evaluate]``.
"""

from __future__ import annotations

from ._common import pixel_ranks, random_maps, rise_blur
from .faithfulness import CurveResult, deletion, insertion
from .pointing import (
    PointingResult,
    boxes_to_masks,
    energy_pointing_game,
    pointing_game,
)
from .report import METRICS, RANDOM, Comparison, bootstrap_ci, compare
from .road import RoadResult, impute, road
from .sanity import (
    MEASURES,
    SanityResult,
    randomization_check,
    sanity_figure,
    similarity,
)

__all__ = [
    "MEASURES",
    "METRICS",
    "RANDOM",
    "Comparison",
    "CurveResult",
    "PointingResult",
    "RoadResult",
    "SanityResult",
    "bootstrap_ci",
    "boxes_to_masks",
    "compare",
    "deletion",
    "energy_pointing_game",
    "impute",
    "insertion",
    "pixel_ranks",
    "pointing_game",
    "random_maps",
    "randomization_check",
    "rise_blur",
    "road",
    "sanity_figure",
    "similarity",
]
