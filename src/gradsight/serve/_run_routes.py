"""The run browser's routes: ``/api/run/...`` over a :class:`RunDir`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi.responses import FileResponse, Response

from ..errors import InputError
from ._http import call
from ._images import NotFound, png_bytes
from ._run import SORT_KEYS, RunDir

__all__ = ["add_run_routes"]


def add_run_routes(app: FastAPI, run_dir: RunDir | None, resolve: Callable[[str], tuple[np.ndarray, str]]) -> None:
    """Add the ``/api/run`` endpoints; without a run each answers 404 saying so."""

    def need_run() -> RunDir:
        if run_dir is None:
            raise NotFound("the server was started without --run DIR; there is no run to browse.")
        return run_dir

    @app.get("/api/run", summary="The --run folder: metadata, counts, methods, classes")
    def run_summary() -> dict[str, Any]:
        return need_run().summary()

    @app.get("/api/run/images", summary="The run's images, filtered and sorted")
    def run_images(
        cls: int | None = None, label: int | None = None, predicted: int | None = None,
        correct: bool | None = None, min_conf: float | None = None, max_conf: float | None = None,
        sort: str = "image_id", order: str = "asc", offset: int = 0, limit: int = 100,
    ) -> dict[str, Any]:
        return need_run().query(cls=cls, label=label, predicted=predicted, correct=correct, min_conf=min_conf,
                                max_conf=max_conf, sort=sort, order=order, offset=offset, limit=limit)

    run_images.__doc__ = f"sort: one of {', '.join(SORT_KEYS)}; cls matches the true or the predicted class."

    @app.get("/api/run/images/{image_id}", summary="One run image with every method's saved result")
    def run_item(image_id: int) -> dict[str, Any]:
        rd = need_run()
        return rd.public(rd.item(image_id))

    @app.get("/api/run/images/{image_id}/source.png", summary="The run image itself",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def run_source(image_id: int) -> Response:
        pixels, _ = await call(resolve, f"run/{image_id}")
        return Response(await call(png_bytes, pixels), media_type="image/png")

    @app.get("/api/run/images/{image_id}/{method}.png", summary="A saved heat map, over the image when it is found",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def run_heatmap(image_id: int, method: str, cmap: str = "jet", alpha: float = 0.5,
                          overlay: bool = True) -> Response:
        rd = need_run()

        def draw() -> bytes:
            from .. import render

            if not 0.0 <= alpha <= 1.0:
                raise InputError(f"alpha must be in [0, 1]; got {alpha}.")
            heat = rd.heatmap(image_id, method)
            source = rd.source_image(image_id) if overlay else None
            if source is None:
                return png_bytes(render.colorize(heat, cmap))
            return png_bytes(render.overlay(source, heat, cmap=cmap, alpha=alpha))

        return Response(await call(draw), media_type="image/png")

    @app.get("/api/run/embedding", summary="The run's 2-D embedding (embedding.parquet) with each image's classes")
    def run_embedding() -> dict[str, Any]:
        return {"points": need_run().embedding()}

    @app.get("/api/run/files/{path:path}", summary="A file inside the run folder (png/..., summary.md, class_means.png)")
    def run_file(path: str) -> FileResponse:
        return FileResponse(need_run().file(path))
