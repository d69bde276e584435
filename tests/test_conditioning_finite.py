"""Every accepted combination of settings and depth gives a finite conditioning in [-1, 1].

Settings that are each in range can be degenerate together (near a float32 rounding step above far,
gamma extremes with blur, subnormal values); depth can be anything finite. A grid of the edges of
the accepted space plus a seeded random sweep over it; no case may give NaN, infinity or an error.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from lib_depth import DepthSettings, conditioning_to_previews, depth_to_conditioning
from lib_depth.fields import BY_NAME

GAMMA_RANGE = BY_NAME["gamma"].bounds  # the accepted space comes from the field table
BLUR_RANGE = BY_NAME["blur"].bounds

FLOAT32_MAX = torch.finfo(torch.float32).max
TINY = 5e-324  # smallest float64 subnormal: float32 rounds it to 0
LEVELS = [
    0.0,
    TINY,
    1e-45,
    1e-300,
    1e-38,
    1e-7,
    0.5 - 1e-9,
    0.5,
    math.nextafter(0.5, 1.0),
    math.nextafter(1.0, 0.0),
    1.0,
]
GAMMAS = [GAMMA_RANGE[0], math.nextafter(GAMMA_RANGE[0], 1.0), 1.0, math.nextafter(GAMMA_RANGE[1], 0.0), GAMMA_RANGE[1]]
BLURS = [0.0, TINY, 1e-300, 1e-30, 0.01, 0.3, 1.0, BLUR_RANGE[1]]


def depth_cases() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(10)
    step = torch.zeros(1, 1, 16, 16)
    step[..., 8:] = 1.0
    huge = torch.full((1, 1, 16, 16), -FLOAT32_MAX)
    huge[..., ::2] = FLOAT32_MAX
    halves = torch.full((1, 1, 16, 16), -FLOAT32_MAX)
    halves[..., 8:] = FLOAT32_MAX
    return {
        "random": torch.rand(1, 1, 16, 16, generator=generator),
        "step": step,
        "flat": torch.full((1, 1, 16, 16), 0.25),
        "float32 limits": huge,
        "float32 halves": halves,
        "huge positive": torch.rand(1, 1, 16, 16, generator=generator) * FLOAT32_MAX,
        "subnormal": step * 1e-45,
        "tiny span": 1.0 + step * 1e-7,
        "one pixel": torch.tensor([[3.0]]),
        "negative": -torch.rand(1, 1, 16, 16, generator=generator) * 1e20,
    }


def check_finite_conditioning(depth, latent, settings, image_size=None) -> None:
    conditioning = depth_to_conditioning(depth, latent, settings, image_size=image_size)
    label = f"{settings} latent={latent} image={image_size}"
    assert torch.isfinite(conditioning).all(), label
    assert conditioning.min() >= -1.0 and conditioning.max() <= 1.0, label
    half = depth_to_conditioning(depth, latent, settings, image_size=image_size, dtype=torch.float16)
    assert torch.isfinite(half).all(), label


@pytest.mark.parametrize("name", sorted(depth_cases()))
def test_edge_grid_never_gives_nan(name):
    depth = depth_cases()[name]
    pairs = [(near, far) for near in LEVELS for far in LEVELS if far < near]
    for near, far in pairs:
        for gamma in (GAMMAS[0], GAMMAS[-1]):
            for blur in (0.0, TINY, 1e-300, 1e-30, BLUR_RANGE[1]):
                for invert in (False, True):
                    settings = DepthSettings(near=near, far=far, gamma=gamma, blur=blur, invert=invert)
                    check_finite_conditioning(depth, (4, 4), settings)


def test_near_a_float32_step_above_far_is_a_step_not_nan():
    """The case users hit: near and far closer than float32 can tell apart."""
    depth = torch.linspace(0.0, 1.0, 64).expand(1, 1, 8, 64).clone()
    conditioning = depth_to_conditioning(depth, (8, 64), DepthSettings(near=1e-300, far=0.0))
    assert torch.isfinite(conditioning).all()
    # everything above far is nearest, far itself is farthest
    assert conditioning[0, 0, 0, 0].item() == -1.0 and (conditioning[0, 0, 0, 2:] == 1.0).all()
    previews = conditioning_to_previews(conditioning)
    assert previews[0].getextrema() == (0, 255)


def test_random_sweep_over_the_accepted_space():
    rng = random.Random(20261124)
    depths = list(depth_cases().values())
    for _ in range(1500):
        near = rng.choice(LEVELS + [rng.random()] * 3)
        far = rng.choice([level for level in LEVELS if level < near] + [rng.uniform(0.0, near)] * 3)
        if not far < near:
            continue
        gamma = rng.choice(GAMMAS + [math.exp(rng.uniform(math.log(GAMMA_RANGE[0]), math.log(GAMMA_RANGE[1])))] * 3)
        blur = rng.choice(BLURS + [rng.uniform(*BLUR_RANGE)] * 3)
        settings = DepthSettings(near=near, far=far, gamma=gamma, blur=blur, invert=rng.random() < 0.5)
        latent = rng.choice([(1, 1), (1, 5), (3, 2), (8, 8), (16, 16), (24, 20)])
        image_size = rng.choice([None, (1, 1), (latent[0] * 8, latent[1] * 8), (latent[0], latent[1])])
        check_finite_conditioning(rng.choice(depths), latent, settings, image_size)


@pytest.mark.parametrize(
    "latent,message",
    [
        ((0, 8), "latent_size"),
        ((8, -1), "latent_size"),
        ((8.5, 8), "latent_size"),
        ((2.5, 8), "latent_size"),
        ((True, 8), "latent_size"),
        ((8,), "latent_size"),
        ("8x8", "latent_size"),
        (8, "latent_size"),
    ],
)
def test_invalid_latent_size_is_a_clear_error(latent, message):
    with pytest.raises(ValueError, match=message):
        depth_to_conditioning(torch.rand(1, 1, 16, 16), latent)


@pytest.mark.parametrize("settings", [{"near": 0.5}, "invert=true", 1.0])
def test_wrong_settings_type_is_a_clear_error(settings):
    with pytest.raises(ValueError, match="settings: expected a DepthSettings"):
        depth_to_conditioning(torch.rand(1, 1, 16, 16), (8, 8), settings)


@pytest.mark.parametrize("image_size", [(0, 64), (64,), (64.5, 64)])
def test_invalid_image_size_is_a_clear_error(image_size):
    with pytest.raises(ValueError, match="image_size"):
        depth_to_conditioning(torch.rand(1, 1, 16, 16), (8, 8), DepthSettings(blur=4.0), image_size=image_size)


def test_latent_size_accepts_torch_size_and_lists():
    depth = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    expected = depth_to_conditioning(depth, (8, 8))
    assert torch.equal(depth_to_conditioning(depth, torch.Size([8, 8])), expected)
    assert torch.equal(depth_to_conditioning(depth, [8, 8]), expected)
    assert torch.equal(depth_to_conditioning(depth, (np.int64(8), np.int32(8))), expected)
