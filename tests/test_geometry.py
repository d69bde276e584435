"""Fitting user depth maps like the WebUI fits init images."""

from __future__ import annotations

import numpy as np
import pytest

from lib_depth.geometry import CROP_AND_RESIZE, JUST_RESIZE, LATENT_UPSCALE, RESIZE_AND_FILL, crop_region, fit_depth


def columns(width=200, height=100):
    return np.tile(np.arange(width, dtype=np.float32), (height, 1))


@pytest.mark.parametrize("mode", [JUST_RESIZE, LATENT_UPSCALE])
def test_just_resize_stretches(mode):
    fitted = fit_depth(columns(), 50, 50, mode)
    assert fitted.shape == (50, 50)
    assert fitted[0, 0] < 5 and fitted[0, -1] > 195


def test_crop_and_resize_keeps_the_centre():
    fitted = fit_depth(columns(), 50, 50, CROP_AND_RESIZE)  # 200x100 -> centre 100x100 -> 50x50
    assert fitted.shape == (50, 50)
    assert 49 < fitted[0, 0] < 53 and 146 < fitted[0, -1] < 150


def test_resize_and_fill_pads_from_the_edges():
    fitted = fit_depth(columns(100, 100), 200, 100, RESIZE_AND_FILL)  # fits 100 wide, fills 50 each side
    assert fitted.shape == (100, 200)
    assert np.allclose(fitted[:, :50], fitted[:, 50:51]) and np.allclose(fitted[:, 150:], fitted[:, 149:150])
    tall = fit_depth(columns(100, 100), 100, 200, RESIZE_AND_FILL)
    assert tall.shape == (200, 100) and np.allclose(tall[:50], tall[50])


def test_same_size_is_untouched_and_bad_mode_is_an_error():
    depth = columns(64, 64)
    assert fit_depth(depth, 64, 64, JUST_RESIZE) is depth
    with pytest.raises(ValueError, match="resize mode"):
        fit_depth(depth, 32, 32, 9)


def test_crop_region_scales_the_map_to_the_init_image_first():
    region = crop_region(columns(100, 50), (100, 0, 200, 100), (200, 100))  # the right half of a 200x100 image
    assert region.shape == (100, 100)
    assert region[0, 0] > 45 and region[0, -1] > 95
