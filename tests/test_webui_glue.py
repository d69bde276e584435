"""lib_depth.webui: the WebUI-facing helpers, with plain objects and sys.modules fakes.

Fakes stand in only for the WebUI's own API surface, faithful to v1.10.1:
modules/images.py (flatten, resize_image), modules/shared.py (opts.img2img_background_color).
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from PIL import Image
from scenes import make_scene

from lib_depth import DepthCache, DepthEstimator, DepthSettings
from lib_depth.generation import DepthRun, WebUIHooks
from lib_depth.webui import (
    checkpoint_key,
    conditioning_for_request,
    depth_map_for_saved_image,
    depth_map_path_for,
    is_depth_model,
    placed,
    prepare_init_image,
)


class LatentDepth2ImageDiffusion(torch.nn.Module):  # the class name is what identifies the model
    def __init__(self, depth_model):
        super().__init__()
        self.depth_model = depth_model
        self.sd_checkpoint_info = types.SimpleNamespace(sha256="abc123", filename="/m/depth.safetensors")


class LatentDiffusion(torch.nn.Module):
    pass


@pytest.fixture
def webui_modules(monkeypatch):
    """modules.images and modules.shared, as far as the glue uses them."""

    def resize_image(resize_mode, im, width, height, upscaler_name=None):  # modules/images.py
        return im.resize((width, height))

    def flatten(img, bgcolor):  # modules/images.py: composite RGBA onto a background colour
        if img.mode == "RGBA":
            background = Image.new("RGBA", img.size, bgcolor)
            background.alpha_composite(img)
            img = background
        return img.convert("RGB")

    def get_crop_region_v2(mask, pad=0):  # modules/masking.py
        if box := mask.getbbox():
            x1, y1, x2, y2 = box
            return (max(x1 - pad, 0), max(y1 - pad, 0), min(x2 + pad, mask.size[0]), min(y2 + pad, mask.size[1]))
        return None

    def expand_crop_region(crop_region, processing_width, processing_height, image_width, image_height):
        x1, y1, x2, y2 = crop_region  # modules/masking.py; the tests use regions of the processing ratio
        assert (x2 - x1) * processing_height == (y2 - y1) * processing_width, "double covers equal ratios only"
        return crop_region

    def fill(image, mask):  # modules/masking.py smears colours into the masked area; grey stands for that
        return Image.composite(Image.new("RGB", image.size, (128, 128, 128)), image.convert("RGB"), mask.convert("L"))

    images = types.SimpleNamespace(resize_image=resize_image, flatten=flatten)
    masking = types.SimpleNamespace(
        get_crop_region_v2=get_crop_region_v2, expand_crop_region=expand_crop_region, fill=fill
    )
    shared = types.SimpleNamespace(opts=types.SimpleNamespace(img2img_background_color="#ffffff"))
    modules = types.ModuleType("modules")
    modules.images, modules.shared, modules.masking = images, shared, masking
    monkeypatch.setitem(sys.modules, "modules", modules)
    monkeypatch.setitem(sys.modules, "modules.images", images)
    monkeypatch.setitem(sys.modules, "modules.masking", masking)
    monkeypatch.setitem(sys.modules, "modules.shared", shared)
    return modules


def test_is_depth_model_and_key(dpt_head):
    model = LatentDepth2ImageDiffusion(dpt_head)
    assert is_depth_model(model) and not is_depth_model(LatentDiffusion()) and not is_depth_model(None)
    assert checkpoint_key(model) == "abc123"


def test_placed_moves_for_the_forward_and_offloads(dpt_head):
    moves = []
    module = types.SimpleNamespace(to=lambda device: moves.append(str(device)))
    with placed(module, device="cuda:0", offload=True, managed=False):
        pass
    assert moves == ["cuda:0", "cpu"]
    moves.clear()
    with placed(module, device="cuda:0", offload=True, managed=True):  # --lowvram hooks decide
        pass
    assert moves == []


def test_prepare_init_image_follows_resize_and_crop(webui_modules):
    p = types.SimpleNamespace(width=64, height=64, resize_mode=0, paste_to=None)
    image = Image.new("RGBA", (128, 96), (0, 0, 0, 0))
    prepared = prepare_init_image(image, p)
    assert prepared.size == (64, 64) and prepared.getpixel((0, 0)) == (255, 255, 255)  # flattened on white
    p.paste_to = (10, 10, 32, 32)
    assert prepare_init_image(image, p).size == (64, 64)


def test_conditioning_for_request_estimate_shares_the_cache(webui_modules, dpt_head):
    cache = DepthCache()
    run = DepthRun(DepthSettings(), DepthEstimator(dpt_head, cache=cache), WebUIHooks(prepare_init_image=None))
    first = conditioning_for_request(run, init_image=make_scene(160, 120), width=128, height=96)
    assert first.shape == (1, 1, 12, 16)
    again = conditioning_for_request(run, init_image=make_scene(160, 120), width=128, height=96)
    assert torch.equal(first, again) and cache.stats().hits == 1
    with pytest.raises(ValueError, match="multiples of 8"):
        conditioning_for_request(run, init_image=make_scene(160, 120), width=100, height=96)
    with pytest.raises(ValueError, match="init image is needed"):
        conditioning_for_request(run, width=128, height=96)


def test_conditioning_for_request_from_a_map(webui_modules):
    map_ = Image.fromarray(np.tile(np.arange(128, dtype=np.uint16) * 500, (64, 1)))
    run = DepthRun(DepthSettings(source="upload", invert=True), None, WebUIHooks(prepare_init_image=None), map_)
    conditioning = conditioning_for_request(run, width=128, height=64, resize_mode=0)
    assert conditioning.shape == (1, 1, 8, 16)
    assert conditioning[0, 0, 4, 0] > conditioning[0, 0, 4, -1]  # inverted: the left is near now


@dataclass
class Processed:
    outpath_samples: str
    batch_index: int = 0
    depth2img: object = None
    extra: dict = field(default_factory=dict)


def test_depth_map_for_saved_image(tmp_path):
    run = DepthRun(DepthSettings(save_depth=True), None, WebUIHooks(prepare_init_image=None))
    run.used.append(torch.stack([torch.full((1, 8, 8), -1.0), torch.full((1, 8, 8), 1.0)]))
    p = Processed(str(tmp_path / "txt2img-images"), batch_index=1, depth2img=run)
    output = tmp_path / "txt2img-images" / "2026-11-24" / "00007-42.png"
    path, image = depth_map_for_saved_image(p, str(output), (64, 48))
    assert path == output.with_name("00007-42-depth.png")
    assert image.size == (64, 48) and np.asarray(image).min() == 65535  # the second image's map
    assert depth_map_for_saved_image(p, str(tmp_path / "grids" / "grid-0001.png"), (64, 48)) is None
    before = tmp_path / "txt2img-images" / "00007-42-before-highres-fix.png"
    assert depth_map_for_saved_image(p, str(before), (64, 48)) is None
    run.settings = DepthSettings(save_depth=False)
    assert depth_map_for_saved_image(p, str(output), (64, 48)) is None
    assert depth_map_for_saved_image(Processed(str(tmp_path)), str(output), (64, 48)) is None


def test_depth_map_path():
    assert depth_map_path_for("/out/00012-1234.png").name == "00012-1234-depth.png"
    assert depth_map_path_for("/out/00012-1234.jpg").name == "00012-1234-depth.png"


def test_doctor_rows_read_each_file_version_once(tmp_path, monkeypatch):
    from checkpoints import state_dict, write_safetensors

    import lib_depth.webui as glue

    path = write_safetensors(tmp_path / "d.safetensors", state_dict("depth"))
    reads = []
    real = glue.inspect_checkpoint
    monkeypatch.setattr(glue, "inspect_checkpoint", lambda p: reads.append(p) or real(p))
    first = glue.doctor_rows([str(path)])
    assert glue.doctor_rows([str(path)]) == first and len(reads) == 1
    assert first[0].ok and glue.checkpoint_has_depth_weights(path) is True and len(reads) == 1
    write_safetensors(path, state_dict("sd2"))  # a new file version is read again
    assert glue.checkpoint_has_depth_weights(path) is False and len(reads) == 2


def test_status_line(tmp_path):
    from checkpoints import state_dict, write_safetensors

    from lib_depth.model_config import config_path_for
    from lib_depth.webui import doctor_rows, status_line

    assert status_line("512-depth-ema", []) == ("depth2img-ok", "Depth model loaded: 512-depth-ema")
    css, text = status_line(None, [])
    assert css == "depth2img-warn" and "None is installed" in text
    good = write_safetensors(tmp_path / "512-depth-ema.safetensors", state_dict("depth"))
    bad = write_safetensors(tmp_path / "renamed.safetensors", state_dict("depth"))
    config_path_for(bad).write_text("model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n")
    sd15 = write_safetensors(tmp_path / "sd15.safetensors", state_dict("sd1"))
    _, text = status_line(None, doctor_rows([str(good), str(bad), str(sd15)]))
    assert "Installed: 512-depth-ema.safetensors." in text
    assert "Needs attention: renamed.safetensors: run with --fix" in text and "sd15" not in text


def test_request_image_follows_only_masked_crop_invert_and_fill(webui_modules):
    from lib_depth.webui import prepare_request_image, tab_image_and_mask

    image = make_scene(256, 256, 5)
    mask = Image.new("L", (256, 256), 0)
    mask.paste(255, (64, 64, 128, 128))
    cropped = prepare_request_image(image, width=128, height=128, mask=mask, only_masked=True, padding=0)
    assert np.array_equal(np.asarray(cropped), np.asarray(image.crop((64, 64, 128, 128)).resize((128, 128))))
    whole = prepare_request_image(image, width=128, height=128, mask=mask, only_masked=False)
    assert np.array_equal(np.asarray(whole), np.asarray(image.resize((128, 128))))
    filled = prepare_request_image(image, width=128, height=128, mask=mask, only_masked=True, padding=0, fill=True)
    assert np.asarray(filled).std() == 0  # the whole crop is masked: all filled
    inverted = prepare_request_image(image, width=128, height=128, mask=mask, invert_mask=True, fill=True)
    assert np.asarray(inverted)[48, 48].tolist() != [128, 128, 128]  # inside the square is kept now
    assert np.asarray(inverted)[100, 100].tolist() == [128, 128, 128]  # outside it is filled

    assert tab_image_and_mask(0, {"init": image}) == (image, None)
    assert tab_image_and_mask(4, {"inpaint_base": image, "inpaint_mask": mask}) == (image, mask)
    assert tab_image_and_mask(3, {"inpaint_sketch": image}) == (image, None)


def test_preview_conditioning_uses_the_same_crop_as_the_generation(webui_modules, dpt_head):
    from lib_depth.webui import prepare_request_image

    image = make_scene(256, 256, 6)
    mask = Image.new("L", (256, 256), 0)
    mask.paste(255, (0, 128, 128, 256))
    run = DepthRun(DepthSettings(), DepthEstimator(dpt_head), WebUIHooks(prepare_init_image=None))
    preview = conditioning_for_request(
        run, init_image=image, width=128, height=128, mask=mask, only_masked=True, padding=0
    )
    crop = prepare_request_image(image, width=128, height=128, mask=mask, only_masked=True, padding=0)
    from lib_depth import depth_to_conditioning, image_to_tensor

    expected = depth_to_conditioning(DepthEstimator(dpt_head).estimate(image_to_tensor(crop)), (16, 16))
    assert torch.allclose(preview, expected, atol=1e-6)
