"""Against a running WebUI with this extension and a depth checkpoint loaded (opt-in).

    SD_WEBUI_URL=http://127.0.0.1:7861 [SD_WEBUI_AUTH=user:pass] [SD_WEBUI_OUTPUTS=/path/to/webui/outputs] \
        [SD_WEBUI_FORGE=1] python -m pytest tests/test_live_webui.py

Black-box over HTTP only. Skipped unless SD_WEBUI_URL is set. SD_WEBUI_FORGE=1 says the server is
lllyasviel's Forge (2.x), which differs in two ways the tests follow: it loads the checkpoint with
the first generation, not at start-up, and its txt2img hires fix over the API needs
"hr_additional_modules" (modules/processing.py reads it unguarded).
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scenes import make_scene

URL = os.environ.get("SD_WEBUI_URL", "").rstrip("/")
OUTPUTS = os.environ.get("SD_WEBUI_OUTPUTS")  # optional: the server's outputs folder, same machine
FORGE = os.environ.get("SD_WEBUI_FORGE") == "1"
HIRES_FORGE = {"hr_additional_modules": ["Use same choices"]} if FORGE else {}
pytestmark = pytest.mark.skipif(not URL, reason="set SD_WEBUI_URL to run against a live WebUI")
SIZE = 256


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def unb64(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text.split(",", 1)[-1])))


def call(path: str, payload: dict | None = None, auth: str | None = None) -> tuple[int, dict]:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(URL + path, data=data, headers={"Content-Type": "application/json"})
    auth = auth if auth is not None else os.environ.get("SD_WEBUI_AUTH")
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, {"detail": body.decode(errors="replace")}


def generation(kind: str, **fields) -> dict:
    payload = {
        "prompt": "a stone house",
        "steps": 3,
        "width": SIZE,
        "height": SIZE,
        "sampler_name": "Euler",
        "seed": 1234,
        "cfg_scale": 5,
        **fields,
    }
    return payload


def pixels(image_b64: str) -> np.ndarray:
    return np.asarray(unb64(image_b64).convert("RGB"), dtype=np.float64)


@pytest.fixture(scope="module")
def status():
    code, body = call("/depth2img/v1/status")
    assert code == 200, body
    if FORGE and not body["depth_model_loaded"]:  # Forge loads the selected checkpoint on the first generation
        args = {"depth2img": {"args": [{"source": "upload", "image": b64(depth_map())}]}}
        code, warm = call("/sdapi/v1/txt2img", generation("txt2img", steps=1, alwayson_scripts=args))
        assert code == 200, warm
        code, body = call("/depth2img/v1/status")
        assert code == 200, body
    assert body["depth_model_loaded"], "load a depth checkpoint in the WebUI first"
    return body


def test_status_reports_depth_model_and_doctor(status):
    assert status["checkpoint"]
    assert any(row["kind"].startswith("SD 2 depth") and row["ok"] for row in status["checkpoints"])


def saved_depth_maps(since: float) -> list[Path]:
    if not OUTPUTS:
        pytest.skip("set SD_WEBUI_OUTPUTS to the WebUI's outputs folder to check saved depth maps")
    found = [p for p in Path(OUTPUTS).rglob("*-depth.png") if p.stat().st_mtime >= since]
    return sorted(found, key=lambda p: p.name)


def test_img2img_batch_of_distinct_images_gets_per_image_depth(status):
    """A batch [A, B]: the depth maps the generation used (saved beside the outputs) are A's and
    B's own, as the estimate route computes them, not A's twice (the native behaviour)."""
    a, b = make_scene(SIZE, SIZE, 1), make_scene(SIZE, SIZE, 2)
    started = time.time() - 1
    args = {"depth2img": {"args": [{"save_depth": True}]}}
    payload = generation(
        "img2img",
        init_images=[b64(a), b64(b)],
        batch_size=2,
        denoising_strength=1.0,
        alwayson_scripts=args,
        save_images=True,
    )
    code, body = call("/sdapi/v1/img2img", payload)
    assert code == 200, body
    assert "Depth2img: source=estimate" in json.loads(body["info"])["infotexts"][0]
    used = [np.asarray(Image.open(path), dtype=np.int64) for path in saved_depth_maps(started)[-2:]]
    assert len(used) == 2
    for image, saved in zip((a, b), used, strict=True):
        code, estimate = call("/depth2img/v1/estimate", {"image": b64(image)})
        assert code == 200, estimate
        expected = np.asarray(unb64(estimate["depth"]), dtype=np.int64)
        assert np.abs(saved - expected).max() <= 1
    assert np.abs(used[0] - used[1]).mean() > 1000  # two different depth maps


@pytest.mark.parametrize("fill", [0, 1, 2, 3])
@pytest.mark.parametrize("masked_area", ["original", "filled"])
def test_inpaint_every_masked_content_mode(status, fill, masked_area):
    mask = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(mask).rectangle([64, 64, 160, 160], fill=255)
    code, body = call(
        "/sdapi/v1/img2img",
        generation(
            "img2img",
            init_images=[b64(make_scene(SIZE, SIZE, 3))],
            mask=b64(mask),
            inpainting_fill=fill,
            inpaint_full_res=fill % 2 == 0,
            denoising_strength=0.9,
            alwayson_scripts={"depth2img": {"args": [{"masked_area": masked_area}]}},
        ),
    )
    assert code == 200, body
    infotext = json.loads(body["info"])["infotexts"][0]
    assert "Depth2img: source=estimate" in infotext  # the infotext keeps what is not at its default
    assert ("masked area=filled" in infotext) is (masked_area == "filled")


def depth_map() -> Image.Image:
    y, x = np.mgrid[0:300, 0:200]
    return Image.fromarray((np.exp(-((x - 100) ** 2 + (y - 150) ** 2) / 3000.0) * 65535).astype(np.uint16))


def test_txt2img_from_a_depth_map_and_with_hires_fix(status):
    args = {"depth2img": {"args": [{"source": "upload", "image": b64(depth_map())}]}}
    code, body = call("/sdapi/v1/txt2img", generation("txt2img", alwayson_scripts=args))
    assert code == 200, body
    code, hires = call(
        "/sdapi/v1/txt2img",
        generation(
            "txt2img",
            alwayson_scripts=args,
            enable_hr=True,
            hr_scale=1.5,
            hr_upscaler="Latent",
            denoising_strength=0.6,
            hr_second_pass_steps=2,
            **HIRES_FORGE,
        ),
    )
    assert code == 200, hires
    assert unb64(hires["images"][0]).size == (int(SIZE * 1.5), int(SIZE * 1.5))


def test_txt2img_from_a_reference_photo(status):
    args = {"depth2img": {"args": [{"source": "reference", "image": b64(make_scene(SIZE, SIZE, 4))}]}}
    code, body = call("/sdapi/v1/txt2img", generation("txt2img", alwayson_scripts=args))
    assert code == 200, body


def test_txt2img_without_a_depth_map_is_a_clear_422(status):
    code, body = call("/sdapi/v1/txt2img", generation("txt2img", alwayson_scripts={"depth2img": {"args": [True]}}))
    assert code == 422 and "depth map is needed" in body["detail"]


@pytest.mark.parametrize(
    "args,field",
    [
        ([{"gamma": 50}], "gamma"),
        ([{"colour": 1}], "colour"),
        ([{"source": "upload", "image": "/etc/passwd"}], "depth2img image"),
        ([{"source": "upload", "image": "bm90IGFuIGltYWdl"}], "depth2img image"),
        ([True, "camera"], "source"),
    ],
)
def test_bad_args_are_422_naming_the_field(status, args, field):
    code, body = call(
        "/sdapi/v1/img2img",
        generation(
            "img2img", init_images=[b64(make_scene(SIZE, SIZE))], alwayson_scripts={"depth2img": {"args": args}}
        ),
    )
    assert code == 422, body
    assert field in body["detail"]


def test_estimate_route_returns_the_generation_depth(status):
    image = make_scene(320, 256, 5)
    code, body = call("/depth2img/v1/estimate", {"image": b64(image), "settings": {"gamma": 1.5}})
    assert code == 200, body
    depth = unb64(body["depth"])
    assert depth.size == (320, 256) and depth.mode in ("I;16", "I")
    assert body["info"].startswith("source=estimate")
    assert unb64(body["preview"]).mode == "L"
    code, again = call("/depth2img/v1/estimate", {"image": b64(image), "settings": {"gamma": 1.5}})
    assert again["depth"] == body["depth"]  # deterministic, and served from the cache


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"image": "/etc/hostname"}, "image"),
        ({"image": "aGVsbG8="}, "image"),
        ({"nope": 1}, "nope"),
        ({"image": "x", "settings": {"blur": -3}}, "blur"),
        ({"image": "x", "width": "wide"}, "width"),
    ],
)
def test_estimate_route_bad_input(status, payload, field):
    if payload.get("image") == "x":
        payload = {**payload, "image": b64(make_scene(128, 128))}
    code, body = call("/depth2img/v1/estimate", payload)
    assert code == 422 and field in body["detail"], body


AUTH = os.environ.get("SD_WEBUI_AUTH")


@pytest.mark.skipif(not AUTH, reason="set SD_WEBUI_AUTH when the WebUI runs with --api-auth")
@pytest.mark.parametrize("path", ["/depth2img/v1/status", "/sdapi/v1/options"])
@pytest.mark.parametrize("credentials", ["", "user:wrong", "nobody:nothing"])
def test_routes_need_the_webui_api_credentials(path, credentials):
    request = urllib.request.Request(URL + path)
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=60)
    assert raised.value.code == 401  # ours answer exactly like the WebUI's own /sdapi/v1 routes


@pytest.mark.skipif(not AUTH, reason="set SD_WEBUI_AUTH when the WebUI runs with --api-auth")
def test_estimate_without_credentials_does_no_work():
    code, _ = call("/depth2img/v1/status")
    hits_before = _["cache"]
    status = urllib.request.Request(
        URL + "/depth2img/v1/estimate",
        data=json.dumps({"image": b64(make_scene(128, 128, 9))}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(status, timeout=60)
    assert raised.value.code == 401
    code, after = call("/depth2img/v1/status")
    assert after["cache"] == hits_before  # nothing was estimated or cached


def test_without_the_accordion_depth_is_still_ours(status):
    """No alwayson args: a depth model still gets per-image depth, and txt2img a clear message."""
    a, b = make_scene(SIZE, SIZE, 1), make_scene(SIZE, SIZE, 2)
    code, body = call(
        "/sdapi/v1/img2img", generation("img2img", init_images=[b64(a), b64(b)], batch_size=2, denoising_strength=1.0)
    )
    assert code == 200, body
    assert "Depth2img" not in json.loads(body["info"])["infotexts"][0]  # settings recorded only when enabled
    code, body = call("/sdapi/v1/txt2img", generation("txt2img"))
    assert code == 422 and "depth map is needed" in body["detail"]


def installed_estimators(status) -> list[str]:
    names = [name for name, ready in status["estimators"].items() if ready and name != "dpt-hybrid"]
    if not names:
        pytest.skip("no estimator weights in the WebUI's models/depth2img (tests/live/make_estimator_weights.py)")
    return names


def test_each_installed_estimator_in_img2img_txt2img_and_the_estimate_route(status):
    photo = make_scene(SIZE, SIZE, 6)
    code, midas = call("/depth2img/v1/estimate", {"image": b64(photo)})
    assert code == 200, midas
    for name in installed_estimators(status):
        settings = {"estimator": name, "resolution": 266}
        code, body = call(
            "/sdapi/v1/img2img",
            generation("img2img", init_images=[b64(photo)], alwayson_scripts={"depth2img": {"args": [settings]}}),
        )
        assert code == 200, body
        assert f"estimator={name}; resolution=266" in json.loads(body["info"])["infotexts"][0]
        reference = {**settings, "source": "reference", "image": b64(photo)}
        code, body = call(
            "/sdapi/v1/txt2img", generation("txt2img", alwayson_scripts={"depth2img": {"args": [reference]}})
        )
        assert code == 200, body
        code, other = call("/depth2img/v1/estimate", {"image": b64(photo), "settings": settings})
        assert code == 200, other
        assert other["info"] == f"source=estimate; estimator={name}; resolution=266"
        sixteen_bit = [np.asarray(unb64(m["depth"]), dtype=np.float64) for m in (other, midas)]
        assert np.abs(sixteen_bit[0] - sixteen_bit[1]).mean() > 1000, f"{name} gave the same map as dpt-hybrid"


def ball_map(step: int) -> Image.Image:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    depth = 0.2 + 0.3 * x / SIZE
    depth[(x - SIZE // 2) ** 2 + (y - SIZE // 2) ** 2 < (SIZE // 6) ** 2] = 0.5 + 0.15 * step
    return Image.fromarray((depth * 65535).astype(np.uint16))


def test_many_init_images_with_a_depth_map_each_and_one_shared_range(status):
    """The API's sequence: init images with one depth map each; shared keeps the background still."""
    frames = [make_scene(SIZE, SIZE, 10 + n) for n in range(3)]
    maps = [b64(ball_map(n)) for n in range(3)]
    saved = {}
    for mode in ("per image", "shared"):
        started = time.time() - 1
        args = [{"source": "upload", "image": maps, "normalise": mode, "save_depth": True}]
        payload = generation(
            "img2img",
            init_images=[b64(frame) for frame in frames],
            batch_size=3,
            denoising_strength=1.0,
            alwayson_scripts={"depth2img": {"args": args}},
            save_images=True,
        )
        code, body = call("/sdapi/v1/img2img", payload)
        assert code == 200, body
        assert (f"normalise={mode}" in json.loads(body["info"])["infotexts"][0]) is (mode == "shared")
        saved[mode] = [np.asarray(Image.open(p), dtype=np.float64) for p in saved_depth_maps(started)[-3:]]

    def background_change(maps):
        return max(np.abs(a[:, :20] - b[:, :20]).mean() for a, b in zip(maps, maps[1:], strict=False))

    assert background_change(saved["per image"]) > 200  # of 65535: the far ramp moves as the disc nears
    assert background_change(saved["shared"]) < background_change(saved["per image"]) / 10


def run_gradio(api_name: str, data: list) -> list:
    """One event through gradio 4's HTTP API (/call/<api_name>): the function's outputs."""
    request = urllib.request.Request(
        f"{URL}/call/{api_name}", data=json.dumps({"data": data}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        event = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{URL}/call/{api_name}/{event}", timeout=600) as response:
        lines = response.read().decode().splitlines()
    assert "event: complete" in lines, lines
    return json.loads(lines[lines.index("event: complete") + 1].removeprefix("data:"))


@pytest.mark.skipif(not FORGE, reason="Forge's img2img inputs are canvases (gradio 4); set SD_WEBUI_FORGE=1")
def test_forge_preview_reads_the_inpaint_canvas(status):
    """The accordion's img2img preview, driven through gradio's own API as the page drives it: Forge's
    inpaint canvas sends the picture and the strokes; "only masked" previews the strokes' crop."""
    with urllib.request.urlopen(URL + "/config", timeout=60) as response:
        config = json.load(response)
    props = {c["id"]: c.get("props", {}) for c in config["components"]}
    preview = next(
        d
        for d in config["dependencies"]
        if any(props.get(t[0], {}).get("elem_id") == "depth2img_img2img_preview_button" for t in d["targets"])
    )
    canvases = [i for i in preview["inputs"] if "logical_image" in str(props[i].get("elem_classes"))]
    assert len(canvases) == 8  # img2img, sketch, inpaint, inpaint sketch: strokes and picture each

    def data_url(image: Image.Image) -> str:
        return "data:image/png;base64," + b64(image)

    picture = make_scene(SIZE, SIZE, 21).convert("RGBA")
    strokes = Image.new("RGBA", (SIZE, SIZE))
    strokes.paste((255, 255, 255, 255), (150, 150, 220, 220))
    canvas_values = {canvases[4]: data_url(strokes), canvases[5]: data_url(picture)}  # the inpaint canvas

    def run(only_masked: bool) -> tuple[np.ndarray, str]:
        data = []
        for index in preview["inputs"]:
            value = {
                "img2img_width": SIZE,
                "img2img_height": SIZE,
                "img2img_inpaint_full_res": "Only masked" if only_masked else "Whole picture",
                "img2img_inpaint_full_res_padding": 0,
            }.get(props[index].get("elem_id"), canvas_values.get(index, props[index].get("value")))
            data.append(2 if index == preview["inputs"][0] else value)  # the inpaint sub-tab
        image, status_line = run_gradio(preview["api_name"], data)
        if isinstance(image, dict) and image.get("__type__") == "update":  # the picture is shown by an update
            assert image.get("visible") is not False and image.get("value"), status_line
            image = image["value"]
        with urllib.request.urlopen(f"{URL}/file={image['path']}", timeout=60) as response:
            return np.asarray(Image.open(io.BytesIO(response.read())), dtype=np.float64), status_line

    whole, whole_status = run(False)
    crop, crop_status = run(True)
    assert f"Depth for {SIZE}x{SIZE}" in whole_status and "depth2img-ok" in crop_status
    assert whole.shape == crop.shape == (SIZE, SIZE)
    assert np.abs(whole - crop).mean() > 5  # the crop around the strokes, not the whole picture


def test_xyz_plot_over_gamma_gives_each_cell_its_value(status):
    """X/Y/Z plot over "[Depth2img] Gamma" (the axis index looked up by its label): each cell's infotext
    carries its value; with the depth maps saved, the two cells' conditionings differ."""
    index = status["xyz_axes"]["img2img"]["[Depth2img] Gamma"]
    before = set(saved_depth_maps(0.0))  # not a time window: the test before saves maps a moment earlier
    xyz_args = [index, "0.8, 1.5", [], 0, "", [], 0, "", [], True, True, False, False, False, False, False, 0, False]
    payload = generation(
        "img2img",
        init_images=[b64(make_scene(SIZE, SIZE, 3))],
        denoising_strength=1.0,
        save_images=True,
        script_name="x/y/z plot",
        script_args=xyz_args,
        alwayson_scripts={"depth2img": {"args": [{"enabled": True, "save_depth": True}]}},
    )
    code, body = call("/sdapi/v1/img2img", payload)
    assert code == 200, body
    infotexts = json.loads(body["info"])["infotexts"]
    assert len(body["images"]) == 3  # the grid, then the two cells
    assert "X Type: [Depth2img] Gamma" in infotexts[0]
    assert "Depth2img: source=estimate; gamma=0.8" in infotexts[1]
    assert "Depth2img: source=estimate; gamma=1.5" in infotexts[2]
    maps = [path for path in saved_depth_maps(0.0) if path not in before]
    assert len(maps) == 2
    first, second = (np.asarray(Image.open(p), dtype=np.float64) for p in maps)
    assert np.abs(first - second).mean() > 100  # 16-bit maps: gamma moved the mid depths
