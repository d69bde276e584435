"""Tiled high-resolution refinement: seam-free on a synthetic scene, exact on flat depth."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lib_depth import DepthEstimator
from lib_depth.depth.refine import align_to, refine_depth_tiled, tile_starts


class BrightnessDepth:
    """An estimator with a real one's two traits that tiling must handle: a fixed working
    resolution (`net` px on the short side) and an arbitrary scale and shift per call (relative
    depth). Its depth is the image's brightness, so a scene can be drawn from a known depth."""

    def __init__(self, net: int = 96, seed: int = 0) -> None:
        self.net = net
        self.generator = torch.Generator().manual_seed(seed)
        self.calls = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        height, width = images.shape[-2:]
        factor = self.net / min(height, width)
        small = F.interpolate(images.float(), size=(round(height * factor), round(width * factor)), mode="area")
        scale = 0.5 + 1.5 * torch.rand((), generator=self.generator)
        shift = 2 * torch.rand((), generator=self.generator) - 1
        return small.mean(1, keepdim=True) * scale + shift


def depth_scene(height: int, width: int) -> torch.Tensor:
    """[1, 3, H, W] in [-1, 1] whose brightness is a smooth depth: a tilted plane with gentle waves."""
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    depth = 0.55 * y + 0.35 * x + 0.01 * torch.sin(2 * math.pi * 3 * x) * torch.cos(2 * math.pi * 2 * y)
    return (depth * 1.6 - 0.8).expand(1, 3, height, width).clone()


def seam_bands(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Pixel ranges where tiles meet: each overlap band, 2 px wider each side."""
    starts = tile_starts(length, tile, overlap)
    ends = [start + tile for start in starts[:-1]]
    return [(max(0, s - 2), min(length - 1, e + 2)) for s, e in zip(starts[1:], ends, strict=True)]


def seam_ratio(depth: torch.Tensor, tile: int, overlap: int) -> float:
    """Largest gradient inside the seam bands over the image's mean gradient, worst of both axes."""
    worst = 0.0
    for axis in (-1, -2):
        gradient = depth[0, 0].diff(dim=axis).abs()
        typical = gradient.mean().item()
        for start, end in seam_bands(depth.shape[axis], tile, overlap):
            band = gradient[:, start:end] if axis == -1 else gradient[start:end, :]
            worst = max(worst, band.max().item() / typical)
    return worst


def test_tiles_cover_with_the_asked_overlap():
    for length, tile, overlap in [(1000, 512, 128), (2048, 512, 64), (513, 512, 128), (512, 512, 100)]:
        starts = tile_starts(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] + min(tile, length) == length
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:], strict=False))


def test_seam_free_on_a_synthetic_scene():
    images = depth_scene(1000, 1400)
    refined = refine_depth_tiled(BrightnessDepth(), images, tile=384, overlap=96)
    assert refined.shape == (1, 1, 1000, 1400) and refined.dtype == torch.float32
    assert seam_ratio(refined, 384, 96) <= 2.0, seam_ratio(refined, 384, 96)
    # the same tiles blended without alignment step at every seam: the check above can fail
    raw = refine_depth_tiled(BrightnessDepth(), images, tile=384, overlap=96, align=False)
    assert seam_ratio(raw, 384, 96) > 2.0


def test_refined_depth_follows_the_scene():
    images = depth_scene(900, 900)
    estimator = BrightnessDepth()
    refined = refine_depth_tiled(estimator, images, tile=320, overlap=80)
    truth = images[:, :1]
    correlation = torch.corrcoef(torch.stack([refined.flatten(), truth.flatten()]))[0, 1]
    assert correlation > 0.999
    assert estimator.calls == 1 + len(tile_starts(900, 320, 80)) ** 2


def test_flat_depth_agrees_exactly_with_the_base():
    images = torch.full((2, 3, 700, 1100), 0.5)  # exact in binary: the stand-in's map is exactly flat
    base = BrightnessDepth(seed=5)(images)
    refined = refine_depth_tiled(BrightnessDepth(seed=6), images, tile=256, overlap=64, base=base)
    expected = F.interpolate(base, size=(700, 1100), mode="bilinear", align_corners=False)
    assert torch.equal(refined, expected)
    alone = refine_depth_tiled(BrightnessDepth(seed=7), images, tile=256, overlap=64)
    own_base = BrightnessDepth(seed=7)(images)  # the same first call: the base it estimated itself
    assert torch.equal(alone, F.interpolate(own_base, size=(700, 1100), mode="bilinear", align_corners=False))


def test_alignment_is_least_squares_and_ignores_useless_tiles():
    reference = torch.rand(3, 1, 20, 30, generator=torch.Generator().manual_seed(0))
    depth = reference.clone()
    depth[0] = 3 * reference[0] - 2  # recoverable
    depth[1] = 0.7  # flat: no information
    depth[2] = -reference[2]  # runs against the reference
    aligned = align_to(depth, reference)
    assert torch.allclose(aligned[0], reference[0], atol=1e-6)
    assert torch.equal(aligned[1], reference[1]) and torch.equal(aligned[2], reference[2])


def test_small_image_is_the_base_and_bad_arguments_are_named():
    images = depth_scene(300, 400)
    estimator = BrightnessDepth()
    base = estimator(images)
    refined = refine_depth_tiled(estimator, images, tile=512, base=base)
    assert torch.equal(refined, F.interpolate(base, size=(300, 400), mode="bilinear", align_corners=False))
    with pytest.raises(ValueError, match="tile: 32 pixels is too small"):
        refine_depth_tiled(estimator, images, tile=32)
    with pytest.raises(ValueError, match="overlap: 256 must be between 1 and the tile size"):
        refine_depth_tiled(estimator, images, tile=256, overlap=256)


def test_with_a_registry_estimator_each_image_is_its_own(dpt_head, scene_batch):
    images = scene_batch(640, 480, seeds=(1, 2))
    estimator = DepthEstimator(dpt_head, estimator="depth-anything-v2-small", resolution=140)
    both = refine_depth_tiled(estimator.estimate, images, tile=256, overlap=64)
    assert both.shape == (2, 1, 480, 640) and torch.isfinite(both).all()
    alone = refine_depth_tiled(estimator.estimate, images[1:], tile=256, overlap=64)
    assert torch.allclose(both[1:], alone, atol=1e-5)
