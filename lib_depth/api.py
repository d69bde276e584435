"""The extension's HTTP routes, as a FastAPI router that the WebUI glue mounts.

Authentication mirrors the WebUI's own /sdapi/v1 routes (modules/api/api.py, v1.10.1): with
--api-auth "user:pass[,user2:pass2]" every route depends on HTTP Basic credentials compared in
constant time, 401 otherwise. Client errors are 422 with a message naming the field; anything
else is logged on the server and answered with a generic 500, never a trace or a server path.
"""

from __future__ import annotations

import logging
from secrets import compare_digest
from typing import Any, Callable

from fastapi import APIRouter, Body, Depends, HTTPException
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from .payload import PayloadError

log = logging.getLogger("sd-webui-depth2img")

PREFIX = "/depth2img/v1"


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
