"""Input checks shared by the engine, so every bad input fails early with a message naming it."""

from __future__ import annotations

import torch

MIN_IMAGE_SIDE = 64


def check_image_batch(images: object, name: str = "image") -> torch.Tensor:
    """Return `images` if it is a usable [B, 3, H, W] floating batch, else raise ValueError."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(
            f"{name}: expected a torch.Tensor of shape [batch, 3, height, width], got {type(images).__name__}"
        )
    if images.ndim != 4:
        raise ValueError(f"{name}: expected 4 dimensions [batch, 3, height, width], got shape {tuple(images.shape)}")
    batch, channels, height, width = images.shape
    if batch == 0 or height == 0 or width == 0:
        raise ValueError(f"{name}: the batch is empty (shape {tuple(images.shape)})")
    if channels != 3:
        raise ValueError(f"{name}: expected 3 colour channels (RGB), got {channels} (shape {tuple(images.shape)})")
    if not images.is_floating_point():
        raise ValueError(f"{name}: expected a floating point tensor in [-1, 1], got dtype {images.dtype}")
    check_min_size(height, width, name)
    check_finite(images, name)
    return images


def check_min_size(height: int, width: int, name: str) -> None:
    if height < MIN_IMAGE_SIDE or width < MIN_IMAGE_SIDE:
        raise ValueError(
            f"{name}: {width}x{height} pixels is too small; depth needs at least "
            f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels"
        )


def check_finite(values: torch.Tensor, name: str) -> torch.Tensor:
    """Reject NaN and infinity, which would otherwise reach the sampler as NaN latents."""
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return values
