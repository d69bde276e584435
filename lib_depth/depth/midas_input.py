"""MiDaS input preparation, whatever the image's dtype and device.

The reference `AddMiDaS("dpt_hybrid")` resizes a numpy copy of the image with OpenCV, which
refuses float16 ("src data type = 23 is not supported") and forces a round trip to the CPU.
Here the same bicubic resize is two small matrix products in float32 on the image's own device:
numerically OpenCV's INTER_CUBIC (same coefficients, same border rule), batched, and free of any
dtype the resize cannot take.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..validation import check_image_batch

MIDAS_NET_SIZE = 384
MIDAS_MULTIPLE_OF = 32
_CUBIC_A = np.float32(-0.75)  # OpenCV's INTER_CUBIC kernel parameter


def midas_input_size(height: int, width: int, resolution: int = MIDAS_NET_SIZE) -> tuple[int, int]:
    """(height, width) of the DPT-Hybrid input: the reference "minimal" rule.

    Keep the aspect ratio, scale as little as possible towards `resolution` (384, the trained
    size, by default), round each side to a multiple of 32 (half to even, as numpy does).
    """
    scale_h = resolution / height
    scale_w = resolution / width
    if abs(1 - scale_w) < abs(1 - scale_h):
        scale_h = scale_w
    else:
        scale_w = scale_h
    return _round_to_multiple(scale_h * height), _round_to_multiple(scale_w * width)


def _round_to_multiple(value: float) -> int:
    return max(MIDAS_MULTIPLE_OF, int(round(value / MIDAS_MULTIPLE_OF)) * MIDAS_MULTIPLE_OF)


@lru_cache(maxsize=64)
def _cubic_resize_matrix(src: int, dst: int) -> np.ndarray:
    """[dst, src] weights reproducing OpenCV's INTER_CUBIC along one axis (float32 coefficients,
    half-pixel centres, replicated border)."""
    scale = 1.0 / (dst / src)
    fx = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    sx = np.floor(fx)
    x = (fx - sx).astype(np.float32)
    a, one = _CUBIC_A, np.float32(1)
    xp1 = x + one
    c0 = ((a * xp1 - np.float32(5) * a) * xp1 + np.float32(8) * a) * xp1 - np.float32(4) * a
    c1 = ((a + np.float32(2)) * x - (a + np.float32(3))) * x * x + one
    c2 = ((a + np.float32(2)) * (one - x) - (a + np.float32(3))) * (one - x) * (one - x) + one
    c3 = one - c0 - c1 - c2
    weights = np.zeros((dst, src), dtype=np.float64)
    rows = np.arange(dst)
    for offset, coeff in enumerate((c0, c1, c2, c3)):
        cols = np.clip(sx.astype(np.int64) + offset - 1, 0, src - 1)
        np.add.at(weights, (rows, cols), coeff.astype(np.float64))
    return weights.astype(np.float32)


def cubic_resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize float32 [..., H, W] to `size` exactly as cv2.resize(..., INTER_CUBIC) does."""
    height, width = images.shape[-2:]
    rows = torch.from_numpy(_cubic_resize_matrix(height, size[0])).to(images.device)
    cols = torch.from_numpy(_cubic_resize_matrix(width, size[1])).to(images.device)
    return rows @ images @ cols.T


def prepare_midas_input(images: torch.Tensor, resolution: int = MIDAS_NET_SIZE) -> torch.Tensor:
    """[B, 3, H, W] images in [-1, 1], any float dtype and device -> DPT-Hybrid input.

    Returns float32 [B, 3, h, w] on the images' device, normalised with mean 0.5 / std 0.5,
    equal to the reference AddMiDaS("dpt_hybrid") output for each image (at 384, its size).
    """
    check_image_batch(images)
    # float32 before any arithmetic: a half-precision image never reaches the resize.
    unit = (images.to(torch.float32) + 1.0) * 0.5
    resized = cubic_resize(unit, midas_input_size(*images.shape[-2:], resolution))
    return (resized - 0.5) / 0.5
