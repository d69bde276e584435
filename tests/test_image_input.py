"""Images as the user sees them: EXIF orientation like the WebUI, 16-bit and float photos at full
range, 16-bit colour maps, one pixel limit checked from the header, clear argument errors."""

from __future__ import annotations

import base64
import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from lib_depth import image_to_tensor, load_depth_map, open_image
from lib_depth.io.images import MAX_MEGAPIXELS_VARIABLE, max_pixels_limit
from lib_depth.webui.payload import decode_image

ORIENTATION = 0x0112


def phone_photo(path: Path, orientation: int = 6) -> Path:
    """A 96x64 photo stored sideways, as phones do, with its EXIF orientation tag."""
    pixels = np.zeros((64, 96, 3), np.uint8)
    pixels[:, :48] = (250, 10, 10)  # left half red, as stored
    pixels[:8, :] = (10, 250, 10)  # a green top band, so every rotation differs
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    Image.fromarray(pixels).save(path, exif=exif)
    return path


def webui_read(path: Path) -> Image.Image:
    """WebUI v1.10.1 modules/images.py read(): Image.open, then fix_image's exif_transpose."""
    return ImageOps.exif_transpose(Image.open(path))


@pytest.mark.parametrize("orientation", [1, 3, 6, 8, 5, 2])
@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_exif_orientation_matches_the_webui(tmp_path, orientation, suffix):
    path = phone_photo(tmp_path / f"photo{suffix}", orientation)
    expected = webui_read(path).convert("RGB")
    opened = open_image(path)
    assert opened.size == expected.size
    assert np.array_equal(np.asarray(opened.convert("RGB")), np.asarray(expected))
    tensor = image_to_tensor(path)
    assert tuple(tensor.shape[-2:]) == (expected.height, expected.width)
    if orientation in (6, 8, 5):
        assert expected.size == (64, 96)  # upright: taller than wide


def test_exif_orientation_for_depth_maps_and_uploads(tmp_path):
    path = phone_photo(tmp_path / "map.png", 6)
    assert load_depth_map(path).shape == (96, 64)
    encoded = base64.b64encode(path.read_bytes()).decode()
    assert decode_image(encoded, "image").size == (64, 96)  # the API decodes like the WebUI's API


def test_in_memory_images_are_taken_as_given(tmp_path):
    """The WebUI's processing uses p.init_images as they are; an in-memory image is not rotated."""
    image = Image.open(phone_photo(tmp_path / "photo.png", 6))
    image.load()
    assert open_image(image).size == (96, 64)


def test_broken_exif_keeps_the_image(tmp_path):
    path = tmp_path / "odd.png"
    exif = Image.Exif()
    exif[ORIENTATION] = 99  # no such orientation
    Image.new("RGB", (80, 70), (1, 2, 3)).save(path, exif=exif)
    assert open_image(path).size == (80, 70)


def test_16_bit_grey_photo_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 128).astype(np.uint16), (64, 1))
    path = tmp_path / "photo16.png"
    Image.fromarray(ramp).save(path)
    tensor = image_to_tensor(path)
    expected = ramp.astype(np.float64) / 65535 * 2 - 1
    assert np.abs(tensor[0, 0].numpy() - expected).max() < 1e-5
    assert (tensor > 0.99).float().mean() < 0.02  # before: 99% of pixels were pure white
    assert np.abs(image_to_tensor(ramp)[0].numpy() - tensor[0].numpy()).max() < 1e-5


def test_32_bit_int_and_float_photos(tmp_path):
    ramp = np.tile(np.linspace(0, 1, 96, dtype=np.float32), (64, 1))
    float_image = Image.fromarray(ramp, mode="F")
    assert np.abs(image_to_tensor(float_image)[0, 1].numpy() - (ramp * 2 - 1)).max() < 1e-5
    assert np.abs(image_to_tensor(ramp)[0, 2].numpy() - (ramp * 2 - 1)).max() < 1e-5
    int_image = Image.fromarray((ramp * 65535).astype(np.int32), mode="I")  # older Pillow's 16-bit PNG
    assert np.abs(image_to_tensor(int_image)[0, 0].numpy() - (ramp * 2 - 1)).max() < 1e-4
    wide = Image.fromarray((ramp * 1e6).astype(np.float32), mode="F")  # float beyond 0..1: its own range
    assert float(image_to_tensor(wide).max()) == 1.0 and float(image_to_tensor(wide).min()) == -1.0


def test_8_bit_photos_are_unchanged(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    assert np.array_equal(
        image_to_tensor(Image.fromarray(pixels))[0].permute(1, 2, 0).numpy(),
        pixels.astype(np.float32) / np.float32(127.5) - np.float32(1),
    )


def png_rgb16(path: Path, values: np.ndarray) -> Path:
    """A 16-bit-per-channel RGB PNG, written by hand (Pillow cannot write one)."""
    height, width, _ = values.shape
    raw = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    return path


def test_16_bit_colour_depth_map_says_it_is_read_at_8_bits(tmp_path):
    grey = np.tile(np.linspace(0, 65535, 80).astype(np.uint16), (64, 1))
    path = png_rgb16(tmp_path / "map48.png", np.stack([grey] * 3, axis=2))
    with pytest.warns(UserWarning, match="16-bit colour image; Pillow decodes colour at 8 bits"):
        depth = load_depth_map(path)
    assert np.abs(depth - grey / 65535).max() < 1 / 255 + 1e-6  # the high byte of each value
    grey_path = tmp_path / "grey16.png"
    Image.fromarray(grey).save(grey_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 16-bit grey is read at full depth: no warning
        assert np.abs(load_depth_map(grey_path) - grey / 65535).max() < 1e-6


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that claims width x height: a header and a token body, nothing to decode."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path


def test_huge_header_is_refused_before_decoding(tmp_path):
    path = png_header(tmp_path / "bomb.png", 40000, 40000)
    for load in (open_image, image_to_tensor, load_depth_map):
        with pytest.raises(
            ValueError, match="1,600,000,000 pixels is over Pillow's decompression-bomb limit of 178,956,970 pixels"
        ):
            load(path)


def test_the_limit_is_configurable_and_capped_by_pillow(tmp_path, monkeypatch):
    path = png_header(tmp_path / "big.png", 5000, 4000)
    with pytest.raises(ValueError, match=r"5000x4000 \(20,000,000 pixels\) is over the image size limit of 16,000,000"):
        open_image(path, max_pixels=16_000_000)
    monkeypatch.setenv(MAX_MEGAPIXELS_VARIABLE, "10")
    assert max_pixels_limit() == 10_000_000
    with pytest.raises(ValueError, match="limit of 10,000,000 pixels"):
        load_depth_map(path)
    monkeypatch.setenv(MAX_MEGAPIXELS_VARIABLE, "lots")
    with pytest.raises(ValueError, match="DEPTH2IMG_MAX_MEGAPIXELS: expected a number of megapixels, got 'lots'"):
        open_image(path)
    monkeypatch.delenv(MAX_MEGAPIXELS_VARIABLE)
    assert max_pixels_limit() == min(200_000_000, 2 * Image.MAX_IMAGE_PIXELS)


def test_between_pillows_warning_and_our_limit_is_accepted(tmp_path, monkeypatch):
    """Pillow warns at MAX_IMAGE_PIXELS; our limit decides, so even with warnings as errors the
    image opens. Pillow's thresholds are lowered so the image can stay small."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    path = tmp_path / "mid.png"
    Image.new("L", (90, 80), 128).save(path)  # 7,200 pixels: over the warning, under the hard 10,000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_image(path, max_pixels=8000).size == (90, 80)
        assert image_to_tensor(path, max_pixels=8000).shape == (1, 3, 80, 90)
    with pytest.raises(ValueError, match="is over the image size limit of 7,000 pixels"):
        open_image(path, max_pixels=7000)
    Image.new("L", (120, 100)).save(path)  # 12,000: over Pillow's hard limit
    with pytest.raises(ValueError, match="over Pillow's decompression-bomb limit of 10,000 pixels"):
        open_image(path)


@pytest.mark.parametrize("empty", [[], ()])
def test_empty_batch_is_a_clear_error(empty):
    with pytest.raises(ValueError, match="image: expected an image or a non-empty list of images, got an empty"):
        image_to_tensor(empty)


def test_batch_size_mismatch_names_the_sizes():
    with pytest.raises(ValueError, match="same size, got 64x64, 96x64"):
        image_to_tensor([Image.new("RGB", (64, 64)), Image.new("RGB", (96, 64))])


def test_in_memory_images_meet_the_limit_too():
    with pytest.raises(ValueError, match="over the image size limit of 5,000 pixels"):
        image_to_tensor(np.zeros((100, 100, 3), np.uint8), max_pixels=5000)
    with pytest.raises(ValueError, match="over the image size limit of 5,000 pixels"):
        open_image(Image.new("RGB", (100, 100)), max_pixels=5000)


def test_base64_upload_with_exif_and_limit(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100)).save(buffer, format="PNG")
    with pytest.raises(ValueError, match="over the image size limit of 5,000 pixels"):
        decode_image(base64.b64encode(buffer.getvalue()).decode(), "image", max_pixels=5000)


def test_depth_to_tensor_argument_errors():
    from lib_depth import depth_to_tensor

    with pytest.raises(ValueError, match="depth: expected a depth map or a non-empty list of depth maps"):
        depth_to_tensor([])
    with pytest.raises(ValueError, match=r"depth map 2: expected a 2-D numpy array \[H, W\], got ndarray of shape"):
        depth_to_tensor([np.zeros((8, 8), np.float32), np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match="depth map 1: expected a 2-D numpy array"):
        depth_to_tensor("depth.png")
