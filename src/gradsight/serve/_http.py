"""The HTTP edge of the viewer: the request model, errors as JSON, the body limit, base64 and multipart helpers."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import GradsightError, InputError
from ._images import Limits, NotFound, PayloadTooLarge

__all__ = [
    "FORM_FIELDS",
    "BodyLimit",
    "ExplainRequest",
    "ServerFailure",
    "b64decode",
    "call",
    "check_part_type",
    "error",
    "install_error_handlers",
    "multipart_schema",
]

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


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, from Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_large(self.limit)(scope, receive, send)
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


def too_large(limit: int) -> JSONResponse:
    return error(413, PayloadTooLarge(
        f"the request body is over {limit / 2**20:.1f} MB; images may be at most the server's --max-upload-mb."
    ))


def error(status: int, exc: BaseException, kind: str | None = None) -> JSONResponse:
    message = " ".join(str(exc).split()) or type(exc).__name__
    return JSONResponse({"error": {"type": kind or type(exc).__name__, "message": message, "status": status}},
                        status_code=status)


def status(exc: GradsightError) -> int:
    if isinstance(exc, PayloadTooLarge):
        return 413
    if isinstance(exc, NotFound):
        return 404
    return 400


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as ``{"error": {"type", "message", "status"}}``: 4xx for bad input, 500 for the model."""

    @app.exception_handler(GradsightError)
    async def _gradsight_error(request: Request, exc: GradsightError) -> JSONResponse:
        return error(status(exc), exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return error(422, InputError("; ".join(parts)), "InputError")

    @app.exception_handler(ServerFailure)
    async def _server_failure(request: Request, exc: ServerFailure) -> JSONResponse:
        return error(500, exc, "ModelFailure")


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run library work in the thread pool; an unexpected exception becomes a 500 with its cause."""
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except GradsightError:
        raise
    except Exception as exc:
        raise ServerFailure(f"{type(exc).__name__}: {exc}") from exc


def check_part_type(part: Any) -> None:
    """Refuse a multipart file part that declares a non-image type (the bytes are checked later too)."""
    ctype = (getattr(part, "content_type", None) or "").split(";")[0].strip().lower()
    if ctype and not (ctype.startswith("image/") or ctype == "application/octet-stream"):
        raise InputError(f"only image files are accepted; the upload says it is {ctype!r}.")


def b64decode(text: str, limits: Limits) -> bytes:
    """The bytes of a base64 image (a ``data:image/...;base64,`` URL too), sized up before decoding."""
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


def multipart_schema() -> dict[str, Any]:
    """OpenAPI schema of the multipart form of ``POST /api/explain``."""
    props: dict[str, Any] = {"image": {"type": "string", "format": "binary"}}
    for key in FORM_FIELDS:
        props[key] = {"type": "string"}
    props["options"]["description"] = "a JSON object"
    return {"type": "object", "properties": props}
