"""The estimator registry, depth resolution, and a DepthEstimator for any registry entry."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import CountingModule
from ldm.modules.midas.midas.transforms import Resize

from lib_depth import DepthCache, DepthEstimator, midas_input_size, prepare_midas_input
from lib_depth.depth.estimators import (
    DEFAULT_ESTIMATOR,
    ESTIMATOR_NAMES,
    ESTIMATORS,
    WEIGHTS_SUBDIR,
    find_weights,
    get_estimator,
)

DAV2 = ("depth-anything-v2-small", "depth-anything-v2-base", "depth-anything-v2-large")


def test_registry_entries_and_licences():
    assert ("dpt-hybrid", *DAV2) == ESTIMATOR_NAMES and DEFAULT_ESTIMATOR == "dpt-hybrid"
    hybrid = get_estimator("dpt-hybrid")
    assert not hybrid.needs_weights and hybrid.default_resolution == 384
    with pytest.raises(ValueError, match="inside the Stable Diffusion checkpoint"):
        hybrid.load("anything.pth")
    assert get_estimator("depth-anything-v2-small").licence == "Apache-2.0"
    assert get_estimator("depth-anything-v2-small").commercial_use
    for name in DAV2[1:]:
        assert get_estimator(name).licence == "CC-BY-NC-4.0" and not get_estimator(name).commercial_use
    for name in DAV2:
        spec = get_estimator(name)
        encoder = {"small": "vits", "base": "vitb", "large": "vitl"}[name.rsplit("-", 1)[1]]
        original, hf = spec.weights
        assert (original.file_name, original.layout) == (f"depth_anything_v2_{encoder}.pth", "original")
        assert (hf.file_name, hf.layout) == (f"depth_anything_v2_{encoder}-hf.safetensors", "hf")
        assert hf.hub_path == "model.safetensors"
        assert hf.hub_repo == original.hub_repo + "-hf"
        assert original.url == f"https://huggingface.co/{original.hub_repo}/resolve/main/{original.hub_path}"
        for weights in spec.weights:
            assert weights.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", weights.sha256)


def test_unknown_estimator_lists_the_names():
    with pytest.raises(ValueError, match="depth estimator 'midas-v3' is unknown; choose one of: dpt-hybrid, depth-any"):
        get_estimator("midas-v3")
    with pytest.raises(ValueError, match="unknown"):
        DepthEstimator(torch.nn.Identity(), estimator="zoe")


@pytest.mark.parametrize(
    "name,good,bad",
    [
        ("dpt-hybrid", [384, 512, 768, 1024], [383, 448, 640, 1280, 518]),
        ("depth-anything-v2-small", [518, 140, 1022, 756], [126, 500, 1036, 512, 384]),
        ("depth-anything-v2-large", [518, 994], [0, -14, 1050]),
    ],
)
def test_resolution_validation(name, good, bad):
    spec = get_estimator(name)
    assert spec.check_resolution(None) == spec.default_resolution
    for resolution in good:
        assert spec.check_resolution(resolution) == resolution
    for resolution in bad:
        with pytest.raises(ValueError, match=f"depth resolution {resolution} is not available for {name}: use "):
            spec.check_resolution(resolution)
    for wrong_type in ("518", 518.5, True, None.__class__):
        with pytest.raises(ValueError, match="expected a whole number of pixels"):
            spec.check_resolution(wrong_type)
    value = spec.check_resolution(float(spec.default_resolution))  # a slider's 518.0
    assert value == spec.default_resolution and type(value) is int
    assert type(spec.check_resolution(np.int64(good[0]))) is int


def test_bad_resolution_fails_when_the_estimator_is_made():
    with pytest.raises(ValueError, match=r"use a multiple of 14 from 140 to 1022 \(default 518\)"):
        DepthEstimator(torch.nn.Identity(), estimator="depth-anything-v2-small", resolution=512)
    with pytest.raises(ValueError, match=r"use one of 384, 512, 768, 1024 \(default 384\)"):
        DepthEstimator(torch.nn.Identity(), resolution=518)


@pytest.mark.parametrize("resolution", [384, 512, 768, 1024])
@pytest.mark.parametrize("height,width", [(512, 512), (600, 1000), (1080, 1920), (333, 90)])
def test_midas_size_rule_at_each_resolution_equals_reference(height, width, resolution):
    reference = Resize(
        resolution, resolution, keep_aspect_ratio=True, ensure_multiple_of=32, resize_method="minimal"
    )
    expected = tuple(max(32, int(side)) for side in reversed(reference.get_size(width, height)))
    assert midas_input_size(height, width, resolution) == expected


def test_midas_default_resolution_is_the_trained_one(scene_batch):
    images = scene_batch(300, 200, seeds=(1,))
    assert torch.equal(prepare_midas_input(images), prepare_midas_input(images, 384))
    assert prepare_midas_input(images, 768).shape == (1, 3, 512, 768)


def test_dpt_hybrid_runs_at_a_higher_resolution(depth_model, scene_batch):
    images = scene_batch(256, 256, seeds=(2,))
    depth = DepthEstimator(depth_model, resolution=512).estimate(images)
    assert depth.shape == (1, 1, 512, 512) and torch.isfinite(depth).all() and depth.std() > 0


def test_estimator_prepares_input_the_registry_way(dpt_head, scene_batch):
    counting = CountingModule(dpt_head)
    images = scene_batch(192, 128, seeds=(1, 2))
    depth = DepthEstimator(counting, estimator="depth-anything-v2-small", resolution=140).estimate(images)
    assert depth.shape == (2, 1, 140, 210)  # 192x128: shorter side to 140, multiples of 14
    depth = DepthEstimator(counting, estimator="depth-anything-v2-small").estimate(images)
    assert depth.shape == (2, 1, 518, 784)  # 777 rounds (half to even) to 56 patches
    assert DepthEstimator(counting).estimate(images).shape == (2, 1, 256, 384)


def test_cache_keys_differ_by_estimator_and_resolution(dpt_head, scene_batch):
    counting = CountingModule(dpt_head)
    cache = DepthCache()
    images = scene_batch(128, 128, seeds=(3,))
    choices = [
        ("dpt-hybrid", None),
        ("dpt-hybrid", 512),
        ("depth-anything-v2-small", None),
        ("depth-anything-v2-small", 266),
        ("depth-anything-v2-base", None),
    ]
    maps = [DepthEstimator(counting, cache=cache, estimator=e, resolution=r).estimate(images) for e, r in choices]
    assert counting.batch_sizes == [1] * len(choices) and cache.stats().entries == len(choices)
    assert [m.shape[-1] for m in maps] == [384, 512, 518, 266, 518]
    again = [DepthEstimator(counting, cache=cache, estimator=e, resolution=r).estimate(images) for e, r in choices]
    assert counting.batch_sizes == [1] * len(choices)  # every one a hit now
    for first, second in zip(maps, again, strict=True):
        assert torch.equal(first, second)
    switched = DepthEstimator(counting, cache=cache)
    switched.resolution = 768  # a changed field is honoured at the next estimate
    assert switched.estimate(images).shape[-1] == 768 and counting.batch_sizes == [1] * 6


def test_find_weights_looks_in_models_depth2img(tmp_path):
    assert find_weights(tmp_path, "depth-anything-v2-small") is None
    folder = tmp_path / WEIGHTS_SUBDIR
    folder.mkdir()
    hf = folder / "depth_anything_v2_vits-hf.safetensors"
    hf.write_bytes(b"x")
    assert find_weights(tmp_path, "depth-anything-v2-small") == hf
    original = folder / "depth_anything_v2_vits.pth"
    original.write_bytes(b"x")
    assert find_weights(tmp_path, "depth-anything-v2-small") == original  # the first listed wins
    assert find_weights(tmp_path, "depth-anything-v2-base") is None
    assert find_weights(tmp_path, "dpt-hybrid") is None
    assert set(ESTIMATORS) == set(ESTIMATOR_NAMES)


def test_depth_anything_v2_feeds_the_conditioning_like_dpt_hybrid(scene_batch):
    """The real network (small random config) through DepthEstimator into depth_to_conditioning."""
    from lib_depth import depth_to_conditioning
    from lib_depth.depth.estimators.depth_anything_v2 import DAv2Config, DepthAnythingV2

    torch.manual_seed(0)
    model = DepthAnythingV2(DAv2Config("tiny", 32, 4, 2, 16, (8, 16, 24, 32), (0, 1, 2, 3), head_features=8)).eval()
    with torch.no_grad():
        model.depth_head.scratch.output_conv2[2].bias.fill_(2.0)  # keep the last ReLU from flattening the map
    images = scene_batch(320, 256, seeds=(1, 2)).half()
    depth = DepthEstimator(model.bfloat16(), estimator="depth-anything-v2-small", resolution=182).estimate(images)
    assert depth.shape == (2, 1, 182, 224) and depth.dtype == torch.float32
    conditioning = depth_to_conditioning(depth, (32, 40))
    assert conditioning.shape == (2, 1, 32, 40) and torch.isfinite(conditioning).all()
    for index in range(2):  # per-image normalisation spans [-1, 1]
        assert conditioning[index].min() == -1 and conditioning[index].max() == 1
