"""``gradsight serve``: a local web viewer and HTTP API for explanations (needs ``gradsight[serve]``).

>>> from gradsight.models import load_model
>>> from gradsight.serve import Viewer, create_app
>>> model, info = load_model("demo")
>>> app = create_app(Viewer(model, info), data="images/")   # a FastAPI app; run it with uvicorn

The HTTP layer (:mod:`gradsight.serve.app`) only parses requests and maps errors; the work
is done by :class:`Viewer` (one model, its lock and caches) and :class:`RunDir` (a data-set
run's output folder), which call the public api. See docs/serve.md.
"""

from __future__ import annotations

from typing import Any

from ._images import Limits
from ._run import RunDir
from ._viewer import Viewer

__all__ = ["Limits", "RunDir", "Viewer", "create_app"]


def create_app(viewer: Viewer, **kwargs: Any) -> Any:
    """:func:`gradsight.serve.app.create_app`: the FastAPI app (FastAPI is imported only here)."""
    from .app import create_app as make

    return make(viewer, **kwargs)
