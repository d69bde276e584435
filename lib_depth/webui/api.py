"""The extension's HTTP routes: a FastAPI router, its handlers, and mounting it on the WebUI's app.

Authentication mirrors the WebUI's own /sdapi/v1 routes (modules/api/api.py, v1.10.1: with
--api-auth "user:pass[,user2:pass2]" a route depends on HTTP Basic credentials compared in constant
time). Unlike those routes, ours take the raw request: FastAPI reads and parses a declared body
before any dependency runs, so a route with a pydantic body would parse (and, on FastAPI 0.94,
echo) a stranger's body before saying 401. Here the credentials are checked first, with one
constant 401 for every failure, and only then is the body read, at most a bounded number of bytes,
and parsed. Client errors are 422 with a message naming the field, quoting at most a short prefix of
a value, naming files relative to the WebUI's folders; anything else is logged on the server and
answered with a generic 500, never a trace or a server path.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from secrets import compare_digest
from typing import Any, Callable

from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from ..fields import ARG_NAMES
from ..geometry import RESIZE_MODES, generation_size
from ..settings import DepthSettings
from ..validation import MAX_LATENT_SIDE, MIN_IMAGE_SIDE, quote, quote_names
from .args import refuse_batch_tab_fields
from .payload import DEFAULT_MAX_BASE64_CHARS, PayloadError, check_requested_size, decode_image, encode_png

log = logging.getLogger("sd-webui-depth2img")

PREFIX = "/depth2img/v1"
UNAUTHORIZED = "Incorrect username or password"  # the WebUI's words; one 401 for every failure
MAX_SIDE = MAX_LATENT_SIDE * 8  # pixels a side; the pixel limit bounds the area far below this
BODY_SLACK = 64 * 2**10  # bytes of an estimate body besides its base64 image
DOWNLOAD_BODY_LIMIT = 16 * 2**10  # {"name": ..., "cancel": ...}
ESTIMATE_FIELDS = ("image", "settings", "width", "height", "resize_mode")
ESTIMATE_LIMIT_HINT = "the Depth2img 'Largest API upload' setting sets it, plus 64 KiB for the fields besides the image"


@dataclass
class EstimateRequest:
    image: Any  # PIL image
    settings: DepthSettings
    width: int
    height: int
    resize_mode: int


def parse_estimate_request(payload: dict[str, Any], **limits: int) -> EstimateRequest:
    """Validate the estimate route's body; PayloadError names the field. The size asked for is
    checked against the pixel limit before the image is decoded."""
    unknown = sorted(map(str, set(payload) - set(ESTIMATE_FIELDS)))
    if unknown:
        raise PayloadError(f"unknown field(s) {quote_names(unknown)}; known: {', '.join(ESTIMATE_FIELDS)}")
    settings_values = payload.get("settings") or {}
    if not isinstance(settings_values, dict):
        raise PayloadError("settings: expected an object")
    refuse_batch_tab_fields(settings_values, "settings: ", even_default=True)
    try:
        settings = DepthSettings.from_dict(settings_values)
    except ValueError as error:
        raise PayloadError(f"settings: {error}") from None
    resize_mode = payload.get("resize_mode", 0)
    if isinstance(resize_mode, bool) or not isinstance(resize_mode, int) or resize_mode not in RESIZE_MODES:
        modes = "0 (just resize), 1 (crop and resize), 2 (resize and fill) or 3"
        raise PayloadError(f"resize_mode: expected {modes}, got {quote(resize_mode)}")
    asked = {side: _side(payload[side], side) for side in ("width", "height") if side in payload}
    max_pixels = limits.get("max_pixels")
    if len(asked) == 2:  # before any work: the image is not even decoded yet
        width, height = _generation_size(asked["width"], asked["height"], max_pixels)
    image = decode_image(payload.get("image"), "image", **limits)
    if not asked:
        _check_image_size(image)
    if len(asked) < 2:
        width, height = _generation_size(asked.get("width", image.width), asked.get("height", image.height), max_pixels)
    return EstimateRequest(image, settings, width, height, resize_mode)


def _side(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(f"{field}: expected an integer, got {quote(value)}")
    if value < MIN_IMAGE_SIDE:
        raise PayloadError(f"{field}: {quote(value)} is too small; at least {MIN_IMAGE_SIDE} pixels")
    if value > MAX_SIDE:
        raise PayloadError(f"{field}: {quote(value)} is over the largest side of {MAX_SIDE:,} pixels")
    return value


def _generation_size(width: int, height: int, max_pixels: int | None) -> tuple[int, int]:
    try:
        width, height = generation_size(width, height)
    except ValueError as error:
        raise PayloadError(str(error)) from None
    check_requested_size(width, height, "width/height", max_pixels)
    return width, height


def _check_image_size(image: Any) -> None:
    """Without width and height the image's own size is the generation's: name the image, not
    fields the client never sent."""
    if image.width < MIN_IMAGE_SIDE or image.height < MIN_IMAGE_SIDE:
        raise PayloadError(
            f"image: {image.width}x{image.height} pixels; each side must be at least {MIN_IMAGE_SIDE} pixels (the "
            "smallest generation): send a larger image, or width and height to estimate at"
        )


# -- authentication and bodies ------------------------------------------------------------------------


def parse_api_auth(text: str | None) -> dict[str, str]:
    """`--api-auth` text -> {user: password}: split at commas and each entry's first colon, as the WebUI
    splits it (the WebUI itself refuses a second colon at start-up)."""
    credentials = {}
    for entry in (text or "").split(","):
        if entry:
            user, _, password = entry.partition(":")
            credentials[user] = password
    return credentials


def authorized(header: str | None, credentials: dict[str, str]) -> bool:
    """HTTP Basic as FastAPI's HTTPBasic reads it (scheme, base64 of ASCII `user:password`), checked
    as the WebUI's Api.auth checks it (a known user, the password compared in constant time)."""
    scheme, _, param = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, separator, password = base64.b64decode(param).decode("ascii").partition(":")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        return False
    expected = credentials.get(user)
    return bool(separator) and expected is not None and compare_digest(password.encode(), expected.encode())


def basic_auth(credentials: dict[str, str]) -> Callable[..., Any]:
    async def check(request: Request) -> None:  # reads the headers only: the body stays unread
        if not authorized(request.headers.get("authorization"), credentials):
            raise HTTPException(status_code=401, detail=UNAUTHORIZED, headers={"WWW-Authenticate": "Basic"})

    return check


async def read_json_object(request: Request, limit: int, *, example: str, hint: str = "") -> dict[str, Any]:
    """The request's JSON object, reading at most `limit` bytes: 413 past it (from Content-Length
    before reading, else while reading), 422 for anything but a JSON object; nothing of the body is
    repeated."""
    hint = f" ({hint})" if hint else ""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(
            status_code=413, detail=f"body: {int(declared):,} bytes is over this route's limit of {limit:,} bytes{hint}"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(status_code=413, detail=f"body: over this route's limit of {limit:,} bytes{hint}")
    payload = await run_in_threadpool(_parse_json, bytes(body))
    if not isinstance(payload, dict):
        raise HTTPException(status_code=422, detail=f"body: expected a JSON object such as {example}")
    return payload


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except json.JSONDecodeError as error:
        problem = f"{error.msg}: line {error.lineno} column {error.colno}"
    except UnicodeDecodeError:
        problem = "not UTF-8 text"
    except RecursionError:
        problem = "nested too deeply"
    except ValueError:  # Python's limit on the digits of an integer
        problem = "a number too long to read"
    raise HTTPException(status_code=422, detail=f"body: not valid JSON ({problem})")


# -- the router ---------------------------------------------------------------------------------------


def build_router(
    *,
    estimate: Callable[[dict[str, Any]], dict[str, Any]],
    status: Callable[[], dict[str, Any]],
    api_auth: str | None = None,
    download: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    download_progress: Callable[[], dict[str, Any]] | None = None,
    estimate_body_limit: Callable[[], int] = lambda: DEFAULT_MAX_BASE64_CHARS + BODY_SLACK,
    redact: Callable[[Any], Any] = lambda answer: answer,
) -> APIRouter:
    """Routes: POST {PREFIX}/estimate, GET {PREFIX}/status and, given their handlers, POST and GET
    {PREFIX}/download, all behind the WebUI's API auth. `redact` turns server paths in answers and
    error messages into what a client may see."""
    credentials = parse_api_auth(api_auth)
    dependencies = [Depends(basic_auth(credentials))] if credentials else []
    router = APIRouter(prefix=PREFIX, dependencies=dependencies, tags=["depth2img"])

    @router.post("/estimate")
    async def estimate_route(request: Request) -> dict[str, Any]:
        example = '{"image": "<base64>", "settings": {...}}'
        payload = await read_json_object(request, estimate_body_limit(), example=example, hint=ESTIMATE_LIMIT_HINT)
        return await run_in_threadpool(_answer, estimate, payload, redact, False)

    @router.get("/status")
    def status_route() -> dict[str, Any]:
        return _answer(lambda _: status(), None, redact)

    if download is not None:

        @router.post("/download")
        async def download_route(request: Request) -> dict[str, Any]:
            payload = await read_json_object(request, DOWNLOAD_BODY_LIMIT, example='{"name": "..."}')
            return await run_in_threadpool(_answer, download, payload, redact)

    if download_progress is not None:

        @router.get("/download")
        def download_progress_route() -> dict[str, Any]:
            return _answer(lambda _: download_progress(), None, redact)

    return router


def _answer(
    function: Callable[[Any], dict[str, Any]], payload: Any, redact: Callable[[Any], Any], answer_paths: bool = True
) -> dict[str, Any]:
    """`function`'s answer (its strings redacted unless `answer_paths` is False: the estimate's
    images hold no paths), or its error as an HTTPException a client may see."""
    try:
        answer = function(payload)
    except HTTPException as error:
        error.detail = redact(error.detail)
        raise
    except (PayloadError, ValueError) as error:
        raise HTTPException(status_code=422, detail=redact(str(error))) from None
    except Exception:
        log.exception("depth2img: request failed")
        raise HTTPException(status_code=500, detail="depth2img: internal error; see the server log") from None
    return redact(answer) if answer_paths else answer


def estimate(payload: dict[str, Any]) -> dict[str, Any]:
    """POST /estimate: the depth a generation of that size would use, as 16-bit and preview PNGs."""
    from modules import shared
    from modules.call_queue import queue_lock

    from ..io.depthmap import conditioning_to_png16, conditioning_to_previews
    from ..run import DepthRun
    from .depth_model import estimating_model, make_estimator
    from .options import image_limits
    from .preview import request_conditioning

    request = parse_estimate_request(payload, **image_limits())
    settings = request.settings
    sd_model = estimating_model(shared.sd_model)  # in Forge before its first load: the selected depth file
    if sd_model is None:
        raise PayloadError("the loaded model is not a depth model; load a depth checkpoint first")
    user_image = None if settings.source == "estimate" else request.image
    with queue_lock:  # the depth model is the generation's: one user at a time
        run = DepthRun(settings, make_estimator(sd_model, settings), user_image)
        conditioning, geometry = request_conditioning(
            run,
            width=request.width,
            height=request.height,
            init_image=request.image,
            resize_mode=request.resize_mode,
        )
    return {
        "depth": encode_png(conditioning_to_png16(conditioning, geometry.image_size)[0]),
        "preview": encode_png(conditioning_to_previews(conditioning, geometry.image_size)[0]),
        "width": geometry.width,
        "height": geometry.height,
        "info": settings.to_infotext(),
    }


def status() -> dict[str, Any]:
    """GET /status: the loaded model, the cache, the doctor's rows, the script's argument names and
    the X/Y/Z plot's index of each depth axis per tab (what an API caller passes as the axis type)."""
    from modules import shared

    from .depth_model import CACHE, apply_cache_option, installed_estimators, is_depth_model
    from .status import installed_rows
    from .xyz import axis_indices

    apply_cache_option()  # the cache as the settings say, also before the first estimate
    sd_model = shared.sd_model
    return {
        "depth_model_loaded": is_depth_model(sd_model),
        "checkpoint": getattr(getattr(sd_model, "sd_checkpoint_info", None), "name", None),
        "cache": CACHE.stats().__dict__,
        "checkpoints": [row.to_dict() for row in installed_rows()],
        "estimators": installed_estimators(),
        "args": list(ARG_NAMES),
        "xyz_axes": axis_indices(),
    }


def on_app_started(demo: Any, app: Any) -> None:
    """Mount the routes like the WebUI's own API: only with --api (or --nowebui), behind --api-auth."""
    from modules import shared

    from . import download_table
    from .redact import scrub_answer

    cmd_opts = shared.cmd_opts
    if not (getattr(cmd_opts, "api", False) or getattr(cmd_opts, "nowebui", False)):
        return
    app.include_router(
        build_router(
            estimate=estimate,
            status=status,
            api_auth=cmd_opts.api_auth,
            download=download_table.post_route,
            download_progress=download_table.get_route,
            estimate_body_limit=estimate_body_limit,
            redact=scrub_answer,
        )
    )


def estimate_body_limit() -> int:
    """The estimate route's body limit: the upload limit (Settings -> Depth2img) and room for the rest."""
    from .options import image_limits

    return image_limits().get("max_base64_chars", DEFAULT_MAX_BASE64_CHARS) + BODY_SLACK
