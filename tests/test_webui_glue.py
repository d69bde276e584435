"""lib_depth.webui: the glue's helpers, with plain objects and the sys.modules fakes of
tests/webui_fakes.py (the WebUI v1.10.1's own API surface)."""

from __future__ import annotations

import types
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
import webui_fakes
from PIL import Image
from scenes import make_scene

from lib_depth import DepthCache, DepthEstimator, DepthSettings
from lib_depth.run import DepthRun
from lib_depth.webui.depth_model import checkpoint_key, is_depth_model, placed
from lib_depth.webui.prepare import prepare_image, prepare_init_image, prepared_mask
from lib_depth.webui.preview import Inpaint, request_conditioning, tab_image_and_mask
from lib_depth.webui.saving import depth_map_for_saved_image, depth_map_path_for


def conditioning_for_request(run, **request):
    return request_conditioning(run, **request)[0]


class LatentDepth2ImageDiffusion(torch.nn.Module):  # the class name is what identifies the model
    def __init__(self, depth_model):
        super().__init__()
        self.depth_model = depth_model
        self.sd_checkpoint_info = types.SimpleNamespace(sha256="abc123", filename="/m/depth.safetensors")


class LatentDiffusion(torch.nn.Module):
    pass


@pytest.fixture
def webui_modules(monkeypatch):
    return webui_fakes.install(monkeypatch)


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
    run = DepthRun(DepthSettings(), DepthEstimator(dpt_head, cache=cache))
    first = conditioning_for_request(run, init_image=make_scene(160, 120), width=128, height=96)
    assert first.shape == (1, 1, 12, 16)
    again = conditioning_for_request(run, init_image=make_scene(160, 120), width=128, height=96)
    assert torch.equal(first, again) and cache.stats().hits == 1
    rounded = request_conditioning(run, init_image=make_scene(160, 120), width=100, height=99)[1]
    assert (rounded.width, rounded.height) == (96, 96)  # rounded down as the WebUI's latent is
    with pytest.raises(ValueError, match="too small"):
        conditioning_for_request(run, init_image=make_scene(160, 120), width=56, height=96)
    with pytest.raises(ValueError, match="init image is needed"):
        conditioning_for_request(run, width=128, height=96)


def test_conditioning_for_request_from_a_map(webui_modules):
    map_ = Image.fromarray(np.tile(np.arange(128, dtype=np.uint16) * 500, (64, 1)))
    run = DepthRun(DepthSettings(source="upload", invert=True), None, map_)
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
    run = DepthRun(DepthSettings(save_depth=True), None)
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

    import lib_depth.webui.checkpoints as files
    import lib_depth.webui.status as glue

    path = write_safetensors(tmp_path / "d.safetensors", state_dict("depth"))
    reads = []
    real = files.inspect_checkpoint
    monkeypatch.setattr(files, "inspect_checkpoint", lambda p: reads.append(p) or real(p))
    first = glue.doctor_rows([str(path)])
    assert glue.doctor_rows([str(path)]) == first and len(reads) == 1
    assert first[0].ok and files.checkpoint_has_depth_weights(path) is True and len(reads) == 1
    write_safetensors(path, state_dict("sd2"))  # a new file version is read again
    assert files.checkpoint_has_depth_weights(path) is False and len(reads) == 2


def test_status_line(tmp_path):
    from checkpoints import state_dict, write_safetensors

    from lib_depth.models.model_config import config_path_for
    from lib_depth.webui.status import doctor_rows, status_line

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


def prepare_request_image(
    image, *, width, height, mask=None, only_masked=False, padding=32, invert_mask=False, fill=False, resize_mode=0
):
    """The preview's preparation, step by step as request_conditioning takes it."""
    from lib_depth.webui.prepare import only_masked_region

    mask = prepared_mask(mask, invert_mask=invert_mask) if mask is not None else None
    region = only_masked_region(mask, padding=padding, width=width, height=height) if only_masked else None
    return prepare_image(
        image, width=width, height=height, resize_mode=resize_mode, region=region, fill_mask=mask if fill else None
    )


def test_request_image_follows_only_masked_crop_invert_and_fill(webui_modules):
    image = make_scene(256, 256, 5)
    mask = Image.new("L", (256, 256), 0)
    mask.paste(255, (64, 64, 128, 128))
    cropped = prepare_request_image(image, width=128, height=128, mask=mask, only_masked=True, padding=0)
    expected = image.crop((64, 64, 128, 128)).resize((128, 128), resample=Image.LANCZOS)
    assert np.array_equal(np.asarray(cropped), np.asarray(expected))
    whole = prepare_request_image(image, width=128, height=128, mask=mask, only_masked=False)
    assert np.array_equal(np.asarray(whole), np.asarray(image.resize((128, 128), resample=Image.LANCZOS)))
    filled = prepare_request_image(image, width=128, height=128, mask=mask, only_masked=True, padding=0, fill=True)
    assert np.asarray(filled).std() < np.asarray(cropped).std() / 4  # the whole crop is masked: all smeared
    inverted = prepare_request_image(image, width=128, height=128, mask=mask, invert_mask=True, fill=True)
    plain = np.asarray(whole).astype(int)
    assert (np.asarray(inverted)[40, 40] == plain[40, 40]).all()  # inside the square is kept now
    assert (np.abs(np.asarray(inverted)[100, 100] - plain[100, 100]) > 0).any()  # outside it is filled

    assert tab_image_and_mask(0, {"init": image}) == (image, None)
    assert tab_image_and_mask(4, {"inpaint_base": image, "inpaint_mask": mask}) == (image, mask)
    assert tab_image_and_mask(3, {"inpaint_sketch": image}) == (image, None)
    painted = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    painted.paste((255, 255, 255, 255), (0, 0, 32, 32))
    init, binary = tab_image_and_mask(2, {"inpaint": {"image": image, "mask": painted}})
    assert init is image and binary.mode == "L" and binary.getbbox() == (0, 0, 32, 32)  # create_binary_mask


def test_preview_conditioning_uses_the_same_crop_as_the_generation(webui_modules, dpt_head):
    image = make_scene(256, 256, 6)
    mask = Image.new("L", (256, 256), 0)
    mask.paste(255, (0, 128, 128, 256))
    run = DepthRun(DepthSettings(), DepthEstimator(dpt_head))
    preview, geometry = request_conditioning(
        run, init_image=image, width=128, height=128, inpaint=Inpaint(mask, only_masked=True, padding=0)
    )
    assert geometry.crop == (0, 128, 128, 256) and geometry.init_size == (256, 256)
    crop = prepare_request_image(image, width=128, height=128, mask=mask, only_masked=True, padding=0)
    from lib_depth import depth_to_conditioning, image_to_tensor

    expected = depth_to_conditioning(DepthEstimator(dpt_head).estimate(image_to_tensor(crop)), (16, 16))
    assert torch.allclose(preview, expected, atol=1e-6)
    # an uploaded map previews with the same crop the generation applies (p.paste_to)
    step = Image.fromarray(np.tile(np.where(np.arange(256) < 64, 0, 65535).astype(np.uint16), (256, 1)))
    upload = DepthRun(DepthSettings(source="upload"), None, step)
    mapped, _ = request_conditioning(upload, width=128, height=128, inpaint=Inpaint(mask, only_masked=True, padding=0))
    column = mapped[0, 0, 8]
    assert column[:7].max() < 0 < column[9:].min()  # the step at x=64 of the crop 0..128: the middle


def test_saving_a_depth_map_never_replaces_a_file(tmp_path):
    from types import SimpleNamespace

    from lib_depth.webui.saving import on_image_saved

    run = DepthRun(DepthSettings(save_depth=True), None)
    run.used.append(torch.full((1, 1, 8, 8), 1.0))
    output = tmp_path / "00001-7.png"
    (tmp_path / "00001-7-depth.png").write_bytes(b"the user's own file")
    p = Processed(str(tmp_path), depth2img=run)
    on_image_saved(SimpleNamespace(p=p, filename=str(output), image=Image.new("RGB", (64, 64))))
    assert (tmp_path / "00001-7-depth.png").read_bytes() == b"the user's own file"
    assert Image.open(tmp_path / "00001-7-depth-1.png").mode.startswith("I")
