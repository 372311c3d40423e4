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
from .sanity import MEASURES, SanityResult, randomization_check, sanity_figure, similarity
from .report import METRICS, RANDOM, Comparison, bootstrap_ci, compare
from .road import RoadResult, impute, road
from .pointing import PointingResult, boxes_to_masks, energy_pointing_game, pointing_game

__all__ = [
    "compare",
    "Comparison",
    "METRICS",
    "RANDOM",
    "bootstrap_ci",
    "CurveResult",
    "deletion",
    "insertion",
    "PointingResult",
    "pointing_game",
    "energy_pointing_game",
    "boxes_to_masks",
    "RoadResult",
    "road",
    "impute",
    "SanityResult",
    "MEASURES",
    "randomization_check",
    "similarity",
    "sanity_figure",
    "pixel_ranks",
    "random_maps",
    "rise_blur",
]
