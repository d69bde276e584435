"""The extension in Forge and its forks: scripts/depth2img.py imported against the Forge fakes
(tests/forge_fakes.py, Forge dfdcbab) and driven as Forge drives it. Forge's own conditioning
methods, the sampler's c_concat rule and a real 5-channel first conv are in the loop, so a route
that misses fails with Forge's own 9-channel error."""

from __future__ import annotations

import copy
import os
import shutil
import sys
import types
from pathlib import Path

import forge_fakes
import numpy as np
import pytest
import torch
import webui_fakes
from checkpoints import state_dict, write_safetensors
from forge_fakes import Img2Img, StableDiffusion2, Txt2Img, hires_conditioning, img2img_init, sample_step
from PIL import Image
from scenes import make_scene

from lib_depth import DepthEstimator, depth_to_conditioning, image_to_tensor
from lib_depth.settings import INFOTEXT_KEY, DepthSettings
from lib_depth.webui import compat, forge
from lib_depth.webui.payload import encode_png

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    """A depth checkpoint file (header with the depth keys; its MiDaS is built by `fast_midas`)."""
    return write_safetensors(tmp_path / "512-depth-ema.safetensors", state_dict("depth"))


@pytest.fixture
def fast_midas(monkeypatch, dpt_head):
    """The checkpoint's MiDaS replaced by the DPT head structure (a real, fast depth network) and
    builds counted; the full DPT-Hybrid from Forge's code copy is test_forge_midas_copy_builds_*."""
    builds = []

    def load(filename, webui_root=None, dpt_class=None):
        builds.append(filename)
        return copy.deepcopy(dpt_head)  # a new module per build, as the real build gives

    monkeypatch.setattr(forge, "load_depth_model", load)
    monkeypatch.setattr(forge, "dpt_class", lambda root: object)
    forge._patchers.clear()
    yield builds
    forge._patchers.clear()


@pytest.fixture
def load_script(monkeypatch, tmp_path):
    """load_script(kind, sd_model) -> (module, fakes): scripts/depth2img.py under Forge `kind`."""
    loaded = []

    def load(kind="forge", sd_model=None, **cmd_opts):
        fakes = forge_fakes.install(monkeypatch, tmp_path, kind=kind, sd_model=sd_model, **cmd_opts)
        loaded.append(fakes)
        return webui_fakes.import_script("depth2img_forge_under_test"), fakes

    yield load
    for fakes in loaded:
        webui_fakes.unload(fakes.webui)


# --- which WebUI ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind,expected",
    [
        ("forge", compat.FORGE),
        ("reforge", compat.REFORGE),
        ("classic", compat.FORGE_CLASSIC),
        ("neo", compat.FORGE_NEO),
        ("forge-no-sd2", compat.FORGE_WITHOUT_SD2),
    ],
)
def test_detection(monkeypatch, tmp_path, kind, expected):
    forge_fakes.install(monkeypatch, tmp_path, kind=kind)
    assert compat.webui() == expected
    assert compat.uses_forge_backend() is (kind == "forge")
    reason = compat.unsupported_reason()
    if kind in ("forge", "reforge"):
        assert reason is None
    else:
        assert "does not load SD 2 models" in reason and "\n" not in reason


def test_detection_automatic1111(monkeypatch):
    monkeypatch.setitem(sys.modules, "modules_forge", None)
    assert compat.webui() == compat.AUTOMATIC1111 and not compat.uses_forge_backend()


def test_detection_imports_nothing_of_forge(monkeypatch, tmp_path):
    """find_spec only: backend.memory_management (which picks a CUDA device on import) stays unimported."""
    forge_fakes.install(monkeypatch, tmp_path, kind="forge")
    monkeypatch.delitem(sys.modules, "backend.memory_management")
    compat.webui()
    compat.unsupported_reason()
    assert "backend.memory_management" not in sys.modules


# --- the script in each WebUI ---------------------------------------------------------------------
def test_forge_loads_without_ldm_and_patches_nothing_global(load_script):
    module, fakes = load_script("forge")
    assert "script_unloaded" not in fakes.webui.callbacks.registered  # no ldm: no MiDaS loader patch
    script = module.Depth2ImgScript()
    components = script.ui(True)
    assert components and components[0].elem_id == "depth2img_img2img_enabled-checkbox"


@pytest.mark.parametrize("kind", ["classic", "neo"])
def test_forks_without_sd2_show_one_line(load_script, kind):
    module, fakes = load_script(kind)
    script = module.Depth2ImgScript()
    assert script.ui(False) == []
    html = [c for c in forge_fakes.webui_fakes.Component.created if type(c).__name__ == "HTML"]
    assert len(html) == 1 and "does not load SD 2 models" in html[0].value
    model = StableDiffusion2("unused.safetensors")
    p = Txt2Img(model)
    script.process(p, True)
    assert "txt2img_image_conditioning" not in vars(p)


def test_reforge_takes_the_automatic1111_path(load_script, dpt_head):
    """reForge keeps ldm and A1111's processing: the offline-MiDaS patch and ldm's depth class
    (its generation is test_reforge_gets_the_checkpoints_midas_weights)."""
    import ldm.modules.midas.api as midas_api

    before = midas_api.load_model

    class LatentDepth2ImageDiffusion(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.depth_model = dpt_head

    _, fakes = load_script("reforge", sd_model=LatentDepth2ImageDiffusion())
    assert midas_api.load_model is not before and fakes.webui.callbacks.registered["script_unloaded"]
    from lib_depth.webui.depth_model import is_depth_model

    assert is_depth_model(LatentDepth2ImageDiffusion()) and not compat.uses_forge_backend()


def test_status_line_before_forge_loads_the_model(load_script, checkpoint, tmp_path):
    """Forge loads the selected checkpoint with the first generation: until then shared.sd_model is a
    FakeInitialModel (modules/sd_models.py:385) and the selection is in model_data.forge_loading_parameters
    (modules_forge/main_entry.py:229)."""

    class FakeInitialModel:
        cond_stage_model = None

    module, fakes = load_script("forge", sd_model=FakeInitialModel())
    from lib_depth.webui.status import status_html

    sd_models = fakes.webui.modules["modules.sd_models"]
    sd_models.model_data = types.SimpleNamespace(forge_loading_parameters={})
    assert "not a depth model" in status_html()  # nothing selected
    selected = types.SimpleNamespace(filename=str(checkpoint))
    sd_models.model_data.forge_loading_parameters["checkpoint_info"] = selected
    assert "Depth model selected: 512-depth-ema.safetensors (Forge loads it" in status_html()
    other = write_safetensors(tmp_path / "sd21.safetensors", state_dict("sd2"))
    sd_models.model_data.forge_loading_parameters["checkpoint_info"] = types.SimpleNamespace(filename=str(other))
    assert "not a depth model" in status_html()


# --- Forge: recognition ---------------------------------------------------------------------------
@pytest.mark.parametrize("channels,is_sd2,expected", [(5, True, True), (4, True, False), (9, True, False),
                                                      (5, False, False)])  # fmt: skip
def test_depth_model_recognition(monkeypatch, tmp_path, channels, is_sd2, expected):
    forge_fakes.install(monkeypatch, tmp_path, kind="forge")
    from lib_depth.webui.depth_model import is_depth_model

    assert is_depth_model(StableDiffusion2("x.safetensors", in_channels=channels, is_sd2=is_sd2)) is expected


# --- Forge: generations -------------------------------------------------------------------------------
def test_without_the_extension_forge_fails_like_issue_14(checkpoint):
    """The fakes reproduce the failure: Forge's inpainting route gives 4 + 5 channels."""
    model = StableDiffusion2(str(checkpoint))
    p = Img2Img(model, [make_scene(128, 128, 1)])
    cond = img2img_init(p, image_to_tensor(make_scene(128, 128, 1)) * 0.5 + 0.5)
    with pytest.raises(RuntimeError, match="expected input.*to have 5 channels, but got 9"):
        sample_step(model, torch.zeros(1, 4, 16, 16), cond)


def test_img2img_batch_of_two_images_gets_two_depths_into_the_unet(load_script, checkpoint, fast_midas):
    model = StableDiffusion2(str(checkpoint))
    module, fakes = load_script("forge", sd_model=model)
    images = [make_scene(128, 128, seed) for seed in (1, 2)]
    p = Img2Img(model, images)
    module.Depth2ImgScript().process(p, {"gamma": 1.5})
    assert p.extra_generation_params[INFOTEXT_KEY] == DepthSettings(enabled=True, gamma=1.5).to_infotext()
    batch = image_to_tensor(images) * 0.5 + 0.5
    cond = img2img_init(p, batch)
    assert cond.shape == (2, 1, 16, 16) and cond.dtype == torch.float32 and torch.isfinite(cond).all()
    sample_step(model, p.init_latent, cond)
    depth = model.unet.received[-1][:, 4]
    assert not torch.allclose(depth[0], depth[1], atol=1e-3)  # each image its own depth
    assert not getattr(p, "is_using_inpainting_conditioning", False)  # Forge's inpaint branch never ran
    # Forge's memory management loaded it and keeps it registered: Forge evicts it when it needs the
    # room, as it does its own preprocessors (depth2img_offload off, the default)
    assert [loaded.model for loaded in fakes.memory.current_loaded_models] == fakes.memory.loads[:1]
    assert len(fast_midas) == 1


def test_midas_is_built_once_per_checkpoint_and_rebuilt_when_the_file_changes(load_script, checkpoint, fast_midas):
    model = StableDiffusion2(str(checkpoint))
    module, fakes = load_script("forge", sd_model=model)
    for seed in (1, 2):
        p = Img2Img(model, [make_scene(128, 128, seed)])
        module.Depth2ImgScript().process(p, True)
        img2img_init(p, image_to_tensor(make_scene(128, 128, seed)) * 0.5 + 0.5)
    assert len(fast_midas) == 1
    stat = checkpoint.stat()
    os.utime(checkpoint, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    p = Img2Img(model, [make_scene(128, 128, 3)])
    module.Depth2ImgScript().process(p, True)
    img2img_init(p, image_to_tensor(make_scene(128, 128, 3)) * 0.5 + 0.5)
    assert len(fast_midas) == 2
    # the replaced one left Forge's loaded models; the new one is there
    assert [loaded.model for loaded in fakes.memory.current_loaded_models] == list(forge._patchers.values())


def test_offload_on_unloads_after_use_and_fp16_where_forge_says(load_script, checkpoint, fast_midas):
    model = StableDiffusion2(str(checkpoint))
    module, fakes = load_script("forge", sd_model=model)
    fakes.webui.opts.depth2img_offload = True
    fakes.memory.fp16 = True
    fakes.memory.device = torch.device("meta")  # a non-CPU device: Forge's fp16 rule (:1070) allows float16
    patcher = forge.depth_patcher(model)
    assert next(patcher.model.parameters()).dtype == torch.float16 and patcher.load_device.type == "meta"
    forge._patchers.clear()
    fakes.memory.device = torch.device("cpu")
    patcher = forge.depth_patcher(model)
    assert next(patcher.model.parameters()).dtype == torch.float32  # never float16 on the CPU
    p = Img2Img(model, [make_scene(128, 128, 1)])
    module.Depth2ImgScript().process(p, True)
    img2img_init(p, image_to_tensor(make_scene(128, 128, 1)) * 0.5 + 0.5)
    assert fakes.memory.loads == list(forge._patchers.values())  # loaded for the forward ...
    assert not fakes.memory.current_loaded_models  # ... and taken out of Forge's loaded models after


def test_txt2img_from_a_map_and_the_hires_pass(load_script, checkpoint, fast_midas):
    model = StableDiffusion2(str(checkpoint))
    module, _ = load_script("forge", sd_model=model)
    ramp = Image.fromarray((np.tile(np.arange(128), (96, 1)) * 500).astype(np.uint16))
    p = Txt2Img(model)
    module.Depth2ImgScript().process(p, {"source": "upload", "image": encode_png(ramp)})
    x = torch.zeros(1, 4, 12, 16)
    cond = p.txt2img_image_conditioning(x)  # processing.py:1387
    assert cond.shape == (1, 1, 12, 16) and cond[0, 0, 6, 0] < cond[0, 0, 6, -1]
    sample_step(model, x, cond)
    assert model.unet.received[-1].shape[1] == 5
    # hires x1.5 with a pixel upscaler: p's img2img conditioning with [0, 1] images (processing.py:1489)
    samples = torch.zeros(1, 4, 18, 24)
    hires = hires_conditioning(p, torch.rand(1, 3, 144, 192), samples)
    assert hires.shape == (1, 1, 18, 24)
    p2 = Txt2Img(model, width=192, height=144)
    module.Depth2ImgScript().process(p2, {"source": "upload", "image": encode_png(ramp)})
    assert torch.allclose(hires, p2.txt2img_image_conditioning(samples), atol=1e-5)  # the map at the new size
    sample_step(model, samples, hires)
    assert torch.equal(model.unet.received[-1][:, 4:], hires)


def test_inpaint_masked_area_original_uses_the_unfilled_image(load_script, checkpoint, fast_midas, dpt_head):
    model = StableDiffusion2(str(checkpoint))
    module, _ = load_script("forge", sd_model=model)
    original = make_scene(128, 128, 4)
    mask = Image.new("L", (128, 128), 255)
    p = Img2Img(model, [original], image_mask=mask, inpainting_fill=0)
    module.Depth2ImgScript().process(p, {"masked_area": "original"})
    filled = torch.full((1, 3, 128, 128), 120 / 255)  # what "Masked content: fill" left in the image
    cond = img2img_init(p, filled)
    expected = depth_to_conditioning(DepthEstimator(dpt_head).estimate(image_to_tensor(original)), (16, 16))
    assert torch.allclose(cond, expected, atol=1e-5)


def test_api_errors_are_422_in_forge(load_script, checkpoint, fast_midas):
    from fastapi import HTTPException

    model = StableDiffusion2(str(checkpoint))
    module, _ = load_script("forge", sd_model=model)
    p = Txt2Img(model, is_api=True)
    module.Depth2ImgScript().process(p, True)  # no map, no reference
    with pytest.raises(HTTPException) as raised:
        p.txt2img_image_conditioning(torch.zeros(1, 4, 12, 16))
    assert raised.value.status_code == 422 and "depth map is needed" in raised.value.detail


def test_a_checkpoint_without_midas_weights_is_a_422_naming_it(load_script, tmp_path):
    path = write_safetensors(tmp_path / "no-midas.safetensors", state_dict("sd2"))
    model = StableDiffusion2(str(path))
    module, _ = load_script("forge", sd_model=model)
    p = Img2Img(model, [make_scene(128, 128, 1)], is_api=True)
    module.Depth2ImgScript().process(p, True)
    from fastapi import HTTPException

    with pytest.raises(HTTPException) as raised:
        img2img_init(p, image_to_tensor(make_scene(128, 128, 1)) * 0.5 + 0.5)
    assert raised.value.status_code == 422
    assert "no-midas.safetensors: holds no MiDaS depth weights" in raised.value.detail


def test_non_depth_model_in_forge_is_left_alone(load_script, checkpoint):
    model = StableDiffusion2(str(checkpoint), in_channels=4)
    module, _ = load_script("forge", sd_model=model)
    p = Img2Img(model, [make_scene(128, 128, 1)])
    module.Depth2ImgScript().process(p, True)
    assert not {"img2img_image_conditioning", "depth2img_image_conditioning"} & set(vars(p))


def test_preview_reads_forges_inpaint_canvas(load_script, checkpoint, fast_midas, dpt_head):
    """Forge's img2img inputs are canvases: the picture and the strokes (their alpha is the mask)."""
    model = StableDiffusion2(str(checkpoint))
    module, fakes = load_script("forge", sd_model=model)
    script = module.Depth2ImgScript()
    gr = fakes.webui.gradio
    for elem_id in ("img2img_width", "img2img_height", "img2img_inpaint_full_res"):
        script.after_component(gr.Number(0, elem_id=elem_id), elem_id=elem_id)
    canvases = {elem_id: forge_fakes.forge_canvas(script, gr, elem_id) for elem_id in forge.CANVASES}
    script.ui(True)
    button = next(
        c for c in forge_fakes.webui_fakes.Component.created if c.elem_id == "depth2img_img2img_preview_button"
    )
    listener = button.listeners["click"][0]
    picture = make_scene(160, 160, 5).convert("RGBA")
    strokes = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    strokes.paste((255, 255, 255, 255), (100, 100, 140, 140))
    foreground, background = canvases["img2maskimg"]
    values = {c: c.value for c in listener["inputs"]}
    values[listener["inputs"][0]] = 2  # the inpaint sub-tab
    values.update({foreground: strokes, background: picture})
    for component in listener["inputs"]:
        if component.elem_id in ("img2img_width", "img2img_height"):
            values[component] = 128
        if component.elem_id == "img2img_inpaint_full_res":
            values[component] = 1  # only masked: the crop comes from the strokes
    shown, note = listener["fn"](*values.values())
    image = shown["value"]
    assert shown["visible"] and image.size == (128, 128) and "Depth for 128x128" in note
    from lib_depth.run import DepthRun
    from lib_depth.webui.preview import Inpaint, request_conditioning

    mask = strokes.getchannel("A").point(lambda v: 255 if v > 128 else 0)
    run = DepthRun(DepthSettings(), DepthEstimator(dpt_head))
    expected, _ = request_conditioning(run, width=128, height=128, init_image=picture, inpaint=Inpaint(mask, True, 0))
    whole, _ = request_conditioning(run, width=128, height=128, init_image=picture)
    from lib_depth.io.depthmap import conditioning_to_previews

    assert np.array_equal(np.asarray(image), np.asarray(conditioning_to_previews(expected, (128, 128))[0]))
    assert not np.array_equal(np.asarray(image), np.asarray(conditioning_to_previews(whole, (128, 128))[0]))


@pytest.mark.slow
def test_reforge_gets_the_checkpoints_midas_weights(load_script, tmp_path, depth_model):
    """reForge builds ldm's depth model from the yaml but loads only UNet, VAE and text encoder
    (modules_forge/forge_loader.py load_model_for_a1111): ours fills in the checkpoint's MiDaS, once."""
    from models import build_random_dpt_hybrid

    weights = {f"depth_model.{k}": v.half() for k, v in depth_model.state_dict().items()}
    path = write_safetensors(tmp_path / "512-depth-ema.safetensors", {**state_dict("depth"), **weights})

    class LatentDepth2ImageDiffusion(torch.nn.Module):
        dtype = torch.float32

        def __init__(self) -> None:
            super().__init__()
            self.depth_model = build_random_dpt_hybrid(seed=1)  # what ldm built, without the checkpoint's
            self.sd_checkpoint_info = types.SimpleNamespace(filename=str(path), sha256=None, name_for_extra="d")

    model = LatentDepth2ImageDiffusion()
    module, _ = load_script("reforge", sd_model=model)
    key = next(iter(weights)).removeprefix("depth_model.")
    assert not torch.equal(model.depth_model.state_dict()[key], weights[f"depth_model.{key}"].float())
    p = Img2Img(model, [make_scene(96, 96, 1)], init_latent=torch.zeros(1, 4, 12, 12))
    module.Depth2ImgScript().process(p, True)
    assert "depth2img_image_conditioning" in vars(p) and "img2img_image_conditioning" not in vars(p)
    for name, value in model.depth_model.state_dict().items():
        assert torch.equal(value, weights[f"depth_model.{name}"].float()), name
    marker = model.depth_model.depth2img_weights
    module.Depth2ImgScript().process(Img2Img(model, [make_scene(96, 96, 2)]), True)
    assert model.depth_model.depth2img_weights is marker  # loaded once per model and file


# --- Forge: the MiDaS code Forge ships ----------------------------------------------------------------
@pytest.mark.slow
def test_forge_midas_copy_builds_the_checkpoints_dpt_hybrid(monkeypatch, tmp_path, depth_model):
    """No ldm: the DPT-Hybrid comes from extensions-builtin/forge_legacy_preprocessors (Forge's copy of
    ldm/modules/midas/midas, here copied from ldm itself), imported by path under a private name,
    with the checkpoint's own depth_model.* weights; it estimates exactly like the reference."""
    import ldm.modules.midas.midas as ldm_midas

    folder = tmp_path / forge.FORGE_MIDAS
    folder.mkdir(parents=True)
    for name in ("__init__.py", "base_model.py", "blocks.py", "dpt_depth.py", "vit.py"):
        shutil.copy(Path(ldm_midas.__path__[0]) / name, folder / name)
    weights = {f"depth_model.{k}": v for k, v in depth_model.state_dict().items()}
    path = write_safetensors(tmp_path / "depth.safetensors", {**state_dict("depth"), **weights})
    forge_fakes.install(monkeypatch, tmp_path, kind="forge")
    monkeypatch.delitem(sys.modules, forge._PRIVATE_PACKAGE, raising=False)
    forge._patchers.clear()
    try:
        memory = sys.modules["backend.memory_management"]
        patcher = forge.depth_patcher(StableDiffusion2(str(path)), offload=lambda: True)
        network = patcher.model
        assert type(network).__module__ == f"{forge._PRIVATE_PACKAGE}.dpt_depth"
        images = image_to_tensor([make_scene(96, 96, 1)])
        ours = DepthEstimator(network).estimate(images)
        assert not memory.current_loaded_models  # loaded for the forward, unloaded after
        reference = DepthEstimator(depth_model).estimate(images)
        assert torch.allclose(ours, reference, rtol=1e-4, atol=1e-4)
    finally:
        forge._patchers.clear()
        sys.modules.pop(forge._PRIVATE_PACKAGE, None)


# --- Forge before its first generation ------------------------------------------------------------------
class FakeInitialModel:  # modules/sd_models.py:385: shared.sd_model until the first generation loads one
    cond_stage_model = None


def select(fakes, filename):
    """modules_forge/main_entry.py:229: the selected checkpoint in model_data.forge_loading_parameters."""
    sd_models = fakes.webui.modules["modules.sd_models"]
    info = types.SimpleNamespace(filename=str(filename), name=Path(filename).name, sha256=None)
    sd_models.model_data = types.SimpleNamespace(forge_loading_parameters={"checkpoint_info": info})
    return info


def test_preview_and_estimate_before_forge_loads_the_selected_depth_checkpoint(
    load_script, checkpoint, fast_midas, dpt_head
):
    """Issue 19: freshly started Forge answered 'not a depth model' for a selected depth checkpoint.
    The preview and the route build its MiDaS from the file; the generation after the load hits the cache."""
    module, fakes = load_script("forge", sd_model=FakeInitialModel())
    select(fakes, checkpoint)
    script = module.Depth2ImgScript()
    gr = fakes.webui.gradio
    for elem_id in ("img2img_width", "img2img_height"):
        script.after_component(gr.Number(128, elem_id=elem_id), elem_id=elem_id)
    foreground, background = forge_fakes.forge_canvas(script, gr, "img2img_image")
    script.ui(True)
    button = next(c for c in webui_fakes.Component.created if c.elem_id == "depth2img_img2img_preview_button")
    listener = button.listeners["click"][0]
    picture = make_scene(128, 128, 8)
    values = {c: c.value for c in listener["inputs"]}
    values.update({listener["inputs"][0]: 0, background: picture})
    shown, note = listener["fn"](*values.values())
    assert shown["visible"] and shown["value"].size == (128, 128), note
    assert "Depth for 128x128 (dpt-hybrid at 384)" in note and fast_midas == [str(checkpoint)]

    from lib_depth.webui import api
    from lib_depth.webui.depth_model import CACHE

    answer = api.estimate({"image": encode_png(picture), "width": 128, "height": 128})
    assert (answer["width"], answer["height"]) == (128, 128) and answer["depth"]
    # the first generation loads the checkpoint: its estimate is the preview's (same file version, same key)
    model = StableDiffusion2(str(checkpoint))
    model.sd_checkpoint_info = fakes.webui.modules["modules.sd_models"].model_data.forge_loading_parameters[
        "checkpoint_info"
    ]
    p = Img2Img(model, [picture])
    script.process(p, True)
    misses = CACHE.stats().misses
    img2img_init(p, image_to_tensor(picture) * 0.5 + 0.5)
    assert CACHE.stats().misses == misses and fast_midas == [str(checkpoint)]


def test_before_the_load_a_depth_checkpoint_without_midas_says_what_is_wrong(load_script, tmp_path):
    from lib_depth.webui import api
    from lib_depth.webui.payload import PayloadError

    _, fakes = load_script("forge", sd_model=FakeInitialModel())
    depth_without_midas = {k: v for k, v in state_dict("depth").items() if not k.startswith("depth_model.")}
    select(fakes, write_safetensors(tmp_path / "no-midas-depth.safetensors", depth_without_midas))
    with pytest.raises(ValueError, match="no-midas-depth.safetensors: holds no MiDaS depth weights") as raised:
        api.estimate({"image": encode_png(make_scene(64, 64, 1))})
    assert "not a depth model" not in str(raised.value)
    select(fakes, write_safetensors(tmp_path / "sd21.safetensors", state_dict("sd2")))
    with pytest.raises(PayloadError, match="not a depth model"):  # a checkpoint that is not one: said so
        api.estimate({"image": encode_png(make_scene(64, 64, 1))})
