"""Depth -> the UNet's fifth input channel: resize to latent size, normalise to 0..1, edit,
normalise to [-1, 1] (normalise.py decides the ranges, edits.py does the edits).

Normalisation is per image unless a `DepthRange` is given (frame sequences): the range then
replaces both per-image rescales (before the edits and after them), so the edits keep their
meaning and a frame whose range equals its own min/max gets exactly the per-image result.
"""

from __future__ import annotations

from typing import Iterable

import torch

from .edits import check_size_argument, resize_depth
from .fields import DEFAULT_TIME_CONSTANT
from .normalise import (
    DEFAULT_CUT_THRESHOLD,
    DepthRange,
    check_depth_range,
    edit_resized,
    edited_unit_depth,
    rescale_per_image,
    sequence_ranges,
    to_conditioning_range,
)
from .settings import DepthSettings, check_settings_argument

__all__ = ["DepthRange", "apply_edits", "conditioning_sequence", "depth_to_conditioning", "rescale_per_image"]


def apply_edits(
    depth: torch.Tensor,
    settings: DepthSettings,
    pixels_per_sample: float = 1.0,
    *,
    depth_range: DepthRange | None = None,
) -> torch.Tensor:
    """Invert, near/far levels, gamma, blur on [B, 1, h, w]; returns each image in 0..1.

    `pixels_per_sample` converts the blur radius from image pixels to this depth's resolution
    (8 at latent size), so a blur looks the same in the preview and in the conditioning.
    `depth_range` replaces each image's own min/max as the 0..1 of the edits (frame sequences).
    """
    return edited_unit_depth(depth, settings, pixels_per_sample, depth_range)


def depth_to_conditioning(
    depth: torch.Tensor,
    latent_size: tuple[int, int],
    settings: DepthSettings | None = None,
    *,
    image_size: tuple[int, int] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    depth_range: DepthRange | None = None,
) -> torch.Tensor:
    """Raw depth (white = near) -> [B, 1, h/8, w/8] in [-1, 1] for the depth UNet's c_concat.

    `image_size` (height, width) scales the blur radius; default is 8x the latent size.
    Normalisation is per image, so a batch of different images gets each image's full range;
    `depth_range` (from `normalise.sequence_ranges`) normalises every image of the batch with it.
    Every accepted input gives finite values in [-1, 1].
    """
    latent_size = check_size_argument(latent_size, "latent_size")
    settings = check_settings_argument(settings)
    if image_size is not None:
        image_size = check_size_argument(image_size, "image_size")
    depth_range = check_depth_range(depth_range, latent_size, settings, image_size)
    depth = resize_depth(depth, latent_size)
    if settings.has_edits:
        depth = edit_resized(depth, latent_size, settings, image_size, depth_range)
    conditioning = to_conditioning_range(depth, depth_range, edited=settings.has_edits)
    conditioning = conditioning.to(torch.float32)
    return conditioning.to(device=device if device is not None else conditioning.device, dtype=dtype)


def conditioning_sequence(
    depths: torch.Tensor | Iterable[torch.Tensor],
    latent_size: tuple[int, int],
    settings: DepthSettings | None = None,
    *,
    image_size: tuple[int, int] | None = None,
    mode: str = "per image",
    time_constant: float = DEFAULT_TIME_CONSTANT,
    percentile: float = 0.0,
    cut_threshold: float | None = DEFAULT_CUT_THRESHOLD,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> list[torch.Tensor]:
    """Both passes at once (all frames in memory): each frame's [1, 1, h, w] conditioning in [-1, 1]."""
    frames = [frame for item in ([depths] if isinstance(depths, torch.Tensor) else depths) for frame in _split(item)]
    ranges = sequence_ranges(
        frames,
        latent_size,
        settings,
        image_size=image_size,
        mode=mode,
        time_constant=time_constant,
        percentile=percentile,
        cut_threshold=cut_threshold,
    )
    return [
        depth_to_conditioning(
            frame, latent_size, settings, image_size=image_size, dtype=dtype, device=device, depth_range=r
        )
        for frame, r in zip(frames, ranges, strict=True)
    ]


def _split(item: torch.Tensor) -> list[torch.Tensor]:
    """A batch [B, ...] is B frames; [h, w] is one."""
    if isinstance(item, torch.Tensor) and item.ndim >= 3:
        return list(item.split(1))
    return [item]
