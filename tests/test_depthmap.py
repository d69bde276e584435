"""User depth maps in every format, and previews of exactly the depth the model gets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lib_depth import (
    colorize,
    conditioning_to_png16,
    conditioning_to_previews,
    depth_to_conditioning,
    depth_to_tensor,
    image_to_tensor,
    load_depth_map,
)
from lib_depth.io.depthmap import save_png


@pytest.fixture
def gradient16() -> np.ndarray:
    """A 16-bit radial depth map: near (white) in the middle."""
    y, x = np.mgrid[0:96, 0:128].astype(np.float64)
    return (np.exp(-((x - 64) ** 2 + (y - 48) ** 2) / 800.0) * 65535).round().astype(np.uint16)


def test_16_bit_png_on_disk_keeps_full_precision(tmp_path, gradient16):
    path = tmp_path / "depth16.png"
    Image.fromarray(gradient16).save(path)
    depth = load_depth_map(path)
    assert depth.dtype == np.float32 and depth.shape == (96, 128)
    assert np.allclose(depth, gradient16 / 65535.0, atol=1e-7)
    assert len(np.unique(depth)) > 256  # more levels than 8 bits hold


def test_8_bit_grey_and_16_bit_modes_agree(gradient16):
    eight = (gradient16 // 257).astype(np.uint8)
    from_l = load_depth_map(Image.fromarray(eight))
    from_i16 = load_depth_map(Image.fromarray(gradient16))
    from_i = load_depth_map(Image.fromarray(gradient16.astype(np.int32)))
    from_f = load_depth_map(Image.fromarray((gradient16 / 65535.0).astype(np.float32)))
    for other in (from_i16, from_i, from_f):
        assert np.abs(other - from_l).max() < 1.5 / 255


def test_colour_modes_use_luma_and_ignore_alpha(gradient16):
    grey = (gradient16 // 257).astype(np.uint8)
    expected = grey / 255.0
    rgb = np.stack([grey] * 3, axis=-1)
    rgba = np.dstack([rgb, np.zeros_like(grey)])  # fully transparent: alpha must not matter
    assert np.allclose(load_depth_map(Image.fromarray(rgb)), expected, atol=1e-5)
    assert np.allclose(load_depth_map(Image.fromarray(rgba, "RGBA")), expected, atol=1e-5)
    assert np.allclose(load_depth_map(Image.fromarray(grey).convert("LA")), expected, atol=1e-5)
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    assert np.abs(load_depth_map(palette) - expected).max() < 0.05
    coloured = np.zeros((64, 64, 3), np.uint8)
    coloured[..., 1] = 200  # pure green counts by its luma weight
    assert np.allclose(load_depth_map(coloured), 200 / 255 * 0.587, atol=1e-5)


def test_bilevel_and_numpy_inputs(gradient16):
    mask = Image.fromarray(((gradient16 > 30000) * 255).astype(np.uint8)).convert("1")
    assert set(np.unique(load_depth_map(mask))) == {0.0, 1.0}
    assert np.allclose(load_depth_map(gradient16), gradient16 / 65535.0)
    assert np.allclose(load_depth_map(gradient16[..., None]), gradient16 / 65535.0)
    assert np.allclose(load_depth_map(gradient16.astype(np.float64) / 65535.0), gradient16 / 65535.0, atol=1e-7)


def test_invert_is_for_black_is_near_maps(gradient16):
    assert np.allclose(load_depth_map(gradient16, invert=True), 1.0 - gradient16 / 65535.0)


@pytest.mark.parametrize(
    "source,message",
    [
        (np.zeros((32, 128), np.uint8), "too small"),
        (np.zeros((0, 0), np.uint8), "too small"),
        (np.zeros((64, 64, 2), np.uint8), "shape"),
        (np.zeros((64, 64), np.int64), "dtype"),
        (np.full((64, 64), np.nan, np.float32), "NaN"),
        (Image.new("L", (20, 200)), "too small"),
        (42, "PIL image, numpy array or file path"),
    ],
)
def test_bad_depth_maps(source, message):
    with pytest.raises(ValueError, match=message):
        load_depth_map(source)


def test_file_errors_name_the_file(tmp_path):
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is not a PNG")
    with pytest.raises(ValueError, match="notes.png is not a readable image"):
        load_depth_map(not_image)
    with pytest.raises(ValueError, match="file not found: .*missing.png"):
        load_depth_map(tmp_path / "missing.png")
    truncated = tmp_path / "cut.png"
    Image.new("L", (256, 256), 128).save(tmp_path / "whole.png")
    truncated.write_bytes((tmp_path / "whole.png").read_bytes()[:60])
    with pytest.raises(ValueError, match="cut.png is not a readable image"):
        load_depth_map(truncated)


def test_user_map_of_any_size_is_resized_to_the_target(gradient16):
    conditioning = depth_to_conditioning(depth_to_tensor(load_depth_map(gradient16)), (64, 80))
    assert conditioning.shape == (1, 1, 64, 80)
    centre = conditioning[0, 0, 32, 40].item()
    assert centre == pytest.approx(conditioning.max().item(), abs=0.05)  # white centre stays nearest


def test_depth_to_tensor_stacks_and_resizes_to_the_first():
    maps = [np.zeros((64, 96), np.float32), np.ones((128, 192), np.float32)]
    batch = depth_to_tensor(maps)
    assert batch.shape == (2, 1, 64, 96) and torch.allclose(batch[1], torch.ones(1, 64, 96))


def test_preview_shows_exactly_the_conditioning():
    conditioning = torch.linspace(-1, 1, 64 * 64).reshape(1, 1, 64, 64)
    preview = conditioning_to_previews(conditioning)[0]
    assert preview.mode == "L" and preview.size == (64, 64)
    expected = ((conditioning[0, 0] + 1) * 127.5).round().numpy()
    assert np.abs(np.asarray(preview, dtype=np.float64) - expected).max() <= 0.5 + 1e-6


def test_preview_at_image_resolution_for_each_batch_image(scene_batch):
    conditioning = depth_to_conditioning(torch.rand(2, 1, 48, 64, generator=torch.Generator().manual_seed(0)), (48, 64))
    previews = conditioning_to_previews(conditioning, (384, 512))
    assert [p.size for p in previews] == [(512, 384)] * 2
    for preview in previews:  # normalised per image: full black-to-white range
        values = np.asarray(preview)
        assert values.min() <= 2 and values.max() >= 253
    coloured = colorize(previews[0])
    assert coloured.mode == "RGB" and coloured.size == (512, 384)
    with pytest.raises(ValueError, match="grayscale"):
        colorize(previews[0].convert("RGB"))


def test_png16_preview_round_trips_through_disk(tmp_path):
    conditioning = torch.linspace(-1, 1, 80 * 96).reshape(1, 1, 80, 96)
    image = conditioning_to_png16(conditioning)[0]
    path = save_png(image, tmp_path / "sub" / "depth.png")
    loaded = load_depth_map(path)
    assert np.abs(loaded - (conditioning[0, 0].numpy() + 1) / 2).max() < 1 / 65535


def test_init_images_from_files_and_arrays(tmp_path):
    Image.new("RGB", (96, 64), (255, 0, 0)).save(tmp_path / "red.png")
    batch = image_to_tensor([tmp_path / "red.png", np.zeros((64, 96, 3), np.uint8)])
    assert batch.shape == (2, 3, 64, 96)
    assert batch[0, 0].eq(1).all() and batch[0, 1].eq(-1).all() and batch[1].eq(-1).all()
    with pytest.raises(ValueError, match="same size"):
        image_to_tensor([Image.new("RGB", (64, 64)), Image.new("RGB", (96, 64))])
    with pytest.raises(ValueError, match="float array must hold values in 0..1, got 2..2"):
        image_to_tensor(np.full((64, 64, 3), 2.0, np.float32))
    with pytest.raises(ValueError, match="uint8, uint16 or float"):
        image_to_tensor(np.zeros((64, 64, 3), np.int64))
