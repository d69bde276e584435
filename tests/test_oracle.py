"""Our depth conditioning against Stability's reference `ldm` on a real DPT-Hybrid (random weights)."""

from __future__ import annotations

import cv2
import pytest
import torch
from reference import reference_conditioning, reference_midas_input, webui_native_conditioning

from lib_depth import DepthEstimator, depth_to_conditioning, prepare_midas_input

RELATIVE_TOLERANCE = 1e-5
# OpenCV's vectorised float32 resize departs from its own scalar INTER_CUBIC by up to ~1e-5 per pixel
# (measured in test_opencv_simd_resize_departs_from_its_scalar_path); against that path we allow 3e-5.
SIMD_RELATIVE_TOLERANCE = 3e-5


@pytest.fixture
def opencv_scalar():
    """Run the reference with OpenCV's scalar resize, the exact algorithm both sides implement."""
    previous = cv2.useOptimized()
    cv2.setUseOptimized(False)
    yield
    cv2.setUseOptimized(previous)


def ours(model, images: torch.Tensor, latent_size) -> torch.Tensor:
    return depth_to_conditioning(DepthEstimator(model).estimate(images), latent_size)


def assert_relative_close(actual: torch.Tensor, expected: torch.Tensor, tolerance: float) -> None:
    error = (actual.float() - expected.float()).abs().max().item()
    scale = expected.float().abs().max().item()
    assert error <= tolerance * scale, f"max error {error:.3g} exceeds {tolerance:g} x {scale:.3g}"


@pytest.mark.parametrize("width,height", [(512, 512), (768, 512), (512, 768), (640, 448)])
def test_single_image_matches_reference(depth_model, scene_batch, width, height):
    images = scene_batch(width, height, seeds=(width + height,))
    latent = (height // 8, width // 8)
    actual = ours(depth_model, images, latent)
    assert actual.shape == (1, 1, *latent)
    assert actual.min().item() == pytest.approx(-1.0) and actual.max().item() == pytest.approx(1.0)

    # as the WebUI and Stability's scripts run it (OpenCV's default, vectorised resize)
    assert_relative_close(actual, reference_conditioning(depth_model, images, latent), SIMD_RELATIVE_TOLERANCE)
    previous = cv2.useOptimized()
    cv2.setUseOptimized(False)
    try:
        expected = reference_conditioning(depth_model, images, latent)
    finally:
        cv2.setUseOptimized(previous)
    assert_relative_close(actual, expected, RELATIVE_TOLERANCE)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_midas_input_equals_reference_transform(scene_batch, opencv_scalar, dtype):
    images = scene_batch(700, 333, seeds=(1, 2)).to(dtype)
    expected = torch.cat([reference_midas_input(image) for image in images])
    actual = prepare_midas_input(images)
    assert actual.shape == expected.shape == (2, 3, 384, 800)
    assert (actual - expected.float()).abs().max().item() < 2e-6


def test_opencv_simd_resize_departs_from_its_scalar_path(scene_batch):
    image = scene_batch(768, 512)[0]
    fast = reference_midas_input(image)
    previous = cv2.useOptimized()
    cv2.setUseOptimized(False)
    try:
        exact = reference_midas_input(image)
    finally:
        cv2.setUseOptimized(previous)
    assert (fast - exact).abs().max().item() < 2e-5  # the bound behind SIMD_RELATIVE_TOLERANCE


def test_batch_of_distinct_images_matches_reference_per_image(depth_model, scene_batch, opencv_scalar):
    images = scene_batch(512, 512, seeds=(11, 12, 13))
    expected = reference_conditioning(depth_model, images, (64, 64))
    actual = ours(depth_model, images, (64, 64))
    assert_relative_close(actual, expected, RELATIVE_TOLERANCE)
    for index in range(3):  # each slice is that image's own normalised depth
        assert actual[index].min().item() == pytest.approx(-1.0)
        assert actual[index].max().item() == pytest.approx(1.0)
    assert not torch.allclose(actual[0], actual[1])

    # The WebUI's native path gives every image the first image's depth (the bug we fix).
    native = webui_native_conditioning(depth_model, images, (64, 64))
    assert torch.allclose(native[0], native[1]) and torch.allclose(native[1], native[2])
    assert (native[1] - expected[1]).abs().max().item() > 0.1


def test_float16_input_matches_float32_result(depth_model, scene_batch):
    images = scene_batch(640, 448, seeds=(3,))
    full = ours(depth_model, images, (56, 80))
    half = ours(depth_model, images.half(), (56, 80))
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    assert_relative_close(half, full, 1e-2)


def test_reference_transform_crashes_on_float16_but_ours_does_not(scene_batch):
    """The crash users report: "cv2.resize ... src data type = 23 is not supported" (the wording
    varies with the OpenCV version; 4.11 says "func != 0 in function 'resize'")."""
    image = scene_batch(512, 512)[0].half()
    with pytest.raises(cv2.error, match="resize"):
        reference_midas_input(image)
    prepared = prepare_midas_input(image[None])
    assert prepared.dtype == torch.float32 and prepared.shape == (1, 3, 384, 384)


def test_identical_batch_runs_one_forward_of_one_image(counting_depth_model, scene_batch):
    image = scene_batch(512, 512, seeds=(5,))
    batch = image.repeat(3, 1, 1, 1)
    depth = DepthEstimator(counting_depth_model).estimate(batch)
    assert counting_depth_model.batch_sizes == [1]
    assert depth.shape == (3, 1, 384, 384)
    assert torch.equal(depth[0], depth[2])
