"""User depth maps in and out, and preview images of the depth the model gets.

Convention everywhere: larger = nearer (white = near), as MiDaS predicts.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..validation import check_min_size
from .files import create_new_file
from .images import WIDE_COLOUR_READ_AT_8_BITS, ImageSource, check_pixels, open_image

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as PIL's convert("L")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def load_depth_map(
    source: ImageSource, *, invert: bool = False, name: str = "depth map", max_pixels: int | None = None
) -> np.ndarray:
    """A user depth map as float32 [H, W] in 0..1, white = near.

    Takes a PIL image (L, I;16, I, F, RGB, RGBA, LA, P, 1), a numpy array (uint8, uint16 or
    float; [H, W] or [H, W, 1|3|4]) or a file path. Colour maps count by luma; alpha is ignored.
    `invert` is for maps where black = near (Z-depth from 3D tools). Files over the pixel limit
    (lib_depth.images) are refused before decoding; a 16-bit colour file warns that Pillow reads
    it at 8 bits.
    """
    if isinstance(source, np.ndarray):
        depth = _array_to_depth(source, name)
        check_pixels(depth.shape[1], depth.shape[0], name, max_pixels)
    else:
        image = open_image(source, name, max_pixels=max_pixels)
        if image.info.get(WIDE_COLOUR_READ_AT_8_BITS):
            warnings.warn(
                f"{name}: a 16-bit colour image; Pillow decodes colour at 8 bits per channel, so it is read "
                "with 256 levels. Save depth maps as 16-bit greyscale PNG to keep their full precision",
                stacklevel=2,
            )
        depth = _image_to_depth(image, name)
    if not np.isfinite(depth).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return 1.0 - depth if invert else depth


def _image_to_depth(image: Image.Image, name: str) -> np.ndarray:
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        return np.asarray(image, dtype=np.float32) / 65535.0
    if mode == "I":  # 16-bit PNGs open as "I" in older Pillow; other 32-bit data is scaled by its max
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if values.min() >= 0 and values.max() <= 65535 else float(np.abs(values).max() or 1.0)
        return (values / peak).astype(np.float32)
    if mode == "F":
        return np.asarray(image, dtype=np.float32)
    if mode in ("L", "1"):
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    if mode not in ("RGB", "RGBA", "LA", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "La", "PA"):
        raise ValueError(f"{name}: unsupported image mode {mode!r}")
    if mode in ("LA", "La"):
        return np.asarray(image.getchannel(0), dtype=np.float32) / 255.0
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return rgb @ _LUMA


def _array_to_depth(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(f"{name}: expected an array [H, W] or [H, W, 1|3|4], got shape {array.shape}")
    if array.ndim == 3:
        array = array[..., 0] if array.shape[2] == 1 else array[..., :3]
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        values = array.astype(np.float32) / 65535.0
    elif np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
    else:
        raise ValueError(f"{name}: unsupported array dtype {array.dtype}; use uint8, uint16 or float")
    if values.ndim == 3:
        values = values @ _LUMA
    check_min_size(values.shape[0], values.shape[1], name)
    return values


def depth_to_tensor(depth: np.ndarray | list[np.ndarray], device: torch.device | str | None = None) -> torch.Tensor:
    """One map or a list of maps (each [H, W]) -> float32 [B, 1, H, W]; maps of other sizes are
    resized to the first one's size."""
    maps = list(depth) if isinstance(depth, (list, tuple)) else [depth]
    if not maps:
        raise ValueError("depth: expected a depth map or a non-empty list of depth maps, got an empty list")
    for index, item in enumerate(maps):
        if not isinstance(item, np.ndarray) or item.ndim != 2:
            shape = getattr(item, "shape", None)
            raise ValueError(
                f"depth map {index + 1}: expected a 2-D numpy array [H, W], got {type(item).__name__}"
                + (f" of shape {tuple(shape)}" if shape is not None else "")
            )
    first = torch.from_numpy(np.ascontiguousarray(maps[0], dtype=np.float32))[None, None]
    tensors = [first]
    for item in maps[1:]:
        tensor = torch.from_numpy(np.ascontiguousarray(item, dtype=np.float32))[None, None]
        if tensor.shape != first.shape:
            tensor = F.interpolate(tensor, size=first.shape[-2:], mode="bicubic", align_corners=False)
        tensors.append(tensor)
    return torch.cat(tensors).to(device or "cpu")


def _unit(conditioning: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """[-1, 1] conditioning -> 0..1 float32 [B, 1, H, W] on the CPU, optionally upsampled."""
    unit = (conditioning.detach().to("cpu", torch.float32) + 1.0) * 0.5
    if unit.ndim == 3:
        unit = unit[:, None]
    if size is not None and tuple(unit.shape[-2:]) != tuple(size):
        unit = F.interpolate(unit, size=tuple(size), mode="bilinear", align_corners=False)
    return unit.clamp(0.0, 1.0)


def conditioning_to_previews(conditioning: torch.Tensor, size: tuple[int, int] | None = None) -> list[Image.Image]:
    """8-bit grayscale images (white = near) of exactly the depth the model gets.

    `size` is (height, width) of the generated image; the latent-size map is upsampled
    bilinearly for display, values are otherwise untouched.
    """
    unit = _unit(conditioning, size)
    pixels = (unit[:, 0] * 255.0).round().to(torch.uint8).numpy()
    return [Image.fromarray(p) for p in pixels]


def conditioning_to_png16(conditioning: torch.Tensor, size: tuple[int, int] | None = None) -> list[Image.Image]:
    """16-bit grayscale images (white = near) for saving a depth map without banding."""
    unit = _unit(conditioning, size)
    pixels = (unit[:, 0] * 65535.0).round().numpy().astype(np.uint16)
    return [Image.fromarray(p) for p in pixels]


# Anchors of the "magma"-like colour ramp used for coloured previews: far = dark, near = bright.
_RAMP = np.array(
    [
        [0, 0, 4],
        [28, 16, 68],
        [79, 18, 123],
        [129, 37, 129],
        [181, 54, 122],
        [229, 80, 100],
        [251, 135, 97],
        [254, 194, 135],
        [252, 253, 191],
    ],
    dtype=np.float32,
)
_LUT = (
    np.stack(
        [np.interp(np.linspace(0, len(_RAMP) - 1, 256), np.arange(len(_RAMP)), _RAMP[:, c]) for c in range(3)], axis=1
    )
    .round()
    .astype(np.uint8)
)


def colorize(preview: Image.Image) -> Image.Image:
    """Colour-map an 8-bit grayscale preview, so depth steps are easier to see."""
    if preview.mode != "L":
        raise ValueError(f"preview: expected an 8-bit grayscale image, got mode {preview.mode!r}")
    return Image.fromarray(_LUT[np.asarray(preview)])


def save_png(image: Image.Image, path: str | os.PathLike) -> Path:
    """Write a PNG, creating the folder; never over an existing file: a taken name becomes
    `name-1.png`, `name-2.png` ... Returns where it was written."""
    return create_new_file(Path(path), lambda file: image.save(file, format="PNG"))
