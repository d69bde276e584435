"""Fitting a user depth map to the generation the way the WebUI fits the init image.

WebUI resize modes (modules/images.py resize_image): 0 just resize, 1 crop and resize (centre
crop to the target aspect), 2 resize and fill (fit inside, borders filled from the edges),
3 just resize (latent upscale). Depth maps are float arrays, so this is done here rather than
with the WebUI's PIL-RGB helpers, which would drop 16-bit precision.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

JUST_RESIZE, CROP_AND_RESIZE, RESIZE_AND_FILL, LATENT_UPSCALE = 0, 1, 2, 3


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
