"""The generation glue on plain processing objects: img2img, inpaint, txt2img, hires, errors,
per-object install. WebUI modules are the fakes of tests/webui_fakes.py (v1.10.1).

The processing objects are dataclasses standing in for the WebUI's StableDiffusionProcessingImg2Img
and StableDiffusionProcessingTxt2Img (modules/processing.py, v1.10.1), with the fields the glue reads
and their class defaults (inpainting_fill 0 is "fill").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
import webui_fakes
from conftest import CountingModule
from PIL import Image
from scenes import make_scene

from lib_depth import DepthCache, DepthEstimator, DepthSettings, depth_to_conditioning, image_to_tensor
from lib_depth.run import DepthInputError, DepthRun
from lib_depth.webui.generation import install


@pytest.fixture(autouse=True)
def webui(monkeypatch):
    return webui_fakes.install(monkeypatch)


@dataclass
class Model:  # the fields of the loaded sd_model the glue reads
    dtype: torch.dtype = torch.float32


@dataclass
class Img2Img:  # the fields of StableDiffusionProcessingImg2Img the run reads
    init_images: list
    width: int = 128
    height: int = 128
    resize_mode: int = 0
    image_mask: Any = None
    inpainting_fill: int = 0
    paste_to: tuple | None = None
    init_latent: torch.Tensor | None = None
    extra_generation_params: dict = field(default_factory=dict)
    sd_model: Model = field(default_factory=Model)

    def depth2img_image_conditioning(self, source_image):
        raise AssertionError("the class method must not be called once a run is installed")


@dataclass
class Txt2Img:  # StableDiffusionProcessingTxt2Img has no init_images
    width: int = 128
    height: int = 96
    extra_generation_params: dict = field(default_factory=dict)
    sd_model: Model = field(default_factory=Model)

    def txt2img_image_conditioning(self, x, width=None, height=None):
        raise AssertionError("the class method must not be called once a run is installed")

    def depth2img_image_conditioning(self, source_image):
        raise AssertionError("the class method must not be called once a run is installed")


def make_run(model, settings=None, image=None) -> DepthRun:
    estimator = DepthEstimator(model, cache=DepthCache())
    return DepthRun(settings or DepthSettings(), estimator, image)


def depth_map(width=64, height=64) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    return Image.fromarray((x * 1000 + y * 10).astype(np.uint16))


def test_img2img_batch_gets_each_images_depth_at_latent_size(dpt_head):
    images = [make_scene(128, 128, seed) for seed in (1, 2)]
    source = image_to_tensor(images)
    p = Img2Img(images, init_latent=torch.zeros(2, 4, 16, 16), sd_model=Model(torch.float16))
    run = make_run(dpt_head)
    install(p, run)
    conditioning = p.depth2img_image_conditioning(source)
    assert conditioning.shape == (2, 1, 16, 16) and conditioning.dtype == torch.float16
    for index in range(2):
        alone = depth_to_conditioning(DepthEstimator(dpt_head).estimate(source[index : index + 1]), (16, 16))
        assert torch.allclose(conditioning[index].float(), alone[0], atol=2e-3)
    assert not torch.allclose(conditioning[0], conditioning[1])
    assert len(run.used) == 1


def test_install_changes_only_this_object():
    p, other = Img2Img([]), Img2Img([])
    install(p, DepthRun(DepthSettings(), None))
    assert "depth2img_image_conditioning" in vars(p)
    assert "depth2img_image_conditioning" not in vars(other)
    assert Img2Img.depth2img_image_conditioning is other.depth2img_image_conditioning.__func__


def test_inpaint_masked_area_original_uses_unfilled_pixels(dpt_head):
    original = make_scene(128, 128, 3)
    filled = Image.new("RGB", (128, 128), (127, 127, 127))  # what "Masked content: fill" might leave
    source = image_to_tensor(filled)
    mask = Image.new("L", (128, 128), 255)
    counting = CountingModule(dpt_head)
    for area, expected in (("original", image_to_tensor(original)), ("filled", source)):
        p = Img2Img([original], image_mask=mask, inpainting_fill=0, init_latent=torch.zeros(1, 4, 16, 16))
        run = make_run(counting, DepthSettings(masked_area=area))
        install(p, run)
        conditioning = p.depth2img_image_conditioning(source)
        reference = depth_to_conditioning(DepthEstimator(dpt_head).estimate(expected), (16, 16))
        assert torch.allclose(conditioning, reference, atol=1e-5), area
    # "Masked content: original" leaves the pixels alone: no second picture is prepared
    p = Img2Img([original], image_mask=mask, inpainting_fill=1, init_latent=torch.zeros(1, 4, 16, 16))
    install(p, make_run(dpt_head))
    assert torch.allclose(
        p.depth2img_image_conditioning(source),
        depth_to_conditioning(DepthEstimator(dpt_head).estimate(source), (16, 16)),
        atol=1e-5,
    )


def test_uploaded_map_follows_resize_mode_and_only_masked_crop():
    step = np.where(np.arange(256) < 96, 0, 65535).astype(np.uint16)
    wide = Image.fromarray(np.tile(step, (128, 1)))  # 256x128: far left of x=96, near right of it
    settings = DepthSettings(source="upload")
    p = Img2Img([make_scene(256, 128)], width=128, height=128, resize_mode=1, init_latent=torch.zeros(1, 4, 16, 16))
    run = DepthRun(settings, None, wide)
    install(p, run)
    cropped = p.depth2img_image_conditioning(torch.zeros(1, 3, 128, 128))
    p.resize_mode = 0
    run.used.clear()
    stretched = p.depth2img_image_conditioning(torch.zeros(1, 3, 128, 128))
    assert cropped.shape == stretched.shape == (1, 1, 16, 16)

    def edge(conditioning):  # first latent column on the near side of the step
        return int((conditioning[0, 0, 8] > 0).float().argmax())

    assert edge(stretched) == 6  # 96 / 256 of 16 columns
    assert edge(cropped) == 4  # crop and resize keeps x 64..192: (96 - 64) / 128 of 16
    p.paste_to = (64, 0, 64, 128)  # only masked: x 64..128 of the init image, step in the middle
    assert edge(p.depth2img_image_conditioning(torch.zeros(1, 3, 128, 128))) in (7, 8, 9)


def test_txt2img_from_depth_map_and_hires_pass_agree():
    p = Txt2Img()
    run = DepthRun(DepthSettings(source="upload"), None, depth_map(96, 72))
    install(p, run)
    first = p.txt2img_image_conditioning(torch.zeros(2, 4, 12, 16))
    assert first.shape == (2, 1, 12, 16) and torch.equal(first[0], first[1])
    hires = p.depth2img_image_conditioning(torch.zeros(2, 3, 192, 256))  # non-latent upscaler pass
    latent_hires = p.txt2img_image_conditioning(torch.zeros(2, 4, 24, 32))  # latent upscaler pass
    assert hires.shape == latent_hires.shape == (2, 1, 24, 32)
    assert torch.allclose(hires, latent_hires, atol=1e-6)
    downsized = torch.nn.functional.interpolate(hires, size=(12, 16), mode="area")
    assert (downsized - first).abs().mean() < 0.05  # the same depth at both sizes


def test_txt2img_reference_photo_is_estimated_once(dpt_head):
    counting = CountingModule(dpt_head)
    p = Txt2Img()
    run = make_run(counting, DepthSettings(source="reference"), make_scene(160, 120, 4))
    install(p, run)
    p.txt2img_image_conditioning(torch.zeros(1, 4, 12, 16))
    p.depth2img_image_conditioning(torch.zeros(1, 3, 192, 256))
    assert counting.batch_sizes == [1]


@pytest.mark.parametrize(
    "settings,message",
    [
        (DepthSettings(source="upload"), "a depth map is needed"),
        (DepthSettings(source="reference"), "a reference image is needed"),
        (DepthSettings(source="estimate"), "depth map is needed: txt2img has no init image"),
    ],
)
def test_txt2img_without_an_image_is_a_clear_error(settings, message):
    p = Txt2Img()
    install(p, DepthRun(settings, None))
    with pytest.raises(DepthInputError, match=message):
        p.txt2img_image_conditioning(torch.zeros(1, 4, 12, 16))


def test_pending_error_is_raised_and_translated():
    class Unprocessable(Exception):
        pass

    p = Txt2Img()
    run = DepthRun(DepthSettings(), None, error="depth2img: gamma: 50 ...")
    install(p, run, translate_error=lambda error: Unprocessable(str(error)))
    with pytest.raises(Unprocessable, match="gamma"):
        p.txt2img_image_conditioning(torch.zeros(1, 4, 12, 16))


def test_bad_uploaded_map_is_a_depth_input_error():
    p = Txt2Img()
    install(
        p,
        DepthRun(DepthSettings(source="upload"), None, Image.new("L", (16, 16))),
    )
    with pytest.raises(DepthInputError, match="depth map: 16x16 pixels is too small"):
        p.txt2img_image_conditioning(torch.zeros(1, 4, 12, 16))
