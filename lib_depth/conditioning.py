"""Depth -> the UNet's fifth input channel: resize to latent size, edit, normalise per image."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .settings import DepthSettings
from .validation import check_finite

_FLAT_RELATIVE_SPAN = 1e-6


def rescale_per_image(depth: torch.Tensor, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    """Map each image's own min..max to low..high (Stability's inference scripts, per image).

    A flat image (span at float rounding level) maps to the midpoint instead of 0/0 = NaN.
    """
    dims = tuple(range(1, depth.ndim))
    minimum = depth.amin(dim=dims, keepdim=True)
    maximum = depth.amax(dim=dims, keepdim=True)
    span = maximum - minimum
    scale = torch.maximum(minimum.abs(), maximum.abs())
    flat = span <= scale * _FLAT_RELATIVE_SPAN
    unit = (depth - minimum) / torch.where(flat, torch.ones_like(span), span)
    unit = torch.where(flat, torch.full_like(unit, 0.5), unit)
    return (high - low) * unit + low


def gaussian_blur(depth: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, 1, h, w] with replicated borders."""
    if sigma <= 0:
        return depth
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=depth.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(depth.dtype)
    padded = F.pad(depth, (radius, radius, 0, 0), mode="replicate")
    depth = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    padded = F.pad(depth, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(padded, kernel.view(1, 1, -1, 1))


def apply_edits(depth: torch.Tensor, settings: DepthSettings, pixels_per_sample: float = 1.0) -> torch.Tensor:
    """Invert, near/far levels, gamma, blur on [B, 1, h, w]; returns each image in 0..1.

    `pixels_per_sample` converts the blur radius from image pixels to this depth's resolution
    (8 at latent size), so a blur looks the same in the preview and in the conditioning.
    """
    depth = rescale_per_image(depth, 0.0, 1.0)
    if settings.invert:
        depth = 1.0 - depth
    if settings.near != 1.0 or settings.far != 0.0:
        depth = ((depth - settings.far) / (settings.near - settings.far)).clamp(0.0, 1.0)
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
    return check_finite(depth.to(torch.float32), name)


def depth_to_conditioning(
    depth: torch.Tensor,
    latent_size: tuple[int, int],
    settings: DepthSettings | None = None,
    *,
    image_size: tuple[int, int] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Raw depth (white = near) -> [B, 1, h/8, w/8] in [-1, 1] for the depth UNet's c_concat.

    `image_size` (height, width) scales the blur radius; default is 8x the latent size.
    Normalisation is per image, so a batch of different images gets each image's full range.
    """
    settings = settings or DepthSettings()
    depth = as_depth_batch(depth)
    depth = F.interpolate(depth, size=tuple(latent_size), mode="bicubic", align_corners=False)
    if settings.has_edits:
        image_height = image_size[0] if image_size else 8 * latent_size[0]
        depth = apply_edits(depth, settings, pixels_per_sample=image_height / latent_size[0])
    conditioning = rescale_per_image(depth, -1.0, 1.0)
    return conditioning.to(device=device if device is not None else conditioning.device, dtype=dtype)
