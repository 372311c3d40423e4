"""The explanation methods, each written once against the backend protocol."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UnknownMethodError, UnknownOptionError, close_matches
from ._common import MethodResult
from .attention_rollout import attention_rollout
from .deconvnet import deconvnet
from .eigencam import eigencam
from .gradcam import gradcam
from .gradcam_plus_plus import gradcam_plus_plus
from .guided_backprop import guided_backprop
from .guided_gradcam import guided_gradcam
from .hirescam import hirescam
from .input_x_gradient import input_x_gradient
from .integrated_gradients import integrated_gradients
from .layercam import layercam
from .saliency import saliency
from .scorecam import scorecam
from .smoothgrad import smoothgrad
from .xgradcam import xgradcam

__all__ = ["METHODS", "GROUPS", "TRANSFORMER_METHODS", "MethodSpec", "MethodResult", "get_method", "method_names"]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    fn: Callable[..., MethodResult]
    reference: str

    @property
    def options(self) -> dict[str, Any]:
        """Keyword options and their defaults (a copy: the caller may change it)."""
        return dict(_options(self.fn))

    @property
    def uses_layer(self) -> bool:
        return "layer" in _options(self.fn)

    def check_options(self, options: dict[str, Any]) -> None:
        valid = _options(self.fn)
        for key in options:
            if key not in valid:
                raise UnknownOptionError(
                    f"method {self.name!r} takes no option {key!r}; its options are "
                    f"{', '.join(sorted(valid))}." + close_matches(key, valid)
                )


@functools.cache
def _options(fn: Callable[..., MethodResult]) -> dict[str, Any]:
    """A method function's keyword options and defaults: read from its signature once (every call
    checks its options against them)."""
    return {p.name: p.default for p in list(inspect.signature(fn).parameters.values())[4:]}


METHODS: dict[str, MethodSpec] = {
    s.name: s
    for s in (
        MethodSpec("saliency", saliency, "Simonyan et al. 2014, arXiv:1312.6034"),
        MethodSpec("smoothgrad", smoothgrad, "Smilkov et al. 2017, arXiv:1706.03825"),
        MethodSpec("deconvnet", deconvnet, "Zeiler & Fergus 2014, arXiv:1311.2901"),
        MethodSpec("guided_backprop", guided_backprop, "Springenberg et al. 2015, arXiv:1412.6806"),
        MethodSpec("gradcam", gradcam, "Selvaraju et al. 2017, arXiv:1610.02391"),
        MethodSpec("guided_gradcam", guided_gradcam, "Selvaraju et al. 2017, arXiv:1610.02391"),
        MethodSpec("gradcam_plus_plus", gradcam_plus_plus, "Chattopadhay et al. 2018, arXiv:1710.11063"),
        MethodSpec("xgradcam", xgradcam, "Fu et al. 2020, arXiv:2008.02312"),
        MethodSpec("layercam", layercam, "Jiang et al. 2021, IEEE TIP 30:5875"),
        MethodSpec("hirescam", hirescam, "Draelos & Carin 2020, arXiv:2011.08891"),
        MethodSpec("eigencam", eigencam, "Muhammad & Yeasin 2020, arXiv:2008.00299"),
        MethodSpec("scorecam", scorecam, "Wang et al. 2020, arXiv:1910.01279"),
        MethodSpec("integrated_gradients", integrated_gradients, "Sundararajan et al. 2017, arXiv:1703.01365"),
        MethodSpec("input_x_gradient", input_x_gradient, "Shrikumar et al. 2016, arXiv:1605.01713"),
    )
}

GROUPS: dict[str, tuple[str, ...]] = {
    "all": ("saliency", "smoothgrad", "deconvnet", "guided_backprop", "gradcam", "guided_gradcam"),
    "cams": ("gradcam", "gradcam_plus_plus", "xgradcam", "layercam", "hirescam", "eigencam", "scorecam"),
    "gradients": ("saliency", "smoothgrad", "input_x_gradient", "integrated_gradients", "deconvnet", "guided_backprop"),
    "every": tuple(METHODS),
}
"""Names ``--method`` (and :func:`method_names`) accepts for several methods: ``all`` is the seed six."""


def method_names(spec: str) -> list[str]:
    """Method names from a comma-separated list of names and groups (``all``, ``cams``, ``gradients``, ``every``).

    Duplicates are dropped, order kept; an unknown name raises :class:`UnknownMethodError`.
    """
    names: list[str] = []
    for part in (p.strip() for p in str(spec).split(",")):
        if not part:
            continue
        for name in GROUPS[part] if part in GROUPS else (get_method(part).name,):
            if name not in names:
                names.append(name)
    if not names:
        raise UnknownMethodError(f"no method named in {spec!r}; use a name, a comma-separated list, or a group "
                                 f"({', '.join(GROUPS)}).")
    return names


# Methods for models with attention only: kept out of METHODS, which "all" (CLI, viewer) runs on any model.
TRANSFORMER_METHODS: dict[str, MethodSpec] = {
    "attention_rollout": MethodSpec("attention_rollout", attention_rollout, "Abnar & Zuidema 2020, arXiv:2005.00928"),
}


def get_method(name: str) -> MethodSpec:
    """The :class:`MethodSpec` called ``name``; lists the valid names otherwise."""
    known = {**METHODS, **TRANSFORMER_METHODS}
    if isinstance(name, str) and name.replace("-", "_") in known:
        return known[name.replace("-", "_")]
    raise UnknownMethodError(
        f"unknown method {name!r}; use one of {', '.join(known)}." + close_matches(str(name), known)
    )
