"""The extension's routes in-process: auth exactly like the WebUI's API, 422 naming fields, no leaks.

The app is a plain FastAPI app with our router mounted as scripts/depth2img.py mounts it; the
auth dependency is configured from the same --api-auth text the WebUI reads (modules/api/api.py).
"""

from __future__ import annotations

import base64

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from lib_depth.webui.api import PREFIX, build_router, parse_api_auth, parse_estimate_request
from lib_depth.webui.payload import PayloadError, encode_png

IMAGE = encode_png(Image.new("RGB", (96, 80), (200, 100, 50)))


class Backend:
    def __init__(self) -> None:
        self.calls = 0

    def estimate(self, payload):
        self.calls += 1
        request = parse_estimate_request(payload)
        return {"width": request.width, "height": request.height, "info": request.settings.to_infotext()}

    def status(self):
        self.calls += 1
        return {"depth_model_loaded": True}


def client(api_auth=None):
    backend = Backend()
    app = FastAPI()
    app.include_router(build_router(estimate=backend.estimate, status=backend.status, api_auth=api_auth))
    return TestClient(app, raise_server_exceptions=False), backend


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_open_without_api_auth():
    http, backend = client()
    assert http.get(f"{PREFIX}/status").json() == {"depth_model_loaded": True}
    answer = http.post(f"{PREFIX}/estimate", json={"image": IMAGE, "settings": {"gamma": 2}})
    assert answer.status_code == 200 and answer.json()["width"] == 96 and "gamma=2" in answer.json()["info"]


@pytest.mark.parametrize("headers", [{}, basic("user", "wrong"), basic("nobody", "pass"), basic("user", "")])
@pytest.mark.parametrize("method,path", [("get", "/status"), ("post", "/estimate")])
def test_auth_rejects_missing_or_wrong_credentials_before_any_work(headers, method, path):
    http, backend = client("user:pass,other:secret")
    answer = getattr(http, method)(
        PREFIX + path, headers=headers, **({"json": {"image": IMAGE}} if method == "post" else {})
    )
    assert answer.status_code == 401
    assert backend.calls == 0


def test_auth_accepts_each_configured_user():
    http, backend = client("user:pass,other:secret")
    assert http.get(f"{PREFIX}/status", headers=basic("user", "pass")).status_code == 200
    assert http.get(f"{PREFIX}/status", headers=basic("other", "secret")).status_code == 200
    assert backend.calls == 2


def test_api_auth_text_is_split_like_the_webui():
    assert parse_api_auth("a:b,c:d:e") == {"a": "b", "c": "d:e"}
    assert parse_api_auth(None) == {} and parse_api_auth("") == {}


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"image": "/etc/passwd"}, "image: expected base64"),
        ({"image": "../../models/Stable-diffusion/x.png"}, "image: expected base64"),
        ({"image": IMAGE[: len(IMAGE) // 2]}, "image:"),
        ({"image": IMAGE, "settings": {"gamma": "steep"}}, "settings: gamma"),
        ({"image": IMAGE, "settings": {"invert": "yes"}}, "settings: invert"),
        ({"image": IMAGE, "settings": {"near": None}}, "settings: near"),
        ({"image": IMAGE, "settings": {"source": 3}}, "settings: source"),
        ({"image": IMAGE, "settings": {"masked_area": []}}, "settings: masked_area"),
        ({"image": IMAGE, "settings": {"blur": [1]}}, "settings: blur"),
        ({"image": IMAGE, "settings": {"far": True}}, "settings: far"),
        ({"image": IMAGE, "settings": {"save_depth": "true"}}, "settings: save_depth"),
        ({"image": IMAGE, "settings": {"enabled": 1}}, "settings: enabled"),
        ({"image": IMAGE, "settings": "gamma=2"}, "settings: expected an object"),
        ({"image": IMAGE, "width": "wide"}, "width: expected an integer"),
        ({"image": IMAGE, "height": 1.5}, "height: expected an integer"),
        ({"image": IMAGE, "resize_mode": 7}, "resize_mode"),
        ({"image": IMAGE, "width": 32}, "too small"),
        ({"image": IMAGE, "extra": 1}, "unknown field"),
        ({"image": IMAGE, "settings": {"depth_folder": "/etc"}}, "depth_folder: only the WebUI's Batch tab"),
        ({"image": IMAGE, "settings": {"estimator": "zoedepth"}}, "estimator: expected one of dpt-hybrid"),
        ({"image": IMAGE, "settings": {"resolution": 600}}, "depth resolution 600 is not available for dpt-hybrid"),
        ({"image": 5}, "image: expected base64 image data, got int"),
    ],
)
def test_bad_input_is_422_naming_the_field(payload, field):
    http, _ = client()
    answer = http.post(f"{PREFIX}/estimate", json=payload)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["detail"]


def test_non_object_body():
    http, _ = client()
    answer = http.post(f"{PREFIX}/estimate", json=["image"])
    assert answer.status_code == 422 and "expected a JSON object" in answer.json()["detail"]


def test_huge_base64_string_is_refused_without_decoding():
    http, _ = client()
    answer = http.post(f"{PREFIX}/estimate", json={"image": "A" * (100 * 2**20)})  # over the body limit
    assert answer.status_code == 413 and "over this route's limit of 67,174,400" in answer.json()["detail"]
    with pytest.raises(PayloadError, match="image: 2,000 characters of base64 is over the limit of 1,000"):
        parse_estimate_request({"image": "A" * 2000}, max_base64_chars=1000)


def test_internal_errors_do_not_leak(caplog):
    def broken(payload):
        raise RuntimeError("/secret/server/path/model.ckpt exploded")

    app = FastAPI()
    app.include_router(build_router(estimate=broken, status=lambda: {}))
    answer = TestClient(app, raise_server_exceptions=False).post(f"{PREFIX}/estimate", json={"image": IMAGE})
    assert answer.status_code == 500
    assert "secret" not in answer.text and "Traceback" not in answer.text
    assert "/secret/server/path/model.ckpt exploded" in caplog.text  # logged on the server


def test_parse_estimate_request_defaults():
    request = parse_estimate_request({"image": encode_png(Image.new("RGB", (100, 70)))})
    assert (request.width, request.height, request.resize_mode) == (96, 64, 0)
    with pytest.raises(PayloadError):
        parse_estimate_request({})
