"""Argument checks of the Python API: clear ValueErrors naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib_depth import DepthSettings
from lib_depth.settings import check_settings_type
from lib_depth.validation import MAX_LATENT_SIDE, check_latent_size


@pytest.mark.parametrize(
    "value, expected",
    [
        ((64, 96), (64, 96)),
        ([8, 8], (8, 8)),
        (torch.Size([32, 48]), (32, 48)),
        ((np.int64(5), 7), (5, 7)),
        ((64.0, 8), (64, 8)),
    ],
)
def test_good_latent_sizes(value, expected):
    assert check_latent_size(value) == expected


@pytest.mark.parametrize(
    "value, message",
    [
        ((0, 64), "height must be 1..65536 latent pixels, got 0"),
        ((64, -8), "width must be 1..65536 latent pixels, got -8"),
        ((64.5, 64), "height must be a whole number of latent pixels, got float 64.5"),
        ((64, "64"), "width must be a whole number of latent pixels, got str '64'"),
        ((True, 64), "height must be a whole number"),
        ((64, float("nan")), "width must be a whole number"),
        ((MAX_LATENT_SIDE + 1, 8), f"height must be 1..{MAX_LATENT_SIDE}"),
        ((64,), "expected (height, width) in latent pixels, got tuple (64,)"),
        (64, "expected (height, width) in latent pixels, got int 64"),
        (None, "got NoneType None"),
    ],
)
def test_bad_latent_sizes_name_the_argument(value, message):
    with pytest.raises(ValueError, match="^latent_size: ") as raised:
        check_latent_size(value)
    assert message in str(raised.value)


def test_settings_type():
    settings = DepthSettings(gamma=2.0)
    assert check_settings_type(settings) is settings and check_settings_type(None) is None
    with pytest.raises(ValueError, match=r"settings: expected a DepthSettings or None, got dict; build one with"):
        check_settings_type({"gamma": 2.0})
    with pytest.raises(ValueError, match="settings: expected a DepthSettings or None, got str"):
        check_settings_type("gamma=2")
