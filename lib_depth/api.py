"""The extension's HTTP routes, as a FastAPI router that the WebUI glue mounts.

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

from .payload import PayloadError, decode_image
from .settings import DepthSettings

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
    if values["resize_mode"] not in (0, 1, 2, 3):
        raise PayloadError("resize_mode: expected 0 (just resize), 1 (crop and resize), 2 (resize and fill) or 3")
    width, height = values["width"] - values["width"] % 8, values["height"] - values["height"] % 8
    if width < 64 or height < 64:
        raise PayloadError(f"width/height: {values['width']}x{values['height']} is too small; at least 64x64")
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
) -> APIRouter:
    """Routes: POST {PREFIX}/estimate and GET {PREFIX}/status, behind the WebUI's API auth."""
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
