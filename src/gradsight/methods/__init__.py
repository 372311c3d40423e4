"""The explanation methods, each written once against the backend protocol."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UnknownMethodError, UnknownOptionError, close_matches
from ._common import MethodResult
from .attention_rollout import attention_rollout
from .deconvnet import deconvnet
from .gradcam import gradcam
from .guided_backprop import guided_backprop
from .guided_gradcam import guided_gradcam
from .saliency import saliency
from .smoothgrad import smoothgrad

__all__ = ["METHODS", "TRANSFORMER_METHODS", "MethodSpec", "MethodResult", "get_method"]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    fn: Callable[..., MethodResult]
    reference: str

    @property
    def options(self) -> dict[str, Any]:
        """Keyword options and their defaults."""
        params = list(inspect.signature(self.fn).parameters.values())[4:]
        return {p.name: p.default for p in params}

    @property
    def uses_layer(self) -> bool:
        return "layer" in self.options

    def check_options(self, options: dict[str, Any]) -> None:
        valid = self.options
        for key in options:
            if key not in valid:
                raise UnknownOptionError(
                    f"method {self.name!r} takes no option {key!r}; its options are "
                    f"{', '.join(sorted(valid))}." + close_matches(key, valid)
                )


METHODS: dict[str, MethodSpec] = {
    s.name: s
    for s in (
        MethodSpec("saliency", saliency, "Simonyan et al. 2014, arXiv:1312.6034"),
        MethodSpec("smoothgrad", smoothgrad, "Smilkov et al. 2017, arXiv:1706.03825"),
        MethodSpec("deconvnet", deconvnet, "Zeiler & Fergus 2014, arXiv:1311.2901"),
        MethodSpec("guided_backprop", guided_backprop, "Springenberg et al. 2015, arXiv:1412.6806"),
        MethodSpec("gradcam", gradcam, "Selvaraju et al. 2017, arXiv:1610.02391"),
        MethodSpec("guided_gradcam", guided_gradcam, "Selvaraju et al. 2017, arXiv:1610.02391"),
    )
}


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
