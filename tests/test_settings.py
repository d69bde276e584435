"""The settings dataclass: defaults, validation, infotext and dict round trips."""

from __future__ import annotations

import pytest

from lib_depth import DepthSettings
from lib_depth.settings import INFOTEXT_KEY

EDITED = DepthSettings(
    source="upload", invert=True, near=0.9, far=0.123456789, gamma=2.5, blur=3.0, masked_area="filled", save_depth=True
)


def test_defaults_reproduce_the_model():
    settings = DepthSettings()
    assert (settings.source, settings.invert, settings.near, settings.far, settings.gamma, settings.blur) == (
        "estimate",
        False,
        1.0,
        0.0,
        1.0,
        0.0,
    )
    assert settings.masked_area == "original" and not settings.has_edits


@pytest.mark.parametrize("settings", [DepthSettings(), EDITED, DepthSettings(source="reference", gamma=0.1, blur=128)])
def test_dict_round_trip(settings):
    assert DepthSettings.from_dict(settings.to_dict()) == settings


@pytest.mark.parametrize("settings", [DepthSettings(), EDITED, DepthSettings(source="reference", gamma=0.1, blur=128)])
def test_infotext_round_trip_keeps_everything_that_shapes_the_image(settings):
    text = settings.to_infotext()
    assert "," not in text and ":" not in text  # the WebUI parser needs no quoting
    restored = DepthSettings.from_infotext(text)
    assert restored == DepthSettings(**{**settings.to_dict(), "save_depth": False})


def test_infotext_reads_like_this():
    assert EDITED.to_infotext() == (
        "source=upload; invert=true; near=0.9; far=0.123456789; gamma=2.5; blur=3; masked area=filled"
    )
    assert DepthSettings().to_infotext() == "source=estimate"
    shared = DepthSettings(estimator="depth-anything-v2-small", resolution=700, normalise="shared", percentile=0.5)
    assert shared.to_infotext() == (
        "source=estimate; estimator=depth-anything-v2-small; resolution=700; normalise=shared; percentile=0.5"
    )
    assert DepthSettings.from_infotext(shared.to_infotext()) == shared
    assert DepthSettings.from_infotext('"gamma=2; invert=true"') == DepthSettings(gamma=2.0, invert=True)


def test_integers_are_accepted_for_numbers():
    assert DepthSettings.from_dict({"blur": 4, "near": 1}).blur == 4.0


@pytest.mark.parametrize(
    "values,message",
    [
        ({"colour": 1}, "unknown field.*colour"),
        ({"source": "camera"}, "source: expected one of estimate, upload, reference"),
        ({"masked_area": "both"}, "masked_area"),
        ({"invert": "yes"}, "invert: expected true or false"),
        ({"invert": 1}, "invert: expected true or false"),
        ({"gamma": 0.0}, "gamma: 0 is outside 0.1..10"),
        ({"gamma": "2"}, "gamma: expected a finite number"),
        ({"gamma": float("nan")}, "gamma: expected a finite number"),
        ({"blur": -1}, "blur: -1 is outside 0..128"),
        ({"near": 1.5}, "near: 1.5 is outside 0..1"),
        ({"far": -0.1}, "far"),
        ({"near": 0.3, "far": 0.5}, "far .* must be below near"),
        ({"save_depth": None}, "save_depth"),
        ({"gamma": True}, "gamma: expected a finite number"),
    ],
)
def test_bad_values_name_the_field(values, message):
    with pytest.raises(ValueError, match=message):
        DepthSettings.from_dict(values)


def test_from_dict_needs_a_mapping():
    with pytest.raises(ValueError, match="expected an object"):
        DepthSettings.from_dict(["gamma", 2])


@pytest.mark.parametrize(
    "text,message",
    [
        ("gamma 2", "cannot read 'gamma 2'"),
        ("colour=red", "cannot read 'colour=red'"),
        ("gamma=steep", "gamma must be a number"),
        ("invert=maybe", "invert must be true or false"),
        ("gamma=50", "gamma: 50 is outside"),
    ],
)
def test_bad_infotext(text, message):
    with pytest.raises(ValueError, match=message):
        DepthSettings.from_infotext(text)
    assert INFOTEXT_KEY == "Depth2img"
