"""User depth maps in and out, and preview images of the depth the model gets.

Convention everywhere: larger = nearer (white = near), as MiDaS predicts.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..depth_kinds import describe_filled, to_model_depth
from ..validation import check_min_size
from .depth_files import DepthMap, array_to_depth_values, describe_mode, image_to_depth_values, read_depth_file
from .files import create_new_file
from .images import ImageSource, check_pixels


@dataclass(frozen=True)
class UserDepth:
    """A user map the model's way (larger = nearer, not yet normalised), what was read, and how many
    pixels had no depth (`distance` maps: filled with the farthest distance)."""

    values: np.ndarray  # float32 [H, W]
    description: str
    filled: int = 0

    @property
    def note(self) -> str:
        """One line for the status: the file read, and the pixels without depth."""
        filled = describe_filled(self.filled, self.values.size)
        return self.description + (f"; {filled}" if filled else "")


def read_user_depth(
    source: ImageSource | DepthMap | bytes,
    kind: str = "relative",
    *,
    name: str = "depth map",
    max_pixels: int | None = None,
) -> UserDepth:
    """A user depth map of any format and `kind` (depth_kinds.py) as depth the model's way.

    ValueError naming `name` for an unreadable file, a map with no valid pixel or a flat one.
    """
    depth_map = _as_depth_map(source, name, max_pixels)
    values, filled = to_model_depth(depth_map.values, kind, name)
    return UserDepth(values, depth_map.description, filled)


def load_depth_map(
    source: ImageSource | DepthMap | bytes,
    *,
    invert: bool = False,
    name: str = "depth map",
    max_pixels: int | None = None,
) -> np.ndarray:
    """A user depth map as float32 [H, W], white = near (8/16-bit maps in 0..1, floats as stored).

    Takes a PIL image (L, I;16, I, F, RGB, RGBA, LA, P, 1), a numpy array (uint8, uint16 or
    float; [H, W] or [H, W, 1|3|4]), a decoded `DepthMap`, a file's bytes or a file path (PNG, TIFF,
    OpenEXR, .npy: depth_files.py). Colour maps count by luma; alpha is ignored. `invert` is for
    maps where black = near. Files over the pixel limit (lib_depth.images) are refused before
    decoding; a 16-bit colour file warns that Pillow reads it at 8 bits.
    """
    depth = _as_depth_map(source, name, max_pixels).values
    if not np.isfinite(depth).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    depth = depth.astype(np.float32)
    return 1.0 - depth if invert else depth


def _as_depth_map(source: object, name: str, max_pixels: int | None) -> DepthMap:
    if isinstance(source, DepthMap):
        check_pixels(source.width, source.height, name, max_pixels)
        return source
    if isinstance(source, np.ndarray):
        depth = array_to_depth_values(source, name)
        check_pixels(depth.shape[1], depth.shape[0], name, max_pixels)
        return DepthMap(depth, f"array {source.dtype}")
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        depth_map = read_depth_file(source, name, max_pixels)
    elif isinstance(source, Image.Image):
        check_pixels(source.width, source.height, name, max_pixels)
        check_min_size(source.height, source.width, name)
        kind = f"{source.format or 'image'} {describe_mode(source.mode, source.format)}"
        depth_map = DepthMap(image_to_depth_values(source, name), kind)
    else:
        raise ValueError(f"{name}: expected a PIL image, numpy array or file path, got {type(source).__name__}")
    if "read at 8 bits" in depth_map.description:
        warnings.warn(
            f"{name}: a 16-bit colour image; Pillow decodes colour at 8 bits per channel, so it is read "
            "with 256 levels. Save depth maps as 16-bit greyscale PNG to keep their full precision",
            stacklevel=3,
        )
    return depth_map


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
