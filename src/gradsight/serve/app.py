"""The FastAPI application: the HTTP edge (parsing, limits, errors) over :class:`Viewer` and :class:`RunDir`."""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from ..errors import InputError
from ._http import (
    FORM_FIELDS,
    BodyLimit,
    ExplainRequest,
    b64decode,
    call,
    check_part_type,
    install_error_handlers,
    multipart_schema,
)
from ._images import IMAGE_SUFFIXES, Limits, NotFound, PayloadTooLarge, decode_image, list_images, png_bytes, safe_path
from ._run import RunDir
from ._run_routes import add_run_routes
from ._viewer import Viewer

__all__ = ["ExplainRequest", "create_app"]

STATIC = Path(__file__).parent / "static"
DEMO_IMAGES = 10


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
    app.add_middleware(BodyLimit, limit=limits.max_bytes * 4 // 3 + 64 * 1024)

    install_error_handlers(app)

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
            check_part_type(part)
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
            "multipart/form-data": {"schema": multipart_schema()},
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
                check_part_type(part)
                data, name = await part.read(), part.filename or name
            try:
                req = ExplainRequest.model_validate(fields)
            except ValueError as exc:
                raise InputError(f"bad form fields: {exc}") from None
        else:
            try:
                body = await request.json()
            except PayloadTooLarge:  # from the body limit, while the body streamed in
                raise
            except ValueError:
                raise InputError("send a JSON body (or multipart/form-data) with 'image' or 'image_ref'.") from None
            try:
                req = ExplainRequest.model_validate(body)
            except ValueError as exc:
                raise InputError(" ".join(str(exc).split())) from None
            if req.image is not None:
                data = b64decode(req.image, limits)
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

    add_run_routes(app, run_dir, resolve)
    return app

