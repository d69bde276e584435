"""The HTTP surface's promises, kept under hostile requests: the real routes, mounted by the real
app_started callback on an app built as the WebUI's API builds it (tests/webui_fakes.py webui_app,
after modules/api/api.py v1.10.1), served by uvicorn on 127.0.0.1, asked over sockets.

- 401 before the body is read: no parse, no echo, one size for every failure;
- bodies bounded (413) whether valid or malformed, declared or chunked;
- no server path in any answer (files named models/...), nor in script-argument errors;
- a size a client asks for obeys the pixel limit, before any work;
- a client's value is quoted at most 80 characters, with its length;
- HF_HUB_OFFLINE stops every download at once, without a connection;
- the Batch tab's missing_map is refused over the API; a too small image is named; a cancel at 0
  bytes says nothing is kept; a new cache size applies when set.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import uvicorn
import webui_fakes
from checkpoints import state_dict, write_safetensors
from conftest import CountingModule
from fileserver import Fault, FileServer
from PIL import Image
from scenes import make_scene

from lib_depth.models import download_jobs
from lib_depth.webui import download_table
from lib_depth.webui.payload import encode_png

ROOT = Path(__file__).resolve().parents[1]
AUTH = "user:pass"
IMAGE = encode_png(make_scene(128, 96))
SMALL = 400  # bytes: any refusal, whatever was sent


class LatentDepth2ImageDiffusion(torch.nn.Module):  # what the glue reads of the WebUI's depth model
    def __init__(self, depth_model: torch.nn.Module) -> None:
        super().__init__()
        self.depth_model = depth_model
        self.sd_checkpoint_info = None
        self.dtype = torch.float32


class LoopbackServer:
    """The app under uvicorn (the server the WebUI runs on) in a thread, on a free 127.0.0.1 port."""

    def __init__(self, app) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


@dataclass
class Answer:
    status: int
    body: bytes

    @property
    def detail(self) -> str:
        return json.loads(self.body)["detail"]


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def request(
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    auth: str | None = AUTH,
    headers: dict[str, str] | None = None,
    send: int | None = None,
    chunked: bool = False,
) -> Answer:
    """One request over a plain socket. `send`: how many body bytes to send before reading the
    answer (the rest is never sent); `chunked`: Transfer-Encoding chunked, no Content-Length."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    if body or method == "POST":
        lines.append("Content-Type: application/json")
        lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
    if auth is not None:
        lines.append(f"Authorization: {basic(auth)}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    payload = (
        body
        if not chunked
        else b"".join(
            f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            for piece in (body[i : i + 65536] for i in range(0, len(body), 65536))
        )
        + b"0\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # answered and closed: read it
            connection.sendall(payload if send is None else payload[:send])
        received = b""
        while True:
            try:
                data = connection.recv(1 << 16)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
            if send is not None and _complete(received):
                break
    head, _, rest = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        rest = _unchunk(rest)
    return Answer(status, rest)


def _complete(received: bytes) -> bool:
    head, separator, rest = received.partition(b"\r\n\r\n")
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return bool(separator) and len(rest) >= int(line.split(b":")[1])
    return False


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size, _, data = data.partition(b"\r\n")
        length = int(size, 16)
        if not length:
            break
        out, data = out + data[:length], data[length + 2 :]
    return out


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(download_table.TEST_TABLE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(download_jobs, "_JOBS", {})


@dataclass
class Served:
    port: int
    fakes: webui_fakes.WebUI
    depth: CountingModule
    webui: Path  # the WebUI's folder: no answer names anything under it
    app: object

    def post(self, path: str, body: object = None, **options) -> Answer:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return request(self.port, "POST", path, raw, **options)

    def get(self, path: str, **options) -> Answer:
        return request(self.port, "GET", path, **options)

    def no_paths(self, answer: Answer) -> Answer:
        text = answer.body.decode("utf-8", "replace")
        assert str(self.webui) not in text and str(self.webui.resolve()) not in text, text[:500]
        assert str(ROOT) not in text, text[:500]
        return answer


@pytest.fixture
def served(monkeypatch, tmp_path, dpt_head):
    webui = tmp_path / "webui"
    (webui / "models" / "Stable-diffusion").mkdir(parents=True)
    checkpoint = write_safetensors(webui / "models" / "Stable-diffusion" / "512-depth-ema.safetensors", state_dict())
    depth = CountingModule(dpt_head)
    fakes = webui_fakes.install(
        monkeypatch,
        sd_model=LatentDepth2ImageDiffusion(depth),
        checkpoints={"d": types.SimpleNamespace(filename=str(checkpoint))},
        models_path=webui / "models",
        api_auth=AUTH,
    )
    webui_fakes.import_script()
    for register in fakes.callbacks.registered["ui_settings"]:
        register()
    app = webui_fakes.webui_app(AUTH)
    fakes.callbacks.registered["app_started"][0](None, app)
    server = LoopbackServer(app)
    yield Served(server.port, fakes, depth, webui, app)
    server.close()
    webui_fakes.unload(fakes)


# -- 401 before the body ---------------------------------------------------------------------------------

MALFORMED = b'{"image": "' + b"A" * 400_000  # 400 kB, never closed


@pytest.mark.parametrize("path", ["/depth2img/v1/estimate", "/depth2img/v1/download"])
def test_without_credentials_the_body_is_never_read(served, path):
    """The 401 arrives while 399 kB of the body are still unsent: nothing was read, parsed or echoed."""
    answer = request(served.port, "POST", path, MALFORMED, auth=None, send=1000)
    assert answer.status == 401 and len(answer.body) < SMALL and b"AAAA" not in answer.body


def test_one_small_401_for_every_failure_whatever_the_body(served):
    valid = json.dumps({"image": IMAGE + "A" * 5_000_000}).encode()  # 5 MB, well formed
    answers = [
        served.post("/depth2img/v1/estimate", MALFORMED, auth=None),
        served.post("/depth2img/v1/estimate", valid, auth=None),
        served.post("/depth2img/v1/estimate", valid, auth="user:wrong"),
        served.post("/depth2img/v1/estimate", MALFORMED, auth="nobody:pass"),
        served.post("/depth2img/v1/download", {"name": "x"}, headers={"Authorization": "Basic %%%"}, auth=None),
        served.get("/depth2img/v1/status", auth=None),
        served.get("/depth2img/v1/download", auth="user:"),
    ]
    assert {answer.status for answer in answers} == {401}
    assert len({answer.body for answer in answers}) == 1 and len(answers[0].body) < SMALL
    assert served.depth.batch_sizes == []


def test_the_webuis_own_routes_read_the_body_before_the_credentials(served):
    """What docs/security.md states for /sdapi/v1/*, which the extension does not control: the
    WebUI's add_api_route puts the credentials in a dependency, and FastAPI reads and parses a
    declared body before it solves dependencies."""
    import pydantic

    malformed = served.post("/sdapi/v1/png-info", MALFORMED, auth=None)
    assert malformed.status == 422  # a stranger learns the body was parsed, not that credentials are missing
    if pydantic.VERSION.startswith("1."):  # FastAPI 0.94 (the WebUI's pins): the error repeats the whole body
        assert len(malformed.body) > len(MALFORMED)
    valid = served.post("/sdapi/v1/png-info", {"image": "A" * 5_000_000}, auth=None)
    assert valid.status == 401 and served.app.state.png_info_calls == 0


# -- bounded bodies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True])
def test_bodies_are_bounded_valid_or_malformed_declared_or_chunked(served, chunked):
    big_name = json.dumps({"name": "x" * 100_000}).encode()
    for body in (big_name, b"{" + b" " * 100_000):
        answer = served.no_paths(served.post("/depth2img/v1/download", body, chunked=chunked))
        assert answer.status == 413 and len(answer.body) < SMALL and "16,384" in answer.detail
    served.fakes.opts.depth2img_max_upload_mb = 1
    answer = served.post("/depth2img/v1/estimate", {"image": "A" * 2_000_000}, chunked=chunked)
    assert answer.status == 413 and "1,114,112" in answer.detail and "'Largest API upload' setting" in answer.detail
    assert served.depth.batch_sizes == []


def test_malformed_json_with_credentials_is_a_short_422(served):
    for body, problem in [
        (MALFORMED, "body: not valid JSON (Unterminated string"),
        (b"[" * 100_000 + b"]" * 100_000, "body: not valid JSON (nested too deeply)"),
        (b"\xff\xfe\x00garbage", "body: not valid JSON"),
        (b'{"width": 1' + b"0" * 5000 + b"}", "body: not valid JSON (a number too long to read)"),
        (b'["image"]', "body: expected a JSON object"),
    ]:
        answer = served.post("/depth2img/v1/estimate", body)
        assert answer.status == 422 and answer.detail.startswith(problem) and len(answer.body) < SMALL, answer.body


# -- no server paths ------------------------------------------------------------------------------------------


def test_no_answer_names_a_server_path(served):
    missing = served.no_paths(
        served.post("/depth2img/v1/estimate", {"image": IMAGE, "settings": {"estimator": "depth-anything-v2-small"}})
    )
    assert missing.status == 422
    assert (
        "needs its weights: depth_anything_v2_vits.pth" in missing.detail and " in models/depth2img." in missing.detail
    )
    status = served.no_paths(served.get("/depth2img/v1/status"))
    files = [row["file"] for row in json.loads(status.body)["checkpoints"]]
    assert files == ["models/Stable-diffusion/512-depth-ema.safetensors"]
    served.no_paths(served.get("/depth2img/v1/download"))


def test_a_script_argument_error_names_no_server_path(served):
    from lib_depth.webui.generation import process

    image = make_scene(128, 128)
    model = served.fakes.shared.sd_model
    p = webui_fakes.Img2Img(model, [image], is_api=True, init_latent=torch.zeros(1, 4, 16, 16))
    process(p, [{"estimator": "depth-anything-v2-small"}])
    from fastapi import HTTPException

    from lib_depth import image_to_tensor

    with pytest.raises(HTTPException) as refused:
        p.depth2img_image_conditioning(image_to_tensor(image))
    assert refused.value.status_code == 422 and " in models/depth2img." in refused.value.detail
    assert str(served.webui) not in refused.value.detail


def test_the_download_job_names_its_file_relative_to_the_models_folder(served, monkeypatch, tmp_path):
    data = b"not a checkpoint, only bytes" * 100
    import hashlib

    table = [
        {
            "name": "tiny",
            "variant": "fp16",
            "filename": "tiny.safetensors",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "mirrors": [{"name": "copy", "repo": "org/copy", "path": "tiny.safetensors"}],
        }
    ]
    (tmp_path / "table.json").write_text(json.dumps(table), encoding="utf-8")
    files = FileServer()
    try:
        files.add("/org/copy/resolve/main/tiny.safetensors", data)
        monkeypatch.setenv(download_table.TEST_TABLE_ENV, str(tmp_path / "table.json"))
        monkeypatch.setenv("HF_ENDPOINT", files.origin)
        started = served.no_paths(served.post("/depth2img/v1/download", {"name": "tiny"}))
        assert started.status == 200 and json.loads(started.body)["path"] == "models/Stable-diffusion/tiny.safetensors"
        assert download_jobs.current_job("tiny").wait(20)
        listing = served.no_paths(served.get("/depth2img/v1/download"))
        job = json.loads(listing.body)["files"][0]["job"]
        assert job["status"] == "done" and job["path"] == "models/Stable-diffusion/tiny.safetensors"
    finally:
        files.close()


# -- sizes a client asks for --------------------------------------------------------------------------------


def test_the_size_asked_for_obeys_the_pixel_limit_before_any_work(served):
    served.fakes.opts.depth2img_max_megapixels = 4
    not_an_image = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()  # never decoded
    answer = served.post("/depth2img/v1/estimate", {"image": not_an_image, "width": 4096, "height": 4096})
    assert answer.status == 422 and len(answer.body) < 600
    assert answer.detail.startswith(
        "width/height: 4096x4096 (16,777,216 pixels) is over the image size limit of 4,000,000"
    )
    assert "Depth2img maximum megapixels setting" in answer.detail
    alone = served.post("/depth2img/v1/estimate", {"image": IMAGE, "width": 4096})
    assert alone.status == 200  # 4096x96: under the limit
    over = served.post("/depth2img/v1/estimate", {"image": IMAGE, "width": 50_000})
    assert over.status == 422 and "over the image size limit of 4,000,000" in over.detail
    assert served.depth.batch_sizes == [1]  # only the one request within the limit was estimated


@pytest.mark.parametrize(
    "size,shown",
    [((1, 1), "image: 1x1 pixels; each side must be at least 64"), ((20000, 10), "image: 20000x10 pixels")],
)
def test_a_too_small_or_thin_image_is_named_with_the_rule(served, size, shown):
    answer = served.post("/depth2img/v1/estimate", {"image": encode_png(Image.new("RGB", size))})
    assert answer.status == 422 and answer.detail.startswith(shown) and "width/height" not in answer.detail


# -- values quoted short --------------------------------------------------------------------------------------


def test_a_clients_value_comes_back_cut_to_80_characters_with_its_length(served):
    cases = [
        ("/depth2img/v1/download", {"name": "n" * 10_000}, "(10,000 characters)"),
        ("/depth2img/v1/download", {"name": "x", "y" * 10_000: 1}, "(10,000 characters)"),
        ("/depth2img/v1/estimate", {"image": IMAGE, "settings": {"gamma": "9" * 1_000_000}}, "(1,000,000 characters)"),
        ("/depth2img/v1/estimate", {"image": IMAGE, "settings": {"gamma": 10**4000}}, "(4,001 characters)"),
        ("/depth2img/v1/estimate", {"image": IMAGE, "width": "w" * 100_000}, "(100,000 characters)"),
        ("/depth2img/v1/estimate", {"image": IMAGE, "settings": {"normalise": ["x"] * 50_000}}, "(50,000 items)"),
    ]
    for path, body, length in cases:
        answer = served.post(path, body)
        assert answer.status == 422 and length in answer.detail and len(answer.body) < 1200, answer.body[:300]


# -- offline mode -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_offline_mode_stops_every_download_before_a_connection(served, monkeypatch, tmp_path, value):
    files = FileServer()
    try:
        monkeypatch.setenv("HF_ENDPOINT", files.origin)
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
        route = served.no_paths(served.post("/depth2img/v1/download", {"name": "512-depth-ema-fp16"}))
        assert route.status == 409 and f"offline mode is on (HF_HUB_OFFLINE={value})" in route.detail
        assert "by hand from https://huggingface.co/" in route.detail and "into models/Stable-diffusion" in route.detail
        from lib_depth.models.model_files import model_file

        job = download_jobs.start_job(model_file(), tmp_path)  # what the accordion's button starts
        assert job.wait(5) and job.snapshot()["status"] == "failed" and "offline mode" in job.snapshot()["message"]
        cli = subprocess.run(
            [sys.executable, "-m", "lib_depth", "download", "--to", str(tmp_path)],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
            env={**_environment(), "HF_ENDPOINT": files.origin, "HF_HUB_OFFLINE": value},
        )  # fmt: skip
        assert cli.returncode != 0 and f"offline mode is on (HF_HUB_OFFLINE={value})" in cli.stderr + cli.stdout
        assert files.log == []  # nothing connected
    finally:
        files.close()


def _environment() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}


# -- the smaller promises -------------------------------------------------------------------------------------


def test_missing_map_is_a_batch_tab_option_refused_over_the_api(served):
    answer = served.post("/depth2img/v1/estimate", {"image": IMAGE, "settings": {"missing_map": "stop"}})
    assert answer.status == 422 and answer.detail.startswith("settings: missing_map: an option of the WebUI's Batch")
    from lib_depth.fields import ARG_NAMES
    from lib_depth.webui.args import parse_script_args
    from lib_depth.webui.payload import PayloadError

    defaults = [webui_fakes_default(name) for name in ARG_NAMES]  # the UI's defaults fill every slot
    assert parse_script_args(defaults, is_api=True).settings.missing_map == "stop"
    with pytest.raises(PayloadError, match="missing_map: an option of the WebUI's Batch tab"):
        parse_script_args([{"missing_map": "estimate"}], is_api=True)


def webui_fakes_default(name: str):
    from lib_depth.fields import BY_NAME

    return None if name == "image" else BY_NAME[name].default


def test_cancel_before_the_first_byte_says_nothing_is_kept(served, tmp_path, monkeypatch):
    from lib_depth.models.model_files import Mirror, ModelFile

    files = FileServer()
    try:
        files.add("/org/copy/resolve/main/slow.safetensors", b"x" * 1000, Fault(stall_after=0, stall=5))
        monkeypatch.setenv("HF_ENDPOINT", files.origin)
        entry = ModelFile(
            name="slow",
            model="slow",
            variant="fp16",
            filename="slow.safetensors",
            size=1000,
            sha256="0" * 64,
            kind="checkpoint",
            description="",
            licence="",
            mirrors=(Mirror("copy", "org/copy", "slow.safetensors"),),
        )
        job = download_jobs.start_job(entry, tmp_path)
        deadline = time.monotonic() + 10
        while not files.log and time.monotonic() < deadline:
            time.sleep(0.02)
        job.cancel()
        assert job.wait(10)
        state = job.snapshot()
        assert (
            state["status"] == "cancelled" and "nothing is kept" in state["message"] and ".part" not in state["message"]
        )
        assert sorted(p.name for p in tmp_path.iterdir() if "slow" in p.name) == []
    finally:
        files.close()


def test_a_new_cache_size_applies_when_it_is_set(served):
    from lib_depth.webui.depth_model import CACHE

    for n in range(6):
        CACHE.put(("key", n), torch.zeros(1, 1, 4, 4))
    assert served.fakes.opts.set("depth2img_cache_entries", 2)
    assert CACHE.stats().entries == 2  # at once, not at the next estimate
    assert json.loads(served.get("/depth2img/v1/status").body)["cache"]["entries"] == 2
    served.fakes.opts.set("depth2img_cache_entries", 16)
