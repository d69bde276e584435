"""Images from clients: base64 only, sizes checked before decoding, damage reported by field."""

from __future__ import annotations

import base64
import io
import struct
import warnings
import zlib

import pytest
from PIL import Image

from lib_depth.webui.payload import PayloadError, decode_image, encode_png, limits_from_options


def png_header_only(width: int, height: int) -> str:
    """A PNG whose header claims width x height, with a tiny (incomplete) body."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return base64.b64encode(data).decode()


def test_round_trip_and_data_url():
    image = Image.new("RGB", (70, 65), (10, 20, 30))
    assert decode_image(encode_png(image), "image").size == (70, 65)
    assert decode_image("data:image/png;base64," + encode_png(image), "image").getpixel((0, 0)) == (10, 20, 30)
    assert decode_image(image, "image") is image


def test_one_pixel_image_decodes():
    assert decode_image(encode_png(Image.new("L", (1, 1))), "image").size == (1, 1)


@pytest.mark.parametrize("text", ["/etc/passwd", "C:\\\\models\\\\x.png", "../outputs/a.png", "http://127.0.0.1/x.png"])
def test_paths_and_urls_are_never_opened(text):
    with pytest.raises(PayloadError, match="image: expected base64 image data.*not accepted"):
        decode_image(text, "image")


def test_huge_header_is_rejected_before_decoding():
    with pytest.raises(
        PayloadError, match=r"image: 5000x5000 \(25,000,000 pixels\) is over the image size limit of 16,000,000 pixels"
    ):
        decode_image(png_header_only(5000, 5000), "image", max_pixels=16_000_000)
    # past Pillow's own hard limit (twice Image.MAX_IMAGE_PIXELS) its guard speaks first: the
    # message states that number, the one that applied, not the configured 200,000,000
    hard = 2 * Image.MAX_IMAGE_PIXELS
    with pytest.raises(
        PayloadError,
        match=f"image: 400,000,000 pixels is over Pillow's decompression-bomb limit of {hard:,} pixels, "
        "which caps the configured 200,000,000",
    ):
        decode_image(png_header_only(20000, 20000), "image", **limits_from_options(0, 200))
    with pytest.raises(PayloadError, match="1,600,000,000 pixels is over the image size limit of 16,000,000"):
        decode_image(png_header_only(40000, 40000), "image", max_pixels=16_000_000)


def test_custom_pixel_limit():
    with pytest.raises(PayloadError, match="over the image size limit of 100 pixels"):
        decode_image(encode_png(Image.new("L", (20, 20))), "depth map", max_pixels=100)


def test_oversized_base64_is_rejected_before_decoding():
    with pytest.raises(PayloadError, match="image: 104,857,600 characters of base64 is over the limit"):
        decode_image("A" * (100 * 2**20), "image")


def test_truncated_png():
    buffer = io.BytesIO()
    Image.new("RGB", (128, 128), (1, 2, 3)).save(buffer, format="PNG", compress_level=0)
    cut = base64.b64encode(buffer.getvalue()[: len(buffer.getvalue()) // 2]).decode()
    with pytest.raises(PayloadError, match="image: truncated or damaged"):
        decode_image(cut, "image")


def test_between_pillows_thresholds_the_configured_limit_decides(monkeypatch):
    """Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that: an image between the two
    is decoded when our limit allows it (no warning turned into a refusal), refused with our
    number when it does not; above Pillow's hard limit the message gives Pillow's number."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_image(encode_png(Image.new("L", (40, 40))), "image", max_pixels=1800).size == (40, 40)
    with pytest.raises(PayloadError, match="40x40 .1,600 pixels. is over the image size limit of 1,500 pixels"):
        decode_image(encode_png(Image.new("L", (40, 40))), "image", max_pixels=1500)
    with pytest.raises(
        PayloadError, match="decompression-bomb limit of 2,000 pixels, which caps the configured 1,000,000,000"
    ):
        decode_image(encode_png(Image.new("L", (50, 50))), "image", max_pixels=10**9)


@pytest.mark.parametrize("value", [None, 12, ["a"], {"image": "x"}])
def test_wrong_types(value):
    with pytest.raises(PayloadError, match="image: expected base64 image data"):
        decode_image(value, "image")


def test_garbage_text():
    with pytest.raises(PayloadError, match="image: not a readable image"):
        decode_image(base64.b64encode(b"just some bytes").decode(), "image")
    with pytest.raises(PayloadError, match="image: expected base64"):
        decode_image("!!!", "image")


def test_limits_from_options():
    assert limits_from_options() == {"max_pixels": 200_000_000}  # the engine's default, the WebUI's
    assert limits_from_options(0, 200) == {"max_pixels": 200_000_000}  # the WebUI's "Maximum image size"
    assert limits_from_options(4, 200, 1) == {"max_pixels": 4_000_000, "max_base64_chars": 2**20}
    with pytest.raises(PayloadError, match="over the image size limit of 4,096"):
        decode_image(encode_png(Image.new("L", (100, 100))), "image", **limits_from_options(0.004096))
