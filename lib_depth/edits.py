"""The user's depth edits (invert, near/far levels, gamma, blur) on depth already in 0..1, and the
resize of raw depth to latent size. No normalisation here: normalise.py maps depth to 0..1 before
these edits and to [-1, 1] after them."""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
import torch.nn.functional as F

from .settings import DepthSettings
from .validation import check_finite, check_latent_size

# Beyond this magnitude a float32 span (max - min) or a bicubic overshoot can overflow: such depth
# is processed in float64 instead (ordinary depth never gets near it, so its bits are unchanged).
HUGE = 2.0**120
# A Gaussian this narrow has side weights that underflow to exactly 0 in float32: it is the identity.
# Skipping it keeps those bits and avoids 0/0 for sigmas too small for float32.
_NO_BLUR_SIGMA = 0.05


def gaussian_blur(depth: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, 1, h, w] with replicated borders."""
    if sigma < _NO_BLUR_SIGMA:
        return depth
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=depth.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(depth.dtype)
    padded = F.pad(depth, (radius, radius, 0, 0), mode="replicate")
    depth = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    padded = F.pad(depth, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(padded, kernel.view(1, 1, -1, 1))


def _levels(depth: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """far..near -> 0..1, clipped. When float32 cannot tell near from far it is a step at far."""
    span = near - far
    if torch.tensor(span, dtype=depth.dtype) > 0:
        return ((depth - far) / span).clamp(0.0, 1.0)  # a finite/0 overflow gives +-inf, clipped
    return (depth > far).to(depth.dtype)


def edit_unit_depth(depth: torch.Tensor, settings: DepthSettings, pixels_per_sample: float = 1.0) -> torch.Tensor:
    """Invert, near/far levels, gamma, blur on [B, 1, h, w] depth in 0..1; returns 0..1.

    `pixels_per_sample` converts the blur radius from image pixels to this depth's resolution
    (8 at latent size), so a blur looks the same in the preview and in the conditioning.
    """
    depth = depth.to(torch.float32)  # 0..1 from here on, whatever precision the raw depth needed
    if settings.invert:
        depth = 1.0 - depth
    if settings.near != 1.0 or settings.far != 0.0:
        depth = _levels(depth, settings.near, settings.far)
    if settings.gamma != 1.0:
        depth = depth.pow(settings.gamma)
    if settings.blur > 0:
        depth = gaussian_blur(depth, settings.blur / pixels_per_sample)
    return depth


def as_depth_batch(depth: torch.Tensor, name: str = "depth") -> torch.Tensor:
    """Accept [h, w], [B, h, w] or [B, 1, h, w]; return float32 [B, 1, h, w] with finite values."""
    if not isinstance(depth, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(depth).__name__}")
    if depth.ndim == 2:
        depth = depth[None, None]
    elif depth.ndim == 3:
        depth = depth[:, None]
    if depth.ndim != 4 or depth.shape[1] != 1:
        raise ValueError(f"{name}: expected [batch, 1, height, width], got shape {tuple(depth.shape)}")
    if depth.numel() == 0:
        raise ValueError(f"{name}: is empty (shape {tuple(depth.shape)})")
    if depth.is_complex() or depth.dtype == torch.bool:
        raise ValueError(f"{name}: expected real numbers, got dtype {depth.dtype}")
    return check_finite(depth.to(torch.float32), name)


def check_size_argument(value: Any, name: str) -> tuple[int, int]:
    """A (height, width) pair of positive whole numbers, else a ValueError naming the argument;
    a latent size also within validation.MAX_LATENT_SIDE."""
    if name == "latent_size":
        return check_latent_size(value, name)
    if isinstance(value, torch.Size):
        value = tuple(value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name}: expected (height, width), got {value!r}")
    for side in value:
        if isinstance(side, bool) or not isinstance(side, numbers.Integral) or side <= 0:
            raise ValueError(f"{name}: expected two positive whole numbers (height, width), got {tuple(value)!r}")
    return int(value[0]), int(value[1])


def resize_depth(depth: torch.Tensor, latent_size: tuple[int, int], name: str = "depth") -> torch.Tensor:
    """Raw depth -> [B, 1, h, w] at latent size (bicubic), float32, or float64 for huge values."""
    latent_size = check_size_argument(latent_size, "latent_size")
    depth = as_depth_batch(depth, name)
    if float(depth.abs().amax()) > HUGE:
        depth = depth.to(torch.float64)
    return F.interpolate(depth, size=latent_size, mode="bicubic", align_corners=False)
