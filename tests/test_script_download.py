"""The depth model download in the WebUI, at the script tier: scripts/depth2img.py against the WebUI
and gradio fakes (tests/webui_fakes.py), downloading from a real HTTP server on 127.0.0.1
(tests/fileserver.py) through a test table (DEPTH2IMG_TEST_DOWNLOAD_TABLE + HF_ENDPOINT)."""

from __future__ import annotations

import hashlib
import json
import time
import types
from pathlib import Path

import pytest
import torch
import webui_fakes
from checkpoints import state_dict, write_safetensors
from fileserver import Fault, FileServer

from lib_depth.models import download_jobs as jobs
from lib_depth.webui import download_offer as offers
from lib_depth.webui import download_table as glue

ROOT = Path(__file__).resolve().parents[1]
REPO_PATH = "/org/copy/resolve/main/tiny-depth.safetensors"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No proxy, no token, no ambient test table; the engine's job registry empty for each test."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    offline = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", *offline, glue.TEST_TABLE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(jobs, "_JOBS", {})
    monkeypatch.setattr(glue, "_refreshed", {})
    monkeypatch.setattr(glue, "_watched", set())


@pytest.fixture
def server():
    running = FileServer()
    yield running
    running.close()


@pytest.fixture
def depth_file(tmp_path) -> tuple[bytes, str]:
    """A depth checkpoint of 3 MB: the downloader reads 1 MiB at a time, so a cancel lands mid-file."""
    tensors = {**state_dict("depth"), "model.diffusion_model.middle_block.0.weight": torch.randn(768 * 1024)}
    path = write_safetensors(tmp_path / "source.safetensors", tensors)
    data = path.read_bytes()
    path.unlink()
    return data, hashlib.sha256(data).hexdigest()


@pytest.fixture
def test_table(tmp_path, monkeypatch, server, depth_file) -> Path:
    """A two-entry table whose fp16 file the loopback server serves."""
    data, sha256 = depth_file
    rows = [
        {
            "name": "tiny-depth-fp16",
            "variant": "fp16",
            "filename": "tiny-depth.safetensors",
            "size": len(data),
            "sha256": sha256,
            "mirrors": [{"name": "copy", "repo": "org/copy", "path": "tiny-depth.safetensors"}],
        },
        {
            "name": "tiny-depth-fp32",
            "variant": "fp32",
            "filename": "tiny-depth-fp32.safetensors",
            "size": 1234,
            "sha256": "0" * 64,
            "mirrors": [{"name": "copy", "repo": "org/copy", "path": "tiny-depth-fp32.safetensors"}],
        },
    ]
    path = tmp_path / "table.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    monkeypatch.setenv(glue.TEST_TABLE_ENV, str(path))
    monkeypatch.setenv("HF_ENDPOINT", server.origin)
    return path


@pytest.fixture
def models(tmp_path) -> Path:
    folder = tmp_path / "models" / "Stable-diffusion"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def load_script(monkeypatch):
    loaded = []

    def load(**kwargs):
        fakes = webui_fakes.install(monkeypatch, **kwargs)
        fakes.opts.live_preview_refresh_period = 20  # ms: the WebUI's progress period
        loaded.append(fakes)
        return webui_fakes.import_script(), fakes

    yield load
    for fakes in loaded:
        webui_fakes.unload(fakes)


class Offer:
    """The offer's components in one tab's accordion, and its listeners called as gradio calls them."""

    def __init__(self, module, fakes, tab: str = "img2img") -> None:
        script = module.Depth2ImgScript()
        script.ui(tab == "img2img")
        created = webui_fakes.Component.created
        self.status = next(c for c in created if "depth2img-status" in (c.kwargs.get("elem_classes") or []))
        self.column = next(c for c in webui_fakes.Context.opened if c.elem_id == f"depth2img_{tab}_download")
        by_id = {c.elem_id: c for c in created if c.elem_id}
        self.variant = by_id[f"depth2img_{tab}_download_variant"]
        self.button = by_id[f"depth2img_{tab}_download_button"]
        self.cancel_button = by_id[f"depth2img_{tab}_download_cancel"]
        self.progress = by_id[f"depth2img_{tab}_download_progress"]

    def outputs(self, listener: dict) -> None:
        assert listener["outputs"] == [self.column, self.button, self.cancel_button, self.progress]
        assert listener["inputs"] == [self.variant] and listener["show_progress"] is False

    def status_changed(self, variant: str = "fp16") -> list[tuple]:
        listener = self.status.listeners["change"][0]
        self.outputs(listener)
        return list(listener["fn"](variant))

    def click(self, variant: str = "fp16"):
        listener = self.button.listeners["click"][0]
        self.outputs(listener)
        return listener["fn"](variant)  # a generator: gradio streams its views

    def cancel(self, variant: str = "fp16") -> tuple:
        listener = self.cancel_button.listeners["click"][0]
        self.outputs(listener)
        return listener["fn"](variant)


def shown(view: tuple) -> bool:
    return view[0]["visible"]


def test_production_offer_defaults_to_fp16_and_shows_only_without_a_depth_checkpoint(load_script, models):
    module, fakes = load_script(models_path=str(models.parent))
    offer = Offer(module, fakes)
    assert offer.column.kwargs["visible"] is False  # nothing is looked at before the accordion opens
    assert offer.variant.kwargs["choices"] == ["fp16", "fp32", "ckpt"] and offer.variant.value == "fp16"
    assert offer.button.value == "Download the depth model (2.85 GB)"
    (view,) = offer.status_changed()
    assert shown(view) and view[1]["value"] == "Download the depth model (2.85 GB)" and view[1]["interactive"]
    assert view[2]["visible"] is False  # no cancel without a download
    assert "data-depth2img-status='idle'" in view[3] and "Into models/Stable-diffusion, from huggingface.co" in view[3]
    assert "CreativeML Open RAIL++-M" in view[3]
    fp32 = offer.variant.listeners["change"][0]["fn"]("fp32")
    assert fp32[1]["value"] == "Download the depth model (5.71 GB)"

    write_safetensors(models / "mine.safetensors", state_dict("sd2"))  # not a depth model
    fakes.modules["modules.sd_models"].list_models()
    assert shown(offer.status_changed()[0])
    write_safetensors(models / "512-depth-ema.safetensors", state_dict("depth"))
    fakes.modules["modules.sd_models"].list_models()
    assert not shown(offer.status_changed()[0])


def test_offer_is_hidden_while_a_depth_model_is_loaded(load_script, models):
    loaded = types.new_class("LatentDepth2ImageDiffusion")()
    loaded.depth_model = object()
    module, fakes = load_script(models_path=str(models.parent), sd_model=loaded)
    assert not shown(Offer(module, fakes, "txt2img").status_changed()[0])


def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_download_progress_cancel_resume_and_refresh(load_script, models, server, test_table, depth_file):
    data, sha256 = depth_file
    server.add(REPO_PATH, data, Fault(slow=0.02, chunk=65536))  # the second request is served at full speed
    module, fakes = load_script(models_path=str(models.parent))
    sd_models = fakes.modules["modules.sd_models"]
    offer = Offer(module, fakes)
    assert offer.variant.kwargs["choices"] == ["fp16", "fp32"]
    (idle,) = offer.status_changed()
    assert shown(idle) and idle[1]["value"] == f"Download the depth model ({len(data) / 1e6:.2f} MB)"

    follow = offer.click()
    first = next(follow)
    assert first[1] == {"__type__": "update", "value": "Downloading…", "interactive": False, "visible": True}
    assert first[2]["visible"] is True  # Cancel
    views = [next(follow) for _ in range(3)]
    assert "class='progressDiv'" in views[-1][3] and "data-depth2img-status='running'" in views[-1][3]
    assert fakes.modules["modules.call_queue"].queue_lock.acquire(blocking=False)  # generation is not blocked
    fakes.modules["modules.call_queue"].queue_lock.release()
    wait_until(lambda: jobs.current_job("tiny-depth-fp16").snapshot()["bytes"] >= 1 << 20)
    cancelled = offer.cancel()
    assert "data-depth2img-status='cancelled'" in cancelled[3] and cancelled[2]["visible"] is False
    rest = list(follow)  # the follower ends with the job
    assert "data-depth2img-refresh='0'" in rest[-1][3]
    kept = (models / "tiny-depth.safetensors.part").stat().st_size
    assert 1 << 20 <= kept < len(data) and sd_models.listed == 0

    (again,) = offer.status_changed()  # the accordion opened later: the .part is offered for resuming
    assert again[1]["value"].startswith("Resume the download (") and f"{kept / 1e6:.2f} MB" in again[1]["value"]
    done = list(offer.click())[-1]
    assert server.requests(REPO_PATH)[-1].headers["range"] == f"bytes={kept}-"
    assert (models / "tiny-depth.safetensors").read_bytes() == data
    assert not (models / "tiny-depth.safetensors.part").exists()
    assert "data-depth2img-status='done'" in done[3] and "data-depth2img-refresh='0'" not in done[3]
    assert "is installed and verified" in done[3] and f"[{sha256[:10]}]" in done[3]
    assert sd_models.listed >= 1 and str(models / "tiny-depth.safetensors") in [
        info.filename for info in sd_models.checkpoints_list.values()
    ]
    after_click = offer.button.listeners["click"][0]
    then = [d for d in offer.button.listeners["then"] if d.get("_js")]
    assert after_click and "refresh_sd_model_checkpoint" in then[0]["_js"] and then[0]["fn"] is None
    assert "depth2img_img2img_refresh" in then[0]["_js"]  # our status line, which then hides the offer
    jobs.current_job("tiny-depth-fp16").wait(5)
    glue._refreshed.clear()  # the done job is forgotten as after a restart
    jobs._JOBS.clear()
    assert not shown(offer.status_changed()[0])  # a depth checkpoint is listed now


def test_status_change_follows_a_download_started_elsewhere(load_script, models, server, test_table, depth_file):
    data, _ = depth_file
    server.add(REPO_PATH, data, Fault(slow=0.01, chunk=65536))
    module, fakes = load_script(models_path=str(models.parent))
    offer = Offer(module, fakes, "txt2img")
    job = glue.start(glue.entry_named("tiny-depth-fp16", glue.table()))
    views = offer.status_changed()  # follows until the job ends
    assert len(views) >= 2 and all(shown(view) for view in views)
    assert "data-depth2img-status='done'" in views[-1][3] and not job.running
    assert fakes.modules["modules.sd_models"].listed >= 1


@pytest.fixture
def http(load_script, models):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    module, fakes = load_script(models_path=str(models.parent), api_auth="user:secret")
    app = FastAPI()
    fakes.callbacks.registered["app_started"][0](None, app)
    return TestClient(app, raise_server_exceptions=False), fakes


AUTH = ("user", "secret")


def test_routes_are_behind_auth_and_only_with_api(load_script, http, models):
    client, _ = http
    assert client.get("/depth2img/v1/download").status_code == 401
    assert client.post("/depth2img/v1/download", json={"name": "512-depth-ema-fp16"}).status_code == 401
    body = client.get("/depth2img/v1/download", auth=AUTH).json()
    assert [f["name"] for f in body["files"]] == ["512-depth-ema-fp16", "512-depth-ema-fp32", "512-depth-ema-ckpt"]
    assert body["default"] == "512-depth-ema-fp16" and body["files"][0]["size"] == 2_853_737_366
    assert body["files"][0]["installed"] is False and body["files"][0]["job"] is None

    from fastapi import FastAPI

    _, fakes = load_script(models_path=str(models.parent), api=False)
    app = FastAPI()
    fakes.callbacks.registered["app_started"][0](None, app)
    assert not [r for r in app.routes if "depth2img" in getattr(r, "path", "")]


@pytest.mark.parametrize(
    "body,message",
    [
        ({"name": "https://evil.example/x.safetensors"}, "name: 'https://evil.example/x.safetensors' looks like a URL"),
        ({"name": "../../etc/passwd"}, "name: '../../etc/passwd' looks like a URL or a path"),
        ({"name": "C:\\models\\x.ckpt"}, "looks like a URL or a path"),
        ({"name": "512-depth-ema-fp16.safetensors"}, "name: unknown file '512-depth-ema-fp16.safetensors'"),
        ({"name": 7}, "name: expected one of 512-depth-ema-fp16, 512-depth-ema-fp32, 512-depth-ema-ckpt"),
        ({}, "name: expected one of"),
        ({"name": "512-depth-ema-fp16", "url": "http://x"}, "unknown field(s) url; known: name, cancel"),
        ({"name": "512-depth-ema-fp16", "cancel": "yes"}, "cancel: expected true or false"),
        (["512-depth-ema-fp16"], "body: expected a JSON object"),
    ],
)
def test_post_refuses_anything_but_a_table_name(http, body, message):
    client, _ = http
    answer = client.post("/depth2img/v1/download", json=body, auth=AUTH)
    assert answer.status_code == 422 and message in answer.json()["detail"]
    assert jobs.job_snapshots() == []


def test_post_downloads_reports_progress_refreshes_and_refuses_twice(http, models, server, test_table, depth_file):
    data, sha256 = depth_file
    server.add(REPO_PATH, data, Fault(slow=0.01, chunk=65536))
    client, fakes = http
    started = client.post("/depth2img/v1/download", json={"name": "tiny-depth-fp16"}, auth=AUTH)
    assert started.status_code == 200 and started.json()["status"] in ("running", "checking")
    assert started.json()["total"] == len(data)
    seen = []
    while True:
        files = client.get("/depth2img/v1/download", auth=AUTH).json()["files"]
        job = files[0]["job"]
        seen.append(job["bytes"])
        if job["status"] not in ("running", "checking"):
            break
        time.sleep(0.02)
    assert job["status"] == "done" and job["fraction"] == 1.0 and job["bytes"] == len(data)
    assert len(set(seen)) >= 2  # progress moved between polls
    wait_until(
        lambda: client.get("/depth2img/v1/download", auth=AUTH).json()["files"][0]["job"]["checkpoints_refreshed"]
    )
    sd_models = fakes.modules["modules.sd_models"]
    assert sd_models.listed == 1
    assert [info.filename for info in sd_models.checkpoints_list.values()] == [str(models / "tiny-depth.safetensors")]
    assert hashlib.sha256((models / "tiny-depth.safetensors").read_bytes()).hexdigest() == sha256
    again = client.post("/depth2img/v1/download", json={"name": "tiny-depth-fp16"}, auth=AUTH)
    assert again.status_code == 409 and "tiny-depth.safetensors is already installed" in again.json()["detail"]
    assert str(models) not in again.text


def test_post_cancel_keeps_the_part_for_the_next_start(http, models, server, test_table, depth_file):
    data, _ = depth_file
    server.add(REPO_PATH, data, Fault(slow=0.02, chunk=65536))
    client, _ = http
    assert (
        client.post("/depth2img/v1/download", json={"name": "tiny-depth-fp16", "cancel": True}, auth=AUTH).json()[
            "status"
        ]
        == "idle"
    )
    client.post("/depth2img/v1/download", json={"name": "tiny-depth-fp16"}, auth=AUTH)
    wait_until(lambda: (models / "tiny-depth.safetensors.part").exists())
    wait_until(lambda: (models / "tiny-depth.safetensors.part").stat().st_size >= 1 << 20)
    answer = client.post("/depth2img/v1/download", json={"name": "tiny-depth-fp16", "cancel": True}, auth=AUTH)
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    part = client.get("/depth2img/v1/download", auth=AUTH).json()["files"][0]["partial"]
    assert part == (models / "tiny-depth.safetensors.part").stat().st_size and 0 < part < len(data)
    resumed = client.post("/depth2img/v1/download", json={"name": "tiny-depth-fp16"}, auth=AUTH)
    assert resumed.status_code == 200
    assert jobs.current_job("tiny-depth-fp16").wait(20)
    assert server.requests(REPO_PATH)[-1].headers["range"] == f"bytes={part}-"
    assert (models / "tiny-depth.safetensors").read_bytes() == data


def test_a_test_table_needs_a_loopback_endpoint(load_script, http, models, test_table, monkeypatch):
    client, _ = http
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example")
    with pytest.raises(glue.TableError, match="HF_ENDPOINT .* is not a loopback address"):
        glue.table()
    answer = client.get("/depth2img/v1/download", auth=AUTH)
    assert answer.status_code == 503 and "see the server log" in answer.json()["detail"]
    module, fakes = load_script(models_path=str(models.parent))
    (view,) = Offer(module, fakes).status_changed()
    assert shown(view) and view[1]["visible"] is False and "is not a loopback address" in view[3]


@pytest.mark.parametrize(
    "rows,message",
    [
        ("not json", "not JSON"),
        ([], "expected a non-empty JSON list"),
        ([{"name": "a"}], "entry 0: filename: expected a non-empty string"),
        (
            [{"name": "a", "variant": "v", "filename": "../x.safetensors", "size": 1, "sha256": "0" * 64}],
            "entry 0: filename: expected a plain .safetensors or .ckpt file name",
        ),
        (
            [{"name": "a", "variant": "v", "filename": "x.safetensors", "size": 0, "sha256": "0" * 64}],
            "entry 0: size: expected a positive integer",
        ),
        (
            [{"name": "a", "variant": "v", "filename": "x.safetensors", "size": 1, "sha256": "xyz", "mirrors": []}],
            "entry 0: sha256: expected 64 hex digits",
        ),
        (
            [{"name": "a", "variant": "v", "filename": "x.safetensors", "size": 1, "sha256": "0" * 64, "mirrors": []}],
            "entry 0: mirrors: expected a non-empty list",
        ),
    ],
)
def test_a_malformed_test_table_is_named_with_its_field(tmp_path, monkeypatch, rows, message):
    path = tmp_path / "table.json"
    path.write_text(rows if isinstance(rows, str) else json.dumps(rows), encoding="utf-8")
    monkeypatch.setenv(glue.TEST_TABLE_ENV, str(path))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(glue.TableError) as caught:
        glue.table()
    assert str(caught.value).startswith(f"{glue.TEST_TABLE_ENV}={path}") and message in str(caught.value)


def test_progress_text_follows_the_webui_progress_bar():
    assert [offers.format_eta(s) for s in (5, 61, 3725)] == ["5s", "01:01", "01:02:05"]
    bar = offers.progress_bar(0.42, "Downloading x 42% ETA: 01:01")
    assert "class='progressDiv'" in bar and "class='progress' style='width:42.0%;'" in bar
    assert "background:transparent" in offers.progress_bar(None, "Checking")


class LoadingShared(types.ModuleType):
    """modules.shared whose sd_model loads a checkpoint when read (shared_items.Shared.sd_model ->
    model_data.get_sd_model() while none is loaded): the offer must never read it."""

    @property
    def sd_model(self):
        raise AssertionError("reading shared.sd_model would load a checkpoint")


def test_the_offer_never_starts_loading_a_checkpoint(load_script, models):
    module, fakes = load_script(models_path=str(models.parent))
    offer = Offer(module, fakes)
    fakes.shared.__dict__.pop("sd_model")
    fakes.shared.__class__ = LoadingShared
    assert fakes.modules["modules.sd_models"].model_data.sd_model is None
    (view,) = offer.status_changed()
    assert shown(view)
    assert offer.variant.kwargs["info"] == (
        "fp16: 2.85 GB fp16 safetensors; fp32: 5.71 GB fp32 safetensors; ckpt: 5.71 GB original ckpt; "
        "fp16 gives the same results in the WebUI at half the size"
    )


def test_a_chosen_estimator_without_weights_is_offered_with_its_licence_then_downloaded(
    load_script, models, server, monkeypatch
):
    """Picking depth-anything-v2-small with no weights shows file, size and licence and a button;
    only the button downloads (into models/depth2img, verified), after which it is installed."""
    from lib_depth.models import model_files

    data = b"weights" * 4096
    entry = model_files.ModelFile(
        name="depth-anything-v2-small",
        model="depth-anything-v2-small",
        variant="weights",
        filename="depth_anything_v2_vits.pth",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        kind="estimator",
        description="test weights",
        licence="Apache-2.0",
        mirrors=(model_files.Mirror("hub", "org/dav2", "depth_anything_v2_vits.pth"),),
    )
    monkeypatch.setattr(model_files, "estimator_file", lambda name: entry)
    monkeypatch.setattr(offers, "estimator_file", lambda name: entry)
    monkeypatch.setenv("HF_ENDPOINT", server.origin)
    server.add("/org/dav2/resolve/main/depth_anything_v2_vits.pth", data)
    module, fakes = load_script(models_path=models.parent)
    module.Depth2ImgScript().ui(True)
    by_id = {c.elem_id: c for c in webui_fakes.Component.created if c.elem_id}
    estimator = by_id["depth2img_img2img_estimator"]
    view = estimator.listeners["change"][0]["fn"]
    hidden, _, _ = view("dpt-hybrid")
    assert hidden["visible"] is False
    offer, button, text = view("depth-anything-v2-small")
    assert offer["visible"] is True and button["value"] == f"Download depth_anything_v2_vits.pth ({entry.size_text()})"
    assert text.count("Licence: Apache-2.0") == 1 and not (models.parent / "depth2img").exists()  # nothing yet
    click = by_id["depth2img_img2img_estimator_download_button"].listeners["click"][0]["fn"]
    views = list(click("depth-anything-v2-small"))
    assert (models.parent / "depth2img" / "depth_anything_v2_vits.pth").read_bytes() == data
    final_offer, final_button, final_text = views[-1]
    assert final_button["visible"] is False and "depth2img-ok" in final_text
