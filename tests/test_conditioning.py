"""Depth -> conditioning: resize, per-image normalisation, flat and bad depth, every edit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lib_depth import DepthSettings, apply_edits, depth_to_conditioning, rescale_per_image


def ramp(height: int = 64, width: int = 64) -> torch.Tensor:
    """Depth rising left to right: far on the left, near on the right."""
    return torch.linspace(0.0, 5.0, width).expand(1, 1, height, width).clone()


def test_resize_is_bicubic_to_latent_size_and_normalised_per_image():
    depth = torch.rand(2, 1, 96, 128, generator=torch.Generator().manual_seed(0))
    depth[1] *= 10.0
    conditioning = depth_to_conditioning(depth, (24, 32))
    resized = F.interpolate(depth, size=(24, 32), mode="bicubic", align_corners=False)
    for index in range(2):
        low, high = resized[index].min(), resized[index].max()
        assert torch.allclose(conditioning[index], 2 * (resized[index] - low) / (high - low) - 1, atol=1e-6)
        assert conditioning[index].min().item() == pytest.approx(-1.0)
        assert conditioning[index].max().item() == pytest.approx(1.0)


def test_accepts_2d_3d_4d_depth_and_casts_to_requested_dtype():
    depth = torch.rand(64, 64, generator=torch.Generator().manual_seed(1))
    expected = depth_to_conditioning(depth[None, None], (8, 8))
    assert torch.equal(depth_to_conditioning(depth, (8, 8)), expected)
    assert torch.equal(depth_to_conditioning(depth[None], (8, 8)), expected)
    half = depth_to_conditioning(depth, (8, 8), dtype=torch.float16)
    assert half.dtype == torch.float16 and torch.allclose(half.float(), expected, atol=1e-3)


@pytest.mark.parametrize("value", [0.0, 3.25, 1e6])
def test_flat_depth_gives_zeros_never_nan(value):
    conditioning = depth_to_conditioning(torch.full((2, 1, 64, 64), value), (8, 8))
    assert torch.equal(conditioning, torch.zeros(2, 1, 8, 8))


def test_flat_image_in_batch_does_not_disturb_the_others():
    depth = torch.stack([torch.zeros(1, 64, 64), ramp()[0]])
    conditioning = depth_to_conditioning(depth, (8, 8))
    assert torch.equal(conditioning[0], torch.zeros(1, 8, 8))
    assert conditioning[1].min().item() == pytest.approx(-1.0) and conditioning[1].max().item() == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_depth_is_rejected(bad):
    depth = ramp()
    depth[0, 0, 3, 3] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        depth_to_conditioning(depth, (8, 8))


@pytest.mark.parametrize(
    "depth,message",
    [
        (torch.zeros(2, 3, 8, 8), "batch, 1, height, width"),
        (torch.zeros(0, 1, 8, 8), "empty"),
        ([1, 2], "torch.Tensor"),
    ],
)
def test_bad_depth_shapes(depth, message):
    with pytest.raises(ValueError, match=message):
        depth_to_conditioning(depth, (8, 8))


def test_no_edits_is_plain_normalisation_and_edits_change_it():
    depth = ramp()
    plain = depth_to_conditioning(depth, (8, 8))
    assert torch.equal(plain, depth_to_conditioning(depth, (8, 8), DepthSettings()))
    for settings in (
        DepthSettings(invert=True),
        DepthSettings(gamma=2.0),
        DepthSettings(near=0.8, far=0.2),
        DepthSettings(blur=16.0),
    ):
        assert not torch.allclose(plain, depth_to_conditioning(depth, (8, 8), settings)), settings


def test_invert_flips_near_and_far():
    plain = depth_to_conditioning(ramp(), (8, 8))
    inverted = depth_to_conditioning(ramp(), (8, 8), DepthSettings(invert=True))
    assert torch.allclose(inverted, -plain, atol=1e-6)


def test_levels_clip_then_rescale():
    unit = apply_edits(ramp(1, 101), DepthSettings(near=0.8, far=0.2))[0, 0, 0]
    x = torch.linspace(0, 1, 101)
    assert torch.allclose(unit, ((x - 0.2) / 0.6).clamp(0, 1), atol=1e-6)
    assert (unit[:20] == 0).all() and (unit[81:] == 1).all()


def test_gamma_bends_mid_depths():
    x = torch.linspace(0, 1, 101)
    assert torch.allclose(apply_edits(ramp(1, 101), DepthSettings(gamma=2.0))[0, 0, 0], x**2, atol=1e-6)
    assert torch.allclose(apply_edits(ramp(1, 101), DepthSettings(gamma=0.5))[0, 0, 0], x**0.5, atol=1e-6)


def test_blur_is_deterministic_scaled_to_latent_size_and_keeps_mean():
    step = torch.zeros(1, 1, 64, 64)
    step[..., 32:] = 1.0
    settings = DepthSettings(blur=16.0)
    first = depth_to_conditioning(step, (64, 64), settings, image_size=(512, 512))
    assert torch.equal(first, depth_to_conditioning(step, (64, 64), settings, image_size=(512, 512)))
    # blur is in image pixels: 16 px on a 512 px image is sigma 2 at latent size 64
    unit = apply_edits(step, settings, pixels_per_sample=8.0)
    edge = unit[0, 0, 32, 28:36]
    assert 0.0 < edge[0].item() < edge[-1].item() < 1.0
    assert unit.mean().item() == pytest.approx(0.5, abs=1e-4)
    wider = apply_edits(step, DepthSettings(blur=32.0), pixels_per_sample=8.0)
    assert wider[0, 0, 32, 28].item() > edge[0].item()  # larger radius spreads further


def test_edits_on_a_batch_are_per_image():
    depth = torch.cat([ramp(), ramp() * 100 + 7])
    conditioning = depth_to_conditioning(depth, (8, 8), DepthSettings(gamma=1.5, invert=True))
    assert torch.allclose(conditioning[0], conditioning[1], atol=1e-5)


def test_rescale_per_image_ranges():
    depth = torch.rand(3, 1, 5, 5, generator=torch.Generator().manual_seed(2)) * 9 - 4
    unit = rescale_per_image(depth, 0.0, 1.0)
    assert torch.allclose(unit.amin(dim=(1, 2, 3)), torch.zeros(3))
    assert torch.allclose(unit.amax(dim=(1, 2, 3)), torch.ones(3))
