"""Weight-free high-resolution depth for large images: a base estimate refined by overlapping tiles.

An estimator sees the whole image at its own resolution (384 or 518 px), so a large image loses
thin structures. Here each overlapping tile is estimated at that resolution too (more pixels per
object), then aligned to the base estimate by a least-squares scale and shift (relative depth
has an unknown scale and shift per estimate, so raw tiles would not agree), and the tiles are
blended with linear feathering across their overlaps. No extra weights, any registry estimator.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ..validation import MIN_IMAGE_SIDE, check_finite, check_image_batch

Estimate = Callable[[torch.Tensor], torch.Tensor]  # [B, 3, h, w] in [-1, 1] -> [B, 1, h', w'] relative depth


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Offsets of tiles covering `length`, overlapping by at least `overlap`, spread evenly, the
    last one ending at the border."""
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / (tile - overlap)) + 1
    return [round(index * (length - tile) / (count - 1)) for index in range(count)]


def _ramp(length: int, overlap: int, feather_start: bool, feather_end: bool, device: torch.device) -> torch.Tensor:
    """1 inside, rising linearly over `overlap` pixels at a tile edge that lies inside the image."""
    position = torch.arange(length, device=device, dtype=torch.float32)
    ramp = torch.ones(length, device=device)
    if feather_start:
        ramp = torch.minimum(ramp, (position + 1) / (overlap + 1))
    if feather_end:
        ramp = torch.minimum(ramp, (length - position) / (overlap + 1))
    return ramp


def align_to(depth: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per image, `scale * depth + shift` closest to `reference` in least squares ([B, 1, h, w] each).

    A tile with no depth variation, or one whose depth runs against the reference (scale <= 0),
    says nothing the reference does not: the reference is returned for it unchanged.
    """
    d = depth.flatten(1).double()
    r = reference.flatten(1).double()
    d_mean, r_mean = d.mean(1, keepdim=True), r.mean(1, keepdim=True)
    d_centred = d - d_mean
    variance = (d_centred**2).mean(1, keepdim=True)
    covariance = (d_centred * (r - r_mean)).mean(1, keepdim=True)
    usable = variance > 1e-12 * (d_mean**2 + 1)
    scale = torch.where(usable, covariance / torch.where(usable, variance, torch.ones_like(variance)), 0)
    usable = usable & (scale > 0)
    aligned = (scale * d + (r_mean - scale * d_mean)).to(reference.dtype).view_as(reference)
    return torch.where(usable.view(-1, 1, 1, 1), aligned, reference)


def refine_depth_tiled(
    estimate: Estimate,
    images: torch.Tensor,
    *,
    tile: int = 512,
    overlap: int = 128,
    base: torch.Tensor | None = None,
    align: bool = True,
) -> torch.Tensor:
    """[B, 3, H, W] in [-1, 1] -> float32 [B, 1, H, W] relative depth at the image's own size.

    `estimate` is e.g. `DepthEstimator(...).estimate`; `base` is its whole-image result when the
    caller already has it. Tiles are `tile` pixels square (smaller at a small image's side) and
    overlap by at least `overlap`. An image no larger than one tile is the base estimate resized.
    `align=False` blends the tiles as estimated (for comparison only: they disagree in scale).
    """
    check_image_batch(images)
    if tile < MIN_IMAGE_SIDE:
        raise ValueError(f"tile: {tile} pixels is too small; tiles need at least {MIN_IMAGE_SIDE}")
    if not 0 < overlap < tile:
        raise ValueError(f"overlap: {overlap} must be between 1 and the tile size ({tile}) minus 1")
    height, width = images.shape[-2:]
    if base is None:
        base = estimate(images)
    base = _to_size(base, height, width)
    if height <= tile and width <= tile:
        return base

    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    tile_h, tile_w = min(tile, height), min(tile, width)
    correction = torch.zeros_like(base)
    weight = torch.zeros((1, 1, height, width), device=base.device)
    for y in ys:
        for x in xs:
            window = (slice(None), slice(None), slice(y, y + tile_h), slice(x, x + tile_w))
            depth = _to_size(estimate(images[window]), tile_h, tile_w).to(base.device)
            reference = base[window]
            placed = align_to(depth, reference) if align else depth
            ramp_y = _ramp(tile_h, overlap, y > 0, y + tile_h < height, base.device)
            ramp_x = _ramp(tile_w, overlap, x > 0, x + tile_w < width, base.device)
            w = (ramp_y[:, None] * ramp_x[None, :])[None, None]
            correction[window] += w * (placed - reference)
            weight[window] += w
    # base + weighted mean correction: exactly the base wherever every tile agrees with it
    return check_finite(base + correction / weight, "refined depth")


def _to_size(depth: torch.Tensor, height: int, width: int) -> torch.Tensor:
    depth = depth.to(torch.float32)
    if depth.ndim == 3:
        depth = depth.unsqueeze(1)
    if depth.shape[-2:] == (height, width):
        return depth
    return F.interpolate(depth, size=(height, width), mode="bilinear", align_corners=False)
