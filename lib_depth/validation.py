"""Input checks shared by the engine, so every bad input fails early with a message naming it."""

from __future__ import annotations

import numbers

import torch

MIN_IMAGE_SIDE = 64
QUOTE_LIMIT = 80  # characters of a caller's value an error message repeats


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """A caller's value for an error message: its repr, cut to `limit` characters with its length
    after it, so a megabyte of input never comes back as a megabyte of message."""
    text = repr(value)
    if len(text) <= limit:
        return text
    if isinstance(value, (str, bytes)):
        length = f"{len(value):,} characters" if isinstance(value, str) else f"{len(value):,} bytes"
    elif isinstance(value, (list, tuple, dict, set)):
        length = f"{len(value):,} items"
    else:
        length = f"{len(text):,} characters"
    return f"{text[:limit]}… ({length})"


def quote_names(names: object, limit: int = 10) -> str:
    """Names a caller sent (unknown fields), each quoted short, at most `limit` of them."""
    listed = [str(name) for name in names]  # type: ignore[attr-defined]
    shown = ", ".join(name if len(name) <= 40 and name.isprintable() else quote(name, 40) for name in listed[:limit])
    return shown + (f" and {len(listed) - limit:,} more" if len(listed) > limit else "")


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


MAX_LATENT_SIDE = 65536  # 524,288 pixels a side: beyond any generation (the pixel limit bounds the area)


def check_latent_size(value: object, name: str = "latent_size") -> tuple[int, int]:
    """(height, width) in latent pixels from a pair of whole numbers >= 1; ValueError naming
    `name` otherwise (0, negatives, floats like 64.5, bools, strings, wrong length)."""
    if isinstance(value, torch.Size):
        value = tuple(value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name}: expected (height, width) in latent pixels, got {_describe(value)}")
    sides = []
    for label, side in zip(("height", "width"), value, strict=True):
        if isinstance(side, bool) or not isinstance(side, numbers.Integral):
            if isinstance(side, float) and side.is_integer():
                side = int(side)
            else:
                raise ValueError(f"{name}: {label} must be a whole number of latent pixels, got {_describe(side)}")
        if not 1 <= side <= MAX_LATENT_SIDE:
            raise ValueError(f"{name}: {label} must be 1..{MAX_LATENT_SIDE} latent pixels, got {int(side)}")
        sides.append(int(side))
    return sides[0], sides[1]


def _describe(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
