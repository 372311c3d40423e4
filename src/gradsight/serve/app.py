"""The FastAPI application: the HTTP edge (parsing, limits, errors) over :class:`Viewer` and :class:`RunDir`."""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import GradsightError, InputError
from ._images import IMAGE_SUFFIXES, Limits, NotFound, PayloadTooLarge, decode_image, list_images, png_bytes, safe_path
from ._run import SORT_KEYS, RunDir
from ._viewer import Viewer

__all__ = ["create_app", "ExplainRequest"]

STATIC = Path(__file__).parent / "static"
DEMO_IMAGES = 10
FORM_FIELDS = ("image_ref", "method", "target", "layer", "options", "cmap", "alpha", "attributions")


class ExplainRequest(BaseModel):
    """The body of ``POST /api/explain`` (JSON; as multipart, the same names are form fields)."""

    image: str | None = Field(None, description="the image file's bytes, base64 (a data: URL is fine)")
    image_ref: str | None = Field(
        None, description="instead of image: 'demo/<i>', 'data/<path>', 'upload/<sha256>' or 'run/<image_id>'"
    )
    method: str = Field("gradcam", description="one of GET /api/model's methods")
    target: int | str | None = Field(None, description="a class index, or null / 'top1' for the top-1 class")
    layer: str | None = Field(None, description="CAM methods: a layer name from GET /api/model, or null / 'auto'")
    options: dict[str, Any] = Field(default_factory=dict, description="the method's options, e.g. {'samples': 16}")
    cmap: str = Field("jet", description="matplotlib colormap of the heat map")
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="weight of the heat map over the image in overlay_png")
    attributions: bool = Field(False, description="also return the raw attribution array")


class ServerFailure(Exception):
    """The model (or drawing) failed on a valid request: HTTP 500 with the cause."""


class _BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, from Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise PayloadTooLarge(f"the request body is over {self.limit / 2**20:.1f} MB.")
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int) -> JSONResponse:
    return _error(413, PayloadTooLarge(
        f"the request body is over {limit / 2**20:.1f} MB; images may be at most the server's --max-upload-mb."
    ))


def _error(status: int, exc: BaseException, kind: str | None = None) -> JSONResponse:
    message = " ".join(str(exc).split()) or type(exc).__name__
    return JSONResponse({"error": {"type": kind or type(exc).__name__, "message": message, "status": status}},
                        status_code=status)


def _status(exc: GradsightError) -> int:
    if isinstance(exc, PayloadTooLarge):
        return 413
    if isinstance(exc, NotFound):
        return 404
    return 400


def create_app(
    viewer: Viewer,
    *,
    data: str | Path | None = None,
    run: str | Path | RunDir | None = None,
    limits: Limits | None = None,
) -> FastAPI:
    """The viewer's web application.

    Parameters
    ----------
    viewer:
        The loaded model (:class:`Viewer`).
    data:
        A folder of images to pick from (served read-only; nothing outside it).
    run:
        The output folder of a data-set run (or a :class:`RunDir` already read).
    limits:
        Upload limits (default 20 MB and 40 megapixels).
    """
    from .. import __version__

    limits = limits or Limits()
    data_root = Path(data).resolve() if data is not None else None
    if data_root is not None and not data_root.is_dir():
        raise InputError(f"--data {data} is not a folder.")
    run_dir = run if isinstance(run, RunDir) or run is None else RunDir(run)
    demo_cache: dict[str, Any] = {}

    app = FastAPI(
        title="gradsight",
        version=__version__,
        description="Explain a CNN's decisions on single images, and browse a data-set run's explanations.",
    )
    # base64 grows by 4/3; multipart and JSON add a little.
    app.add_middleware(_BodyLimit, limit=limits.max_bytes * 4 // 3 + 64 * 1024)

    @app.exception_handler(GradsightError)
    async def _gradsight_error(request: Request, exc: GradsightError) -> JSONResponse:
        return _error(_status(exc), exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return _error(422, InputError("; ".join(parts)), "InputError")

    @app.exception_handler(ServerFailure)
    async def _server_failure(request: Request, exc: ServerFailure) -> JSONResponse:
        return _error(500, exc, "ModelFailure")

    async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run library work in the thread pool; an unexpected exception becomes a 500 with its cause."""
        try:
            return await run_in_threadpool(fn, *args, **kwargs)
        except GradsightError:
            raise
        except Exception as exc:
            raise ServerFailure(f"{type(exc).__name__}: {exc}") from exc

    # ------------------------------------------------------------------ images

    def demo_images() -> Any:
        if "data" not in demo_cache:
            from ..demo.runner import demo_images as make

            demo_cache["data"] = make(DEMO_IMAGES)
        return demo_cache["data"]

    def resolve(ref: str) -> tuple[np.ndarray, str]:
        """An image reference -> (uint8 (H, W, 3), cache key)."""
        kind, _, rest = str(ref).partition("/")
        if kind == "demo":
            try:
                i = int(rest)
            except ValueError:
                raise InputError(f"demo image reference must be 'demo/<index>'; got {ref!r}.") from None
            if not 0 <= i < DEMO_IMAGES:
                raise NotFound(f"there are {DEMO_IMAGES} demo images, demo/0..demo/{DEMO_IMAGES - 1}; got {ref!r}.")
            return demo_images().images[i], f"demo/{i}"
        if kind == "data":
            if data_root is None:
                raise NotFound("the server was started without --data; there are no data images.")
            path = safe_path(data_root, rest, "image")
            if not path.is_file():
                raise NotFound(f"no image {rest!r} in the --data folder.")
            if path.stat().st_size > limits.max_bytes:
                raise PayloadTooLarge(f"{rest} is over the --max-upload-mb limit.")
            return decode_image(path.read_bytes(), limits, rest)
        if kind == "upload":
            pixels = viewer.uploads.get(rest)
            if pixels is None:
                raise NotFound(f"no uploaded image {rest!r} (uploads are kept for a while only); upload it again.")
            return pixels, rest
        if kind == "run":
            if run_dir is None:
                raise NotFound("the server was started without --run.")
            try:
                iid = int(rest)
            except ValueError:
                raise InputError(f"run image reference must be 'run/<image_id>'; got {ref!r}.") from None
            pixels = run_dir.source_image(iid)
            if pixels is None:
                raise NotFound(f"the image of run item {iid} ({run_dir.item(iid)['path']}) cannot be found.")
            return pixels, f"run/{iid}"
        raise InputError(f"unknown image reference {ref!r}; use 'demo/<i>', 'data/<path>', 'upload/<sha256>' or 'run/<id>'.")

    def upload(data: bytes, name: str) -> tuple[np.ndarray, str]:
        pixels, key = decode_image(data, limits, name)
        viewer.uploads.put(key, pixels)
        return pixels, key

    # ------------------------------------------------------------------ pages

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # ------------------------------------------------------------------ model

    @app.get("/api/health", summary="Liveness, and what the server holds")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "model": viewer.info.description,
            "computations": viewer.calls,
            "cached_explanations": len(viewer.explanations),
        }

    @app.get("/api/model", summary="The model: framework, input size, classes, methods, layers, the automatic layer")
    def model() -> dict[str, Any]:
        return {
            **viewer.describe(),
            "limits": {"max_bytes": limits.max_bytes, "max_pixels": limits.max_pixels},
            "sources": {"data": data_root is not None, "run": run_dir is not None, "demo": data_root is None},
        }

    @app.get("/api/images", summary="Images to pick from: the --data folder, else the bundled demo images")
    def images() -> dict[str, Any]:
        if data_root is not None:
            refs = [(f"data/{p}", p) for p in list_images(data_root)]
        else:
            data = demo_images()
            names = viewer.class_names
            refs = [(f"demo/{i}", f"demo {i} ({names[int(lab)] if int(lab) < len(names) else lab})")
                    for i, lab in enumerate(data.labels)]
        return {"images": [{"ref": r, "name": n, "url": f"/api/images/{r}"} for r, n in refs]}

    @app.get("/api/images/{ref:path}", summary="One image by reference, as a file",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def image(ref: str) -> Response:
        kind, _, rest = ref.partition("/")
        if kind == "data" and data_root is not None:
            path = safe_path(data_root, rest, "image")
            if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
                raise NotFound(f"no image {rest!r} in the --data folder.")
            return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        pixels, _ = await call(resolve, ref)
        return Response(await call(png_bytes, pixels), media_type="image/png")

    @app.post("/api/images", summary="Upload an image (multipart 'image' or a raw image body); returns its reference")
    async def add_image(request: Request) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=len(FORM_FIELDS) + 1)
            part = form.get("image")
            if part is None or isinstance(part, str):
                raise InputError("send the image as a multipart file field named 'image'.")
            _check_part_type(part)
            data, name = await part.read(), part.filename or "the upload"
        elif ctype.startswith("image/") or ctype.startswith("application/octet-stream"):
            data, name = await request.body(), "the upload"
        else:
            raise InputError(f"send an image file (multipart field 'image', or an image/* body); got {ctype or 'no'} content type.")
        pixels, key = await call(upload, data, name)
        return {"ref": f"upload/{key}", "width": int(pixels.shape[1]), "height": int(pixels.shape[0])}

    # ------------------------------------------------------------------ explain

    @app.post(
        "/api/explain",
        summary="Explain one image: predictions, the explained class, the heat map and overlay as PNG",
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": ExplainRequest.model_json_schema()},
            "multipart/form-data": {"schema": _multipart_schema()},
        }}},
    )
    async def explain(request: Request) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "")
        data: bytes | None = None
        name = "the image"
        if ctype.startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=len(FORM_FIELDS) + 1)
            fields: dict[str, Any] = {}
            for key in FORM_FIELDS:
                value = form.get(key)
                if isinstance(value, str) and value != "":
                    fields[key] = value
            if "options" in fields:
                try:
                    fields["options"] = json.loads(fields["options"])
                except ValueError:
                    raise InputError("the 'options' form field must be a JSON object, e.g. {\"samples\": 16}.") from None
            part = form.get("image")
            if part is not None and not isinstance(part, str):
                _check_part_type(part)
                data, name = await part.read(), part.filename or name
            try:
                req = ExplainRequest.model_validate(fields)
            except ValueError as exc:
                raise InputError(f"bad form fields: {exc}") from None
        else:
            try:
                body = await request.json()
            except ValueError:
                raise InputError("send a JSON body (or multipart/form-data) with 'image' or 'image_ref'.") from None
            try:
                req = ExplainRequest.model_validate(body)
            except ValueError as exc:
                raise InputError(" ".join(str(exc).split())) from None
            if req.image is not None:
                data = _b64decode(req.image, limits)
        if data is not None:
            pixels, key = await call(upload, data, name)
        elif req.image_ref:
            pixels, key = await call(resolve, req.image_ref)
        else:
            raise InputError("the request has no image: send 'image' (a file, or base64 in JSON) or 'image_ref'.")
        result = await call(
            viewer.explain, pixels, key, method=req.method, target=req.target, layer=req.layer,
            options=req.options, cmap=req.cmap, alpha=req.alpha, attributions=req.attributions,
        )
        result["image"]["ref"] = f"upload/{key}" if data is not None else req.image_ref
        return result

    # ------------------------------------------------------------------ run

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

    return app


def _check_part_type(part: Any) -> None:
    ctype = (getattr(part, "content_type", None) or "").split(";")[0].strip().lower()
    if ctype and not (ctype.startswith("image/") or ctype == "application/octet-stream"):
        raise InputError(f"only image files are accepted; the upload says it is {ctype!r}.")


def _b64decode(text: str, limits: Limits) -> bytes:
    if text.startswith("data:"):
        head, _, text = text.partition(",")
        if ";base64" not in head or not head[5:].startswith(("image/", ";")):
            raise InputError("a data: URL image must be 'data:image/...;base64,...'.")
    if len(text) * 3 // 4 > limits.max_bytes + 3:  # refused before decoding
        raise PayloadTooLarge(
            f"the image is about {len(text) * 3 / 4 / 2**20:.1f} MB; the limit is {limits.max_bytes / 2**20:.1f} MB."
        )
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("'image' must be the image file's bytes in base64.") from None


def _multipart_schema() -> dict[str, Any]:
    props: dict[str, Any] = {"image": {"type": "string", "format": "binary"}}
    for key in FORM_FIELDS:
        props[key] = {"type": "string"}
    props["options"]["description"] = "a JSON object"
    return {"type": "object", "properties": props}
