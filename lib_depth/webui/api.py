"""The extension's HTTP routes: a FastAPI router, its handlers, and mounting it on the WebUI's app.

Authentication mirrors the WebUI's own /sdapi/v1 routes (modules/api/api.py, v1.10.1): with
--api-auth "user:pass[,user2:pass2]" every route depends on HTTP Basic credentials compared in
constant time, 401 otherwise. Client errors are 422 with a message naming the field; anything
else is logged on the server and answered with a generic 500, never a trace or a server path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from secrets import compare_digest
from typing import Any, Callable

from fastapi import APIRouter, Body, Depends, HTTPException
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from ..fields import ARG_NAMES
from ..geometry import RESIZE_MODES, generation_size
from ..settings import DepthSettings
from .args import refuse_server_folders
from .payload import PayloadError, decode_image, encode_png

log = logging.getLogger("sd-webui-depth2img")

PREFIX = "/depth2img/v1"


ESTIMATE_FIELDS = ("image", "settings", "width", "height", "resize_mode")


@dataclass
class EstimateRequest:
    image: Any  # PIL image
    settings: DepthSettings
    width: int
    height: int
    resize_mode: int


def parse_estimate_request(payload: dict[str, Any], **limits: int) -> EstimateRequest:
    """Validate the estimate route's body; PayloadError names the field."""
    unknown = sorted(set(payload) - set(ESTIMATE_FIELDS))
    if unknown:
        raise PayloadError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(ESTIMATE_FIELDS)}")
    settings_values = payload.get("settings") or {}
    if not isinstance(settings_values, dict):
        raise PayloadError("settings: expected an object")
    refuse_server_folders(settings_values, "settings: ", even_empty=True)
    try:
        settings = DepthSettings.from_dict(settings_values)
    except ValueError as error:
        raise PayloadError(f"settings: {error}") from None
    image = decode_image(payload.get("image"), "image", **limits)
    values = {
        "width": payload.get("width", image.width),
        "height": payload.get("height", image.height),
        "resize_mode": payload.get("resize_mode", 0),
    }
    for field, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise PayloadError(f"{field}: expected an integer, got {value!r}")
    if values["resize_mode"] not in RESIZE_MODES:
        raise PayloadError("resize_mode: expected 0 (just resize), 1 (crop and resize), 2 (resize and fill) or 3")
    try:
        width, height = generation_size(values["width"], values["height"])
    except ValueError as error:
        raise PayloadError(str(error)) from None
    return EstimateRequest(image, settings, width, height, values["resize_mode"])


def parse_api_auth(text: str | None) -> dict[str, str]:
    """`--api-auth` text -> {user: password}, split exactly as the WebUI splits it."""
    credentials = {}
    for entry in (text or "").split(","):
        if entry:
            user, _, password = entry.partition(":")
            credentials[user] = password
    return credentials


def basic_auth(credentials: dict[str, str]) -> Callable[..., bool]:
    def check(given: HTTPBasicCredentials = Depends(HTTPBasic())) -> bool:  # noqa: B008 (FastAPI idiom)
        expected = credentials.get(given.username)
        if expected is not None and compare_digest(given.password, expected):
            return True
        raise HTTPException(
            status_code=401, detail="Incorrect username or password", headers={"WWW-Authenticate": "Basic"}
        )

    return check


def build_router(
    *,
    estimate: Callable[[dict[str, Any]], dict[str, Any]],
    status: Callable[[], dict[str, Any]],
    api_auth: str | None = None,
    download: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    download_progress: Callable[[], dict[str, Any]] | None = None,
) -> APIRouter:
    """Routes: POST {PREFIX}/estimate, GET {PREFIX}/status and, given their handlers, POST and GET
    {PREFIX}/download, all behind the WebUI's API auth."""
    credentials = parse_api_auth(api_auth)
    dependencies = [Depends(basic_auth(credentials))] if credentials else []
    router = APIRouter(prefix=PREFIX, dependencies=dependencies, tags=["depth2img"])

    @router.post("/estimate")
    def estimate_route(payload: Any = Body(...)) -> dict[str, Any]:  # noqa: B008 (FastAPI idiom)
        if not isinstance(payload, dict):
            raise HTTPException(status_code=422, detail="body: expected a JSON object")
        return _answer(estimate, payload)

    @router.get("/status")
    def status_route() -> dict[str, Any]:
        return _answer(lambda _: status(), None)

    if download is not None:

        @router.post("/download")
        def download_route(payload: Any = Body(...)) -> dict[str, Any]:  # noqa: B008 (FastAPI idiom)
            if not isinstance(payload, dict):
                raise HTTPException(status_code=422, detail='body: expected a JSON object such as {"name": "..."}')
            return _answer(download, payload)

    if download_progress is not None:

        @router.get("/download")
        def download_progress_route() -> dict[str, Any]:
            return _answer(lambda _: download_progress(), None)

    return router


def _answer(function: Callable[[Any], dict[str, Any]], payload: Any) -> dict[str, Any]:
    try:
        return function(payload)
    except HTTPException:
        raise
    except (PayloadError, ValueError) as error:
        raise HTTPException(status_code=422, detail=str(error)) from None
    except Exception:
        log.exception("depth2img: request failed")
        raise HTTPException(status_code=500, detail="depth2img: internal error; see the server log") from None


def estimate(payload: dict[str, Any]) -> dict[str, Any]:
    """POST /estimate: the depth a generation of that size would use, as 16-bit and preview PNGs."""
    from modules import shared
    from modules.call_queue import queue_lock

    from ..io.depthmap import conditioning_to_png16, conditioning_to_previews
    from ..run import DepthRun
    from .depth_model import is_depth_model, make_estimator
    from .options import image_limits
    from .preview import request_conditioning

    request = parse_estimate_request(payload, **image_limits())
    settings = request.settings
    sd_model = shared.sd_model
    if not is_depth_model(sd_model):
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
    """GET /status: the loaded model, the cache, the doctor's rows, the script's argument names."""
    from modules import shared

    from .depth_model import CACHE, installed_estimators, is_depth_model
    from .status import installed_rows

    sd_model = shared.sd_model
    return {
        "depth_model_loaded": is_depth_model(sd_model),
        "checkpoint": getattr(getattr(sd_model, "sd_checkpoint_info", None), "name", None),
        "cache": CACHE.stats().__dict__,
        "checkpoints": [row.to_dict() for row in installed_rows()],
        "estimators": installed_estimators(),
        "args": list(ARG_NAMES),
    }


def on_app_started(demo: Any, app: Any) -> None:
    """Mount the routes like the WebUI's own API: only with --api (or --nowebui), behind --api-auth."""
    from modules import shared

    from . import download_table

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
        )
    )
