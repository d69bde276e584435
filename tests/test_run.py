"""The engine's one path to the conditioning: Geometry (size, resize mode, crop) + DepthRun."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CountingModule
from PIL import Image
from scenes import make_scene

from lib_depth import DepthEstimator, DepthSettings, depth_to_conditioning, image_to_tensor
from lib_depth.geometry import CROP_AND_RESIZE, RESIZE_AND_FILL, Geometry, generation_size
from lib_depth.run import DepthInputError, DepthRun


def step_map(width=256, height=128, at=96) -> Image.Image:
    return Image.fromarray(np.tile(np.where(np.arange(width) < at, 0, 65535).astype(np.uint16), (height, 1)))


@pytest.mark.parametrize("size,expected", [((512, 512), (512, 512)), ((777, 333), (776, 328)), ((64, 64), (64, 64))])
def test_generation_size_rounds_down_like_the_latent(size, expected):
    assert generation_size(*size) == expected


@pytest.mark.parametrize("size", [(0, 512), (63, 512), (512, -8), (512.0, 512), (True, 512), ("512", 512)])
def test_generation_size_refuses_what_no_generation_has(size):
    with pytest.raises(ValueError, match="width/height"):
        generation_size(*size)


def test_geometry_checks_itself():
    with pytest.raises(ValueError, match="resize mode"):
        Geometry.for_size(128, 128, 7)
    with pytest.raises(ValueError, match="init image"):
        Geometry.for_size(128, 128, crop=(0, 0, 64, 64))
    assert Geometry.for_size(256, 128).latent == (16, 32)


def test_fit_follows_resize_mode_and_crop():
    depth = np.asarray(step_map(), dtype=np.float32) / 65535
    stretched = Geometry.for_size(128, 128).fit(depth)
    cropped = Geometry.for_size(128, 128, CROP_AND_RESIZE).fit(depth)
    filled = Geometry.for_size(128, 128, RESIZE_AND_FILL).fit(depth)
    assert int((stretched[64] > 0.5).argmax()) == 48  # 96/256 of 128
    assert int((cropped[64] > 0.5).argmax()) == 32  # x 64..192 kept: (96 - 64) / 128 of 128
    assert filled.shape == (128, 128) and filled[0, 64] == filled[40, 64]  # borders repeat the edge rows
    only_masked = Geometry.for_size(128, 128, crop=(64, 0, 128, 128), init_size=(256, 128)).fit(depth)
    assert 60 <= int((only_masked[64] > 0.5).argmax()) <= 68  # the step in the middle of x 64..128


def test_estimate_path_gives_each_image_its_own_depth(dpt_head):
    images = image_to_tensor([make_scene(128, 96, seed) for seed in (1, 2)])
    counting = CountingModule(dpt_head)
    run = DepthRun(DepthSettings(gamma=2.0), DepthEstimator(counting))
    conditioning = run.conditioning(Geometry.for_size(128, 96), images)
    for index in range(2):
        alone = depth_to_conditioning(
            DepthEstimator(dpt_head).estimate(images[index : index + 1]), (12, 16), DepthSettings(gamma=2.0)
        )
        assert torch.allclose(conditioning[index : index + 1], alone, atol=1e-6)
    assert counting.batch_sizes == [2] and len(run.used) == 1


def test_user_map_is_read_once_and_fitted_per_pass():
    run = DepthRun(DepthSettings(source="upload"), None, step_map())
    first = run.conditioning(Geometry.for_size(128, 64), batch=2)
    hires = run.conditioning(Geometry.for_size(256, 128), batch=2)
    assert first.shape == (2, 1, 8, 16) and hires.shape == (2, 1, 16, 32)
    assert torch.equal(first[0], first[1]) and run._user_depth is not None and len(run.used) == 2


def test_reference_photo_is_estimated_once(dpt_head):
    counting = CountingModule(dpt_head)
    run = DepthRun(DepthSettings(source="reference"), DepthEstimator(counting), make_scene(160, 120, 4))
    run.conditioning(Geometry.for_size(128, 96))
    run.conditioning(Geometry.for_size(256, 192))
    assert counting.batch_sizes == [1]


@pytest.mark.parametrize(
    "run,message",
    [
        (DepthRun(DepthSettings(source="estimate"), None), "txt2img has no init image"),
        (DepthRun(DepthSettings(source="upload"), None), "a depth map is needed"),
        (DepthRun(DepthSettings(source="reference"), None), "a reference image is needed"),
        (DepthRun(DepthSettings(), None, error="depth2img: gamma: 50 is outside 0.1..10"), "gamma: 50"),
        (DepthRun(DepthSettings(source="upload"), None, Image.new("L", (16, 16))), "16x16 pixels is too small"),
    ],
)
def test_what_is_missing_or_wrong_is_a_depth_input_error(run, message):
    with pytest.raises(DepthInputError, match=message):
        run.conditioning(Geometry.for_size(128, 96))


def test_estimating_without_an_estimator_says_so():
    run = DepthRun(DepthSettings(), None)
    with pytest.raises(DepthInputError, match="no depth estimator"):
        run.conditioning(Geometry.for_size(128, 96), torch.zeros(1, 3, 96, 128))
