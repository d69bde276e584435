"""Script arguments by position (UI, API) and by name (API), with errors naming the field."""

from __future__ import annotations

import pytest
from PIL import Image

from lib_depth import DepthSettings
from lib_depth.webui.args import ARG_NAMES, parse_script_args, read_script_args
from lib_depth.webui.payload import PayloadError, encode_png


def test_positional_like_the_ui():
    image = Image.new("L", (64, 64))
    request = parse_script_args([True, "upload", True, 0.9, 0.1, 2.0, 4.0, "filled", True, image])
    assert request.settings == DepthSettings(True, "upload", True, 0.9, 0.1, 2.0, 4.0, "filled", True)
    assert request.image.size == image.size and request.image.tobytes() == image.tobytes()


def test_fewer_positional_slots_take_defaults():
    assert parse_script_args([True]).settings == DepthSettings()
    assert parse_script_args([]).settings == DepthSettings()


def test_by_name_with_a_base64_map():
    map_ = Image.new("I;16", (64, 64))
    request = parse_script_args([{"source": "upload", "image": encode_png(map_), "gamma": 2}])
    assert request.settings.gamma == 2.0 and request.settings.source == "upload"
    assert request.image.size == (64, 64)
    data_url = "data:image/png;base64," + encode_png(map_)
    assert parse_script_args([{"image": data_url}]).image.size == (64, 64)


@pytest.mark.parametrize(
    "args,message",
    [
        ([{"colour": 1}], "unknown argument.*colour"),
        ([{"gamma": 50}], "gamma: 50 is outside"),
        ([True, "camera"], "source: expected one of"),
        ([{"image": "/etc/passwd"}], "depth2img image: expected base64 image data.*paths and URLs are not accepted"),
        ([{"image": "https://example.com/x.png"}], "paths and URLs are not accepted"),
        ([{"image": "bm90IGFuIGltYWdl"}], "depth2img image: not a readable image"),
        ([{"image": 42}], "expected base64 image data, got int"),
        ([None] * (len(ARG_NAMES) + 1), f"at most {len(ARG_NAMES)} arguments"),
    ],
)
def test_bad_arguments_name_the_field(args, message):
    with pytest.raises(PayloadError, match=message):
        parse_script_args(args)


def test_read_script_args_for_process():
    assert read_script_args([False]) == (None, None)  # disabled: nothing to do
    request, error = read_script_args([True, "estimate"])
    assert error is None and request.settings.enabled
    assert read_script_args([False, "camera"]) == (None, None)  # disabled and invalid: still nothing
    request, error = read_script_args([{"gamma": 0}])
    assert request is None and "gamma" in error  # by name implies enabled
    assert read_script_args([{"enabled": False, "gamma": 0}]) == (None, None)


def test_names_match_the_settings_and_the_image_slot():
    assert tuple(name for name in ARG_NAMES if name != "image") == tuple(DepthSettings().to_dict())
    assert ARG_NAMES[9] == "image"  # where it always was: positional callers keep working


def test_an_upload_from_the_accordion_is_turned_by_its_exif_orientation():
    """Like the WebUI's init images (modules/img2img.py exif_transpose): a phone photo's map stands up."""
    import io

    upright = Image.new("L", (64, 96))
    upright.paste(255, (0, 0, 64, 10))  # a bright band at the top
    rotated = upright.rotate(90, expand=True)  # stored sideways, with orientation 6 to turn it back
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    rotated.save(buffer, format="JPEG", exif=exif)
    request = parse_script_args([True, "upload", False, 1.0, 0.0, 1.0, 0.0, "original", False, Image.open(buffer)])
    assert request.image.size == (64, 96)
    assert request.image.getpixel((32, 2)) > 200 and request.image.getpixel((32, 90)) < 50
