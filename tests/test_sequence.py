"""Normalisation across frame sequences: bit-identical when static, less flicker, scene cuts,
percentile ranges, the smoothed time constant, and never NaN."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F
from sequences import approaching_object, background_flicker, background_mask, other_shot, write_depth_maps

from lib_depth import DepthSettings, depth_to_conditioning, depth_to_tensor, load_depth_map
from lib_depth.conditioning import conditioning_sequence
from lib_depth.io.pairing import expand_image_inputs
from lib_depth.normalise import (
    DEFAULT_CUT_THRESHOLD,
    NORMALISE_MODES,
    DepthRange,
    SmoothedRanges,
    cut_scores,
    scene_cuts,
    sequence_ranges,
)

EDITS = DepthSettings(invert=True, near=0.85, far=0.1, gamma=1.7, blur=9.0)


def previous_depth_to_conditioning(depth, latent_size, settings, image_size=None):
    """The conditioning as released before sequences (per image only), kept as the oracle."""
    depth = depth if depth.ndim == 4 else depth[None, None] if depth.ndim == 2 else depth[:, None]
    depth = F.interpolate(depth.float(), size=latent_size, mode="bicubic", align_corners=False)

    def rescale(values, low, high):
        minimum, maximum = values.amin(dim=(1, 2, 3), keepdim=True), values.amax(dim=(1, 2, 3), keepdim=True)
        span = maximum - minimum
        flat = span <= torch.maximum(minimum.abs(), maximum.abs()) * 1e-6
        unit = (values - minimum) / torch.where(flat, torch.ones_like(span), span)
        return (high - low) * torch.where(flat, torch.full_like(unit, 0.5), unit) + low

    if settings.has_edits:
        depth = rescale(depth, 0.0, 1.0)
        if settings.invert:
            depth = 1.0 - depth
        if settings.near != 1.0 or settings.far != 0.0:
            depth = ((depth - settings.far) / (settings.near - settings.far)).clamp(0.0, 1.0)
        if settings.gamma != 1.0:
            depth = depth.pow(settings.gamma)
        if settings.blur > 0:
            sigma = settings.blur / ((image_size[0] if image_size else 8 * latent_size[0]) / latent_size[0])
            radius = max(1, math.ceil(3 * sigma))
            kernel = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
            kernel = kernel / kernel.sum()
            depth = F.conv2d(F.pad(depth, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
            depth = F.conv2d(F.pad(depth, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return rescale(depth, -1.0, 1.0)


def frames(count: int = 6, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 1, 96, 128, generator=generator) * 4.0 + 1.0
    return [base * (1.0 + 0.3 * index) + torch.rand(1, 1, 96, 128, generator=generator) for index in range(count)]


def test_per_image_is_bit_identical_to_the_previous_release():
    rng = random.Random(5)
    for index in range(40):
        settings = DepthSettings(
            invert=rng.random() < 0.5,
            near=rng.uniform(0.5, 1.0),
            far=rng.uniform(0.0, 0.45),
            gamma=rng.choice([1.0, rng.uniform(0.1, 10.0)]),
            blur=rng.choice([0.0, rng.uniform(0.0, 128.0)]),
        )
        depth = frames(1, seed=index)[0] * rng.choice([1e-3, 1.0, 1e4])
        image_size = rng.choice([None, (96, 128)])
        expected = previous_depth_to_conditioning(depth, (12, 16), settings, image_size)
        assert torch.equal(depth_to_conditioning(depth, (12, 16), settings, image_size=image_size), expected)
        ranges = sequence_ranges([depth], (12, 16), settings, image_size=image_size)
        got = depth_to_conditioning(depth, (12, 16), settings, image_size=image_size, depth_range=ranges[0])
        assert torch.equal(got, expected), settings


@pytest.mark.parametrize("settings", [DepthSettings(), EDITS], ids=["no edits", "edits"])
@pytest.mark.parametrize("percentile", [0.0, 0.5])
def test_static_sequence_is_bit_identical_in_every_mode(settings, percentile):
    still = frames(1)[0]
    reference = conditioning_sequence([still], (12, 16), settings, percentile=percentile)[0]
    if percentile == 0.0:
        assert torch.equal(reference, depth_to_conditioning(still, (12, 16), settings))
    for mode in NORMALISE_MODES:
        for conditioning in conditioning_sequence([still] * 5, (12, 16), settings, mode=mode, percentile=percentile):
            assert torch.equal(conditioning, reference), mode


@pytest.mark.parametrize("settings", [DepthSettings(), EDITS], ids=["no edits", "edits"])
def test_per_image_mode_matches_no_range_on_a_changing_sequence(settings):
    sequence = frames(5)
    per_image = conditioning_sequence(sequence, (12, 16), settings, mode="per image")
    for depth, conditioning in zip(sequence, per_image, strict=True):
        assert torch.equal(conditioning, depth_to_conditioning(depth, (12, 16), settings))
    batch = conditioning_sequence(torch.cat(sequence), (12, 16), settings, mode="shared")
    listed = conditioning_sequence(sequence, (12, 16), settings, mode="shared")
    assert all(torch.equal(a, b) for a, b in zip(batch, listed, strict=True))


def test_shared_gives_one_range_and_edits_keep_their_meaning():
    sequence = frames(4)
    ranges = sequence_ranges(sequence, (12, 16), mode="shared")
    assert len({(r.low, r.high) for r in ranges}) == 1
    conditionings = conditioning_sequence(sequence, (12, 16), mode="shared")
    # the nearest frame reaches +1, the farthest -1, each frame uses part of [-1, 1]
    assert max(float(c.max()) for c in conditionings) == 1.0 and min(float(c.min()) for c in conditionings) == -1.0
    assert float(conditionings[0].max()) < 0.5
    inverted = conditioning_sequence(sequence, (12, 16), DepthSettings(invert=True), mode="shared")
    for plain, flipped in zip(conditionings, inverted, strict=True):
        assert torch.allclose(flipped, -plain, atol=1e-5)  # invert flips the shared range, not each frame's


@pytest.fixture(scope="module")
def approaching(tmp_path_factory):
    """The flicker benchmark's sequence, written as 16-bit PNG depth maps and read back."""
    folder = tmp_path_factory.mktemp("maps")
    write_depth_maps(folder, approaching_object(24, 512, 512))
    return [depth_to_tensor(load_depth_map(path)) for path in expand_image_inputs([folder])]


@pytest.mark.parametrize("settings", [DepthSettings(), DepthSettings(gamma=1.5, blur=8.0)], ids=["plain", "edits"])
def test_shared_and_smoothed_cut_background_flicker_tenfold(approaching, settings):
    latent = (64, 64)
    mask = background_mask(24, 512, 512, latent)
    assert 1000 < int(mask.sum()) < 64 * 64
    flicker = {
        mode: background_flicker(
            conditioning_sequence(approaching, latent, settings, image_size=(512, 512), mode=mode), mask
        )
        for mode in NORMALISE_MODES
    }
    assert flicker["per image"] > 0.01  # the ball's approach visibly shifts the background
    assert flicker["shared"] * 10 <= flicker["per image"]
    assert flicker["smoothed"] * 10 <= flicker["per image"], flicker


def test_scene_cut_resets_the_smoothed_range():
    first = [torch.from_numpy(m) for m in approaching_object(10, 256, 256)]
    second = [torch.from_numpy(m) * 3.0 + 2.0 for m in other_shot(6, 256, 256)]
    sequence = first + second
    scores = cut_scores(sequence, (32, 32))
    assert max(scores[1:10] + scores[11:]) < DEFAULT_CUT_THRESHOLD < scores[10]
    assert scene_cuts(sequence, (32, 32)) == [0, 10]
    smoothed = conditioning_sequence(sequence, (32, 32), mode="smoothed")
    assert torch.equal(smoothed[10], depth_to_conditioning(sequence[10], (32, 32)))
    # after the cut nothing depends on the frames before it
    alone = conditioning_sequence(second, (32, 32), mode="smoothed")
    assert all(torch.equal(a, b) for a, b in zip(smoothed[10:], alone, strict=True))
    carried = conditioning_sequence(sequence, (32, 32), mode="smoothed", cut_threshold=None)
    assert not torch.equal(carried[10], smoothed[10])
    assert scene_cuts(sequence, (32, 32), None) == [0]


def test_smoothed_range_follows_a_step_with_the_time_constant():
    # a map whose depth doubles at frame 3 (same shape: not a cut); at latent size, so no resize
    ramp = torch.linspace(0.0, 1.0, 16).expand(1, 1, 16, 16).clone()
    sequence = [ramp] * 3 + [ramp * 2.0] * 30
    for tau in (1.0, 5.0, 20.0):
        highs = [r.high for r in sequence_ranges(sequence, (16, 16), mode="smoothed", time_constant=tau)]
        assert highs[:3] == [1.0, 1.0, 1.0]
        for after in (1, 5, 20, 30):
            assert highs[2 + after] == pytest.approx(2.0 - math.exp(-after / tau), abs=1e-12)
    slow = sequence_ranges(sequence, (16, 16), mode="smoothed", time_constant=100.0)
    fast = sequence_ranges(sequence, (16, 16), mode="smoothed", time_constant=2.0)
    assert slow[10].high < fast[10].high < 2.0
    # the frames nearer than the lagging range are clipped at +1, never beyond
    conditionings = conditioning_sequence(sequence, (16, 16), mode="smoothed", time_constant=5.0)
    assert float(conditionings[4].max()) == 1.0 and int((conditionings[4] == 1.0).sum()) > 16


def test_percentile_range_ignores_an_outlier_pixel():
    sequence = [depth.clone() for depth in frames(4)]
    sequence[2][0, 0, 40, 60] = 1000.0  # one hot pixel in one frame
    shared = conditioning_sequence(sequence, (96, 128), mode="shared")
    robust = conditioning_sequence(sequence, (96, 128), mode="shared", percentile=0.5)
    # the exact range is compressed by the outlier: every frame's values huddle near -1
    assert max(float(c.max()) for i, c in enumerate(shared) if i != 2) < -0.9
    assert max(float(c.max()) for c in robust) == 1.0 and min(float(c.min()) for c in robust) == -1.0
    assert float(robust[3].max()) > 0.5 and robust[2][0, 0, 40, 60] == 1.0
    per_image = conditioning_sequence(sequence, (96, 128), mode="per image", percentile=0.5)
    assert float(per_image[2].quantile(0.9)) > 0.5  # the frame with the outlier keeps its spread


def test_percentile_is_the_exact_nearest_rank():
    values = torch.arange(1000, dtype=torch.float32).reshape(1, 1, 20, 50)[:, :, torch.randperm(20)]
    (r,) = sequence_ranges([values], (20, 50), percentile=2.5)
    assert (r.low, r.high) == (25.0, 974.0)


@pytest.mark.parametrize(
    "options,message",
    [
        ({"mode": "global"}, "normalise: expected one of per image, shared, smoothed"),
        ({"time_constant": 0.0}, "time_constant"),
        ({"time_constant": float("inf")}, "time_constant"),
        ({"percentile": 50.0}, "percentile"),
        ({"percentile": -1.0}, "percentile"),
        ({"cut_threshold": 1.5}, "cut_threshold"),
        ({"latent_size": (0, 8)}, "latent_size"),
        ({"settings": {"gamma": 2}}, "settings"),
    ],
)
def test_bad_options_are_clear_errors(options, message):
    arguments = {"latent_size": (8, 8), **options}
    with pytest.raises(ValueError, match=message):
        sequence_ranges(frames(2), **arguments)


def test_empty_sequence_and_bad_frame_are_named():
    with pytest.raises(ValueError, match="depths: no frames"):
        sequence_ranges([], (8, 8))
    with pytest.raises(ValueError, match=r"depths\[1\]: contains NaN"):
        sequence_ranges([frames(1)[0], torch.full((8, 8), float("nan"))], (8, 8))


def test_a_range_is_checked_against_the_settings_it_was_measured_for():
    (measured,) = sequence_ranges(frames(1), (12, 16), EDITS)
    with pytest.raises(ValueError, match="depth_range: measured for"):
        depth_to_conditioning(frames(1)[0], (12, 16), DepthSettings(gamma=2.0), depth_range=measured)
    with pytest.raises(ValueError, match="depth_range: measured for"):
        depth_to_conditioning(frames(1)[0], (24, 32), EDITS, depth_range=measured)
    with pytest.raises(ValueError, match="must not be above"):
        DepthRange(2.0, 1.0)
    manual = depth_to_conditioning(frames(1)[0], (12, 16), depth_range=DepthRange(0.0, 100.0))
    assert float(manual.max()) < -0.8  # a hand-made range is used as given


def test_degenerate_sequences_never_give_nan():
    limit = torch.finfo(torch.float32).max
    halves = torch.full((1, 1, 16, 16), -limit)
    halves[..., 8:] = limit
    pool = [
        torch.zeros(16, 16),
        torch.full((16, 16), 7.0),
        halves,
        torch.rand(16, 16) * 1e-44,
        frames(1)[0],
        frames(1)[0] * 1e30,
    ]
    rng = random.Random(7)
    for _ in range(60):
        sequence = [rng.choice(pool) for _ in range(rng.randint(1, 5))]
        settings = rng.choice([DepthSettings(), EDITS, DepthSettings(near=1e-300, far=0.0, gamma=10.0, blur=128.0)])
        for mode in NORMALISE_MODES:
            conditionings = conditioning_sequence(
                sequence,
                (8, 8),
                settings,
                mode=mode,
                percentile=rng.choice([0.0, 0.5, 49.9]),
                time_constant=rng.choice([1e-9, 1.0, 1e9]),
            )
            for conditioning in conditionings:
                assert torch.isfinite(conditioning).all() and conditioning.abs().max() <= 1.0, (mode, settings)


@pytest.mark.parametrize("settings", [DepthSettings(), EDITS], ids=["no edits", "edits"])
def test_frame_by_frame_smoothing_equals_the_whole_sequence(settings):
    sequence = [torch.from_numpy(m) for m in approaching_object(6, 128, 128) + other_shot(4, 128, 128)]
    options = {"time_constant": 3.0, "percentile": 0.5}
    whole = sequence_ranges(sequence, (16, 16), settings, mode="smoothed", **options)
    online = SmoothedRanges((16, 16), settings, **options)
    cuts = []
    for index, depth in enumerate(sequence):
        assert online.next(depth) == whole[index]
        cuts.append(online.last_was_cut)
    assert [index for index, cut in enumerate(cuts) if cut] == scene_cuts(sequence, (16, 16))
    online.reset()
    assert online.next(sequence[3]) == sequence_ranges([sequence[3]], (16, 16), settings, **options)[0]
    with pytest.raises(ValueError, match="expected one frame, got a batch of 2"):
        online.next(torch.stack(sequence[:2]))
