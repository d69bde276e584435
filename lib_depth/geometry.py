"""Fitting a user depth map to the generation the way the WebUI fits the init image.

WebUI resize modes (modules/images.py resize_image): 0 just resize, 1 crop and resize (centre
crop to the target aspect), 2 resize and fill (fit inside, borders filled from the edges),
3 just resize (latent upscale). Depth maps are float arrays, so this is done here rather than
with the WebUI's PIL-RGB helpers, which would drop 16-bit precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .validation import MIN_IMAGE_SIDE, quote

JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL, LATENT_UPSCALE = 0, 1, 2, 3
RESIZE_MODES = (JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL, LATENT_UPSCALE)
LATENT_FACTOR = 8  # the VAE's downscale: the UNet sees width/8 x height/8


def generation_size(width: object, height: object, name: str = "width/height") -> tuple[int, int]:
    """The size a generation really has: at least 64, rounded down to a multiple of 8 as the WebUI's
    latent (width // 8) rounds it. The one size rule of the preview, the API and the command line."""
    for value in (width, height):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name}: expected whole numbers of pixels, got {quote(width)}x{quote(height)}")
    if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
        smallest = f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}"
        raise ValueError(f"{name}: {quote(width)}x{quote(height)} is too small; at least {smallest}")
    return int(width) - int(width) % LATENT_FACTOR, int(height) - int(height) % LATENT_FACTOR


@dataclass(frozen=True)
class Geometry:
    """How the depth must line up with one sampling pass: that pass's image size and latent size,
    and how the init image was fitted to it (resize mode, or the inpaint "only masked" crop).

    The glue builds it from a processing object or from a preview/API request; `DepthRun` (run.py)
    turns it plus settings into the conditioning, so all three reach the same tensor one way.
    """

    width: int
    height: int
    latent: tuple[int, int]  # (h, w) of the UNet's input
    resize_mode: int = JUST_RESIZE
    crop: tuple[int, int, int, int] | None = None  # (x1, y1, x2, y2) in the init image's pixels
    init_size: tuple[int, int] | None = None  # (width, height) of the init image `crop` refers to

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize mode: expected one of 0..3, got {self.resize_mode!r}")
        if min(self.width, self.height, *self.latent) <= 0:
            raise ValueError(f"size: {self.width}x{self.height} (latent {self.latent}) must be positive")
        if self.crop is not None and self.init_size is None:
            raise ValueError("an only-masked crop needs the size of the init image it refers to")

    @classmethod
    def for_size(cls, width: int, height: int, resize_mode: int = JUST_RESIZE, **crop) -> Geometry:
        """A pass of width x height pixels whose latent is the VAE's (size / 8)."""
        return cls(width, height, (height // LATENT_FACTOR, width // LATENT_FACTOR), resize_mode, **crop)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.height, self.width

    def fit(self, depth: np.ndarray) -> np.ndarray:
        """A user depth map ([H, W], describing the whole init image) at this pass's pixel size,
        fitted as the WebUI fits the init image: the crop resized "resize and fill", else the mode."""
        if self.crop is not None:
            return fit_depth(crop_region(depth, self.crop, self.init_size), self.width, self.height, RESIZE_AND_FILL)
        return fit_depth(depth, self.width, self.height, self.resize_mode)


def _resize(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    if depth.shape == (height, width):
        return depth
    tensor = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False, antialias=True)[
        0, 0
    ].numpy()


def fit_depth(depth: np.ndarray, width: int, height: int, resize_mode: int = JUST_RESIZE) -> np.ndarray:
    """[H, W] depth -> [height, width] following the WebUI's resize mode."""
    source_height, source_width = depth.shape
    if resize_mode in (JUST_RESIZE, LATENT_UPSCALE):
        return _resize(depth, height, width)
    ratio, source_ratio = width / height, source_width / source_height
    if resize_mode == CROP_AND_RESIZE:
        if source_ratio > ratio:  # too wide: crop the sides
            keep = max(1, round(source_height * ratio))
            left = (source_width - keep) // 2
            depth = depth[:, left : left + keep]
        else:
            keep = max(1, round(source_width / ratio))
            top = (source_height - keep) // 2
            depth = depth[top : top + keep, :]
        return _resize(depth, height, width)
    if resize_mode == RESIZE_AND_FILL:
        if source_ratio < ratio:  # fit height, fill left and right
            inner_height, inner_width = height, max(1, round(source_width * height / source_height))
        else:
            inner_height, inner_width = max(1, round(source_height * width / source_width)), width
        inner = _resize(depth, inner_height, inner_width)
        top, left = (height - inner_height) // 2, (width - inner_width) // 2
        return np.pad(inner, ((top, height - inner_height - top), (left, width - inner_width - left)), mode="edge")
    raise ValueError(f"resize mode: expected 0..3, got {resize_mode!r}")


def crop_region(depth: np.ndarray, region: tuple[int, int, int, int], image_size: tuple[int, int]) -> np.ndarray:
    """The part of a depth map under an inpaint "only masked" crop.

    `region` is (x1, y1, x2, y2) in the init image's pixels; `image_size` is that image's
    (width, height); the map is first scaled to it, as it describes the whole init image.
    """
    width, height = image_size
    scaled = _resize(depth, height, width)
    x1, y1, x2, y2 = region
    return scaled[max(0, y1) : min(height, y2), max(0, x1) : min(width, x2)]
