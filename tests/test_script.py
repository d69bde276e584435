"""The script tier: scripts/depth2img.py imported against the WebUI and gradio fakes
(tests/webui_fakes.py, v1.10.1 / gradio 3.41.2), driven as the WebUI drives it: ui() for both
tabs, process() on processing-object stand-ins, paste-back, settings, routes, unload."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch
import webui_fakes
from checkpoints import state_dict, write_safetensors
from PIL import Image
from scenes import make_scene

from lib_depth.fields import ARG_NAMES, FIELDS, INFOTEXT_FIELDS
from lib_depth.settings import INFOTEXT_KEY, DepthSettings
from lib_depth.webui.options import OPTIONS
from lib_depth.webui.payload import encode_png

ROOT = Path(__file__).resolve().parents[1]


class LatentDepth2ImageDiffusion(torch.nn.Module):  # ldm's class name identifies a depth model
    def __init__(self, depth_model: torch.nn.Module | None) -> None:
        super().__init__()
        self.depth_model = depth_model
        self.sd_checkpoint_info = types.SimpleNamespace(
            sha256="ab12", filename="/m/depth.safetensors", name="depth.safetensors", name_for_extra="depth"
        )

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32


class LatentDiffusion(torch.nn.Module):
    dtype = torch.float32


Img2Img, Txt2Img = webui_fakes.Img2Img, webui_fakes.Txt2Img  # the processing objects


@pytest.fixture
def load_script(monkeypatch):
    """load_script(sd_model=..., **cmd_opts) -> (module, fakes); unloads (undoes the patch) after."""
    loaded = []

    def load(sd_model=None, checkpoints=None, **cmd_opts):
        fakes = webui_fakes.install(monkeypatch, sd_model=sd_model, checkpoints=checkpoints, **cmd_opts)
        loaded.append(fakes)
        return webui_fakes.import_script(), fakes

    yield load
    for fakes in loaded:
        webui_fakes.unload(fakes)


def build_ui(module, fakes, is_img2img: bool):
    script = module.Depth2ImgScript()
    gr = fakes.gradio
    # the WebUI's own inputs, created before our accordion (after_component sees each)
    for elem_id in ("img2img_width", "img2img_height", "txt2img_width", "txt2img_height", "img2img_image"):
        script.after_component(gr.Number(512, elem_id=elem_id), elem_id=elem_id)
    return script, script.ui(is_img2img)


def by_id(components, suffix):
    return next(c for c in components if (c.elem_id or "").endswith(suffix))


def test_script_file_is_thin():
    lines = (ROOT / "scripts" / "depth2img.py").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 120


@pytest.mark.parametrize("is_img2img", [True, False])
def test_ui_follows_the_field_table(load_script, is_img2img):
    module, fakes = load_script()
    fakes.opts.depth2img_save_default = True
    script, components = build_ui(module, fakes, is_img2img)
    tab = "img2img" if is_img2img else "txt2img"
    assert len(components) == len(FIELDS)  # the script's args, in the table's order
    for f, component in zip(FIELDS, components, strict=True):
        expected_id = f"depth2img_{tab}_{f.name}" + ("-checkbox" if f.name == "enabled" else "")
        assert component.elem_id == expected_id
        if f.name != "enabled":
            assert component.kwargs["tooltip"] == f.help and component.kwargs["label"] == f.label_for(tab)
        if f.kind == "float":
            assert (component.kwargs["minimum"], component.kwargs["maximum"]) == f.bounds
            assert component.kwargs["step"] == f.step and component.value == f.default
        if f.kind == "choice":
            assert component.kwargs["choices"] == list(f.choices_for(tab))
    assert by_id(components, "_save_depth").value is True  # the option's default
    assert by_id(components, "_masked_area").kwargs["visible"] is is_img2img
    assert by_id(components, "_image").kwargs["visible"] is (not is_img2img)
    ids = [c.elem_id for c in webui_fakes.Component.created if c.elem_id]
    assert len(ids) == len(set(ids)), "element ids must be unique in the page"


def test_paste_back_restores_every_infotext_field(load_script):
    module, fakes = load_script()
    script, components = build_ui(module, fakes, True)
    settings = DepthSettings(source="upload", invert=True, near=0.9, far=0.1, gamma=1.5, blur=4, masked_area="filled")
    params = {"Steps": "20", INFOTEXT_KEY: settings.to_infotext()}
    restored = {field.component.elem_id: field.function(params) for field in script.infotext_fields}
    assert restored["depth2img_img2img_enabled-checkbox"] is True
    for f in INFOTEXT_FIELDS:
        assert restored[f"depth2img_img2img_{f.name}"] == f.to_ui(getattr(settings, f.name))  # as its widget shows it
    assert restored["depth2img_img2img_resolution"] == "auto (the estimator's size)"
    closed = {field.component.elem_id: field.function({"Steps": "20"}) for field in script.infotext_fields}
    assert closed["depth2img_img2img_enabled-checkbox"] is False  # no Depth2img key: the accordion closes
    assert closed["depth2img_img2img_gamma"] is None  # other controls are left as they are


@pytest.mark.parametrize(
    ("is_img2img", "source", "kept"), [(False, "estimate", "upload"), (True, "reference", "estimate")]
)
def test_paste_back_leaves_a_choice_the_tab_does_not_offer(load_script, is_img2img, source, kept):
    """Live WebUI: img2img's infotext (source=estimate) pasted into txt2img left its source radio with no choice."""
    module, fakes = load_script()
    script, components = build_ui(module, fakes, is_img2img)
    tab = "img2img" if is_img2img else "txt2img"
    source_field = next(f for f in FIELDS if f.name == "source")
    assert source not in source_field.choices_for(tab) and by_id(components, "_source").value == kept
    text = f"source={source}; estimator=depth-anything-v2-small; resolution=266; normalise=shared; gamma=1.5"
    params = {"Steps": "20", INFOTEXT_KEY: text}
    restored = {field.component.elem_id: field.function(params) for field in script.infotext_fields}
    assert restored[f"depth2img_{tab}_source"] is None  # the control keeps its own, valid choice
    assert restored[f"depth2img_{tab}_enabled-checkbox"] is True
    assert restored[f"depth2img_{tab}_estimator"] == "depth-anything-v2-small"
    assert (restored[f"depth2img_{tab}_resolution"], restored[f"depth2img_{tab}_gamma"]) == ("266", 1.5)
    assert restored[f"depth2img_{tab}_normalise"] == "shared"


def test_every_option_is_registered_in_the_settings(load_script):
    module, fakes = load_script()
    for register in fakes.callbacks.registered["ui_settings"]:
        register()
    assert set(fakes.opts.data_labels) == {option.key for option in OPTIONS}
    for option in OPTIONS:
        info = fakes.opts.data_labels[option.key]
        assert info.default == option.default and info.section == ("depth2img", "Depth2img")


def test_process_img2img_batch_gets_per_image_depth_and_infotext(load_script, dpt_head):
    model = LatentDepth2ImageDiffusion(dpt_head)
    module, fakes = load_script(sd_model=model)
    script = module.Depth2ImgScript()
    images = [make_scene(128, 128, seed) for seed in (1, 2)]
    p = Img2Img(model, images, init_latent=torch.zeros(2, 4, 16, 16))
    args = [True, "estimate", False, 1.0, 0.0, 1.5, 0.0, "original", False, None]  # a caller from before the
    assert len(args) < len(ARG_NAMES)  # later fields: they take their defaults
    script.process(p, *args)
    assert p.extra_generation_params[INFOTEXT_KEY] == DepthSettings(gamma=1.5).to_infotext()
    from lib_depth import image_to_tensor

    conditioning = p.depth2img_image_conditioning(image_to_tensor(images))
    assert conditioning.shape == (2, 1, 16, 16) and not torch.equal(conditioning[0], conditioning[1])


def test_process_with_the_accordion_closed_still_replaces_the_conditioning(load_script, dpt_head):
    model = LatentDepth2ImageDiffusion(dpt_head)
    module, _ = load_script(sd_model=model)
    p = Img2Img(model, [make_scene(128, 128, 3)], init_latent=torch.zeros(1, 4, 16, 16))
    module.Depth2ImgScript().process(p, False, "estimate")
    assert "depth2img_image_conditioning" in vars(p) and INFOTEXT_KEY not in p.extra_generation_params


def test_process_without_a_depth_model_changes_nothing(load_script):
    model = LatentDiffusion()
    module, _ = load_script(sd_model=model)
    p = Img2Img(model, [make_scene(128, 128, 3)])
    module.Depth2ImgScript().process(p, True)
    assert "depth2img_image_conditioning" not in vars(p) and not p.extra_generation_params


def test_process_inpaint_masked_area_original(load_script, dpt_head):
    model = LatentDepth2ImageDiffusion(dpt_head)
    module, _ = load_script(sd_model=model)
    original = make_scene(128, 128, 4)
    mask = Image.new("L", (128, 128), 255)
    p = Img2Img(model, [original], image_mask=mask, inpainting_fill=0, init_latent=torch.zeros(1, 4, 16, 16))
    module.Depth2ImgScript().process(p, {"masked_area": "original"})
    from lib_depth import DepthEstimator, depth_to_conditioning, image_to_tensor

    filled = image_to_tensor(Image.new("RGB", (128, 128), (120, 120, 120)))
    expected = depth_to_conditioning(DepthEstimator(dpt_head).estimate(image_to_tensor(original)), (16, 16))
    assert torch.allclose(p.depth2img_image_conditioning(filled), expected, atol=1e-5)


def test_process_txt2img_from_a_depth_map_by_name_and_errors(load_script):
    model = LatentDepth2ImageDiffusion(None)
    model.depth_model = torch.nn.Identity()
    module, _ = load_script(sd_model=model)
    ramp = Image.fromarray((np.tile(np.arange(128), (96, 1)) * 500).astype(np.uint16))
    p = Txt2Img(model)
    module.Depth2ImgScript().process(p, {"source": "upload", "image": encode_png(ramp)})
    conditioning = p.txt2img_image_conditioning(torch.zeros(1, 4, 12, 16))
    assert conditioning.shape == (1, 1, 12, 16) and conditioning[0, 0, 6, 0] < conditioning[0, 0, 6, -1]

    p = Txt2Img(model, is_api=True)
    module.Depth2ImgScript().process(p, {"gamma": 50})
    from fastapi import HTTPException

    with pytest.raises(HTTPException) as raised:
        p.txt2img_image_conditioning(torch.zeros(1, 4, 12, 16))
    assert raised.value.status_code == 422 and "gamma: 50 is outside" in raised.value.detail


def test_routes_only_with_api_and_behind_auth(load_script, dpt_head, tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    path = write_safetensors(tmp_path / "512-depth-ema.safetensors", state_dict("depth"))
    checkpoints = {"d": types.SimpleNamespace(filename=str(path))}
    module, fakes = load_script(sd_model=LatentDepth2ImageDiffusion(dpt_head), checkpoints=checkpoints, api=False)
    app = FastAPI()
    fakes.callbacks.registered["app_started"][0](None, app)
    assert not [r for r in app.routes if "depth2img" in getattr(r, "path", "")]
    fakes.cmd_opts.api, fakes.cmd_opts.api_auth = True, "user:secret"
    fakes.callbacks.registered["app_started"][0](None, app)
    client = TestClient(app)
    assert client.get("/depth2img/v1/status").status_code == 401
    body = client.get("/depth2img/v1/status", auth=("user", "secret")).json()
    assert body["depth_model_loaded"] and body["args"] == list(ARG_NAMES)
    assert body["checkpoints"][0]["kind"].startswith("SD 2 depth")
    answer = client.post(
        "/depth2img/v1/estimate",
        json={"image": encode_png(make_scene(160, 120)), "width": 100},
        auth=("user", "secret"),
    )
    assert answer.status_code == 200 and (answer.json()["width"], answer.json()["height"]) == (96, 120)


def test_unload_undoes_the_midas_patch(load_script):
    import ldm.modules.midas.api as midas_api

    before = midas_api.load_model
    _, fakes = load_script()
    assert midas_api.load_model is not before
    for undo in fakes.callbacks.registered["script_unloaded"]:
        undo()
    assert midas_api.load_model is before
    fakes.callbacks.registered["script_unloaded"].clear()


def test_preview_button_gives_the_generation_depth(load_script, dpt_head):
    model = LatentDepth2ImageDiffusion(dpt_head)
    module, fakes = load_script(sd_model=model)
    _, components = build_ui(module, fakes, True)
    button = next(c for c in webui_fakes.Component.created if c.elem_id == "depth2img_img2img_preview_button")
    listener = button.listeners["click"][0]
    assert listener["_js"] == "depth2imgPreviewArgs"
    values = {c: c.value for c in listener["inputs"]}
    values[listener["inputs"][0]] = 0  # the img2img sub-tab
    for component in listener["inputs"]:
        if component.elem_id == "img2img_image":
            values[component] = make_scene(160, 120, 7)
        if component.elem_id in ("img2img_width", "img2img_height"):
            values[component] = 128
    image, note = listener["fn"](*values.values())
    assert image["visible"] is True and image["value"].size == (128, 128)
    assert "Depth for 128x128 (dpt-hybrid at 384)" in note


@pytest.fixture(scope="module")
def dav2_small_weights(tmp_path_factory):
    """models/depth2img/depth_anything_v2_vits.pth: the real Small architecture, seeded random weights."""
    from lib_depth.depth.estimators.depth_anything_v2 import build_depth_anything_v2

    torch.manual_seed(0)
    model = build_depth_anything_v2("vits")
    with torch.no_grad():  # a head that gives a varied, positive map
        model.depth_head.scratch.output_conv2[2].bias.fill_(0.5)
    models = tmp_path_factory.mktemp("webui") / "models"
    (models / "depth2img").mkdir(parents=True)
    torch.save(model.state_dict(), models / "depth2img" / "depth_anything_v2_vits.pth")
    return models


def test_depth_anything_from_the_models_folder_and_its_infotext(load_script, dpt_head, dav2_small_weights):
    model = LatentDepth2ImageDiffusion(dpt_head)
    module, fakes = load_script(sd_model=model)
    image = make_scene(128, 128, 5)
    from lib_depth import image_to_tensor

    chosen = {"estimator": "depth-anything-v2-small", "resolution": 140}
    p = Img2Img(model, [image], init_latent=torch.zeros(1, 4, 16, 16))
    module.Depth2ImgScript().process(p, chosen)  # the weights are not installed here
    from lib_depth.run import DepthInputError

    with pytest.raises(DepthInputError, match=r"needs its weights: depth_anything_v2_vits.pth .*download --estimator"):
        p.depth2img_image_conditioning(image_to_tensor(image))

    fakes.modules["modules.paths"].models_path = str(dav2_small_weights)
    p = Img2Img(model, [image], init_latent=torch.zeros(1, 4, 16, 16))
    module.Depth2ImgScript().process(p, chosen)
    by_dav2 = p.depth2img_image_conditioning(image_to_tensor(image))
    assert p.extra_generation_params[INFOTEXT_KEY] == (
        "source=estimate; estimator=depth-anything-v2-small; resolution=140"
    )
    p = Img2Img(model, [image], init_latent=torch.zeros(1, 4, 16, 16))
    module.Depth2ImgScript().process(p, {})
    by_midas = p.depth2img_image_conditioning(image_to_tensor(image))
    assert by_dav2.shape == by_midas.shape == (1, 1, 16, 16) and not torch.allclose(by_dav2, by_midas, atol=0.05)
    assert torch.isfinite(by_dav2).all()


def test_the_status_line_never_loads_a_checkpoint(load_script, tmp_path):
    """shared.sd_model loads the selected checkpoint when none is loaded (modules/shared_items.py
    sd_model property -> sd_models.model_data.get_sd_model()); the status line reads what is loaded."""
    from checkpoints import state_dict, write_safetensors

    path = write_safetensors(tmp_path / "512-depth-ema.safetensors", state_dict("depth"))
    _, fakes = load_script(checkpoints={"d": types.SimpleNamespace(filename=str(path))})

    class LoadingShared(types.ModuleType):
        @property
        def sd_model(self):
            raise AssertionError("reading shared.sd_model would load a checkpoint")

    shared = fakes.modules["modules.shared"]
    shared.__class__ = LoadingShared
    fakes.modules["modules.sd_models"].model_data = types.SimpleNamespace(sd_model=None)
    from lib_depth.webui.status import status_html

    assert "Installed: 512-depth-ema.safetensors" in status_html()
