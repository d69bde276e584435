"""What a depth range is and how it is applied: the values that become near and far, per image (its
own min/max) or given (frame sequences). ranges.py and meter.py decide the ranges; this module only applies
them, so a flat image never divides by zero."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..edits import HUGE

_FLAT_RELATIVE_SPAN = 1e-6


@dataclass(frozen=True)
class DepthRange:
    """The depth values one frame is normalised with instead of its own min/max.

    `low`/`high`: raw depth (at latent size) that becomes far/near (0/1) before the edits.
    `edited_low`/`edited_high`: edited values that become -1/1 after the edits (only used when
    there are edits; default: the edits' own 0..1). `sequence_ranges` measures them from the frames.
    `computed_for`: the size and edits it was measured with (see `conditioning_key`); using it
    with others is an error, because its values would not mean the same thing. None: not checked.
    """

    low: float
    high: float
    edited_low: float = 0.0
    edited_high: float = 1.0
    computed_for: tuple | None = None

    def __post_init__(self) -> None:
        for name in ("low", "high", "edited_low", "edited_high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"depth range {name}: expected a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.low > self.high:
            raise ValueError(f"depth range: low ({self.low:g}) must not be above high ({self.high:g})")
        if self.edited_low > self.edited_high:
            raise ValueError(
                f"depth range: edited_low ({self.edited_low:g}) must not be above edited_high ({self.edited_high:g})"
            )


def _stretch(
    depth: torch.Tensor, minimum: torch.Tensor, maximum: torch.Tensor, low: float, high: float
) -> torch.Tensor:
    """Map minimum..maximum to low..high; a flat span (float rounding level) maps to the midpoint."""
    span = maximum - minimum
    scale = torch.maximum(minimum.abs(), maximum.abs())
    flat = span <= scale * _FLAT_RELATIVE_SPAN
    unit = (depth - minimum) / torch.where(flat, torch.ones_like(span), span)
    unit = torch.where(flat, torch.full_like(unit, 0.5), unit)
    return (high - low) * unit + low


def rescale_per_image(depth: torch.Tensor, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    """Map each image's own min..max to low..high (Stability's inference scripts, per image).

    A flat image (span at float rounding level) maps to the midpoint instead of 0/0 = NaN.
    """
    dims = tuple(range(1, depth.ndim))
    return _stretch(depth, depth.amin(dim=dims, keepdim=True), depth.amax(dim=dims, keepdim=True), low, high)


def rescale_to_range(depth: torch.Tensor, minimum: float, maximum: float, low: float, high: float) -> torch.Tensor:
    """Map a given minimum..maximum to low..high, values outside clipped (they belong to other frames' range)."""
    if depth.dtype != torch.float64 and max(abs(minimum), abs(maximum)) > HUGE:
        depth = depth.to(torch.float64)
    bound = torch.tensor(minimum, dtype=depth.dtype, device=depth.device).view(1, 1, 1, 1)
    top = torch.tensor(maximum, dtype=depth.dtype, device=depth.device).view(1, 1, 1, 1)
    return _stretch(depth, bound, top, low, high).clamp(low, high)
