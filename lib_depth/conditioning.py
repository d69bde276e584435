"""Depth -> the UNet's fifth input channel: resize to latent size, edit, normalise.

Normalisation is per image unless a `DepthRange` is given (frame sequences, see `sequence.py`):
the range then replaces both per-image rescales (before the edits and after them), so the edits
keep their meaning and a frame whose range equals its own min/max gets exactly the per-image result.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .fields import EDIT_FIELDS
from .settings import DepthSettings
from .validation import check_finite, check_latent_size, check_settings_type

_FLAT_RELATIVE_SPAN = 1e-6
# Beyond this magnitude a float32 span (max - min) or a bicubic overshoot can overflow: such depth
# is processed in float64 instead (ordinary depth never gets near it, so its bits are unchanged).
_HUGE = 2.0**120
# A Gaussian this narrow has side weights that underflow to exactly 0 in float32: it is the identity.
# Skipping it keeps those bits and avoids 0/0 for sigmas too small for float32.
_NO_BLUR_SIGMA = 0.05


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


def _rescale_to_range(depth: torch.Tensor, minimum: float, maximum: float, low: float, high: float) -> torch.Tensor:
    """Map a given minimum..maximum to low..high, values outside clipped (they belong to other frames' range)."""
    if depth.dtype != torch.float64 and max(abs(minimum), abs(maximum)) > _HUGE:
        depth = depth.to(torch.float64)
    bound = torch.tensor(minimum, dtype=depth.dtype, device=depth.device).view(1, 1, 1, 1)
    top = torch.tensor(maximum, dtype=depth.dtype, device=depth.device).view(1, 1, 1, 1)
    return _stretch(depth, bound, top, low, high).clamp(low, high)


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
    if depth_range is None:
        depth = rescale_per_image(depth, 0.0, 1.0)
    else:
        depth = _rescale_to_range(depth, depth_range.low, depth_range.high, 0.0, 1.0)
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


def check_settings_argument(settings: Any) -> DepthSettings:
    """The settings, None meaning the defaults; anything else is a ValueError naming it."""
    return check_settings_type(settings) or DepthSettings()


def resize_depth(depth: torch.Tensor, latent_size: tuple[int, int], name: str = "depth") -> torch.Tensor:
    """Raw depth -> [B, 1, h, w] at latent size (bicubic), float32, or float64 for huge values."""
    latent_size = check_size_argument(latent_size, "latent_size")
    depth = as_depth_batch(depth, name)
    if float(depth.abs().amax()) > _HUGE:
        depth = depth.to(torch.float64)
    return F.interpolate(depth, size=latent_size, mode="bicubic", align_corners=False)


def conditioning_key(
    latent_size: tuple[int, int], settings: DepthSettings | None = None, image_size: tuple[int, int] | None = None
) -> tuple:
    """What a measured `DepthRange` depends on: the latent size and the edits (blur at that size)."""
    latent_size = check_size_argument(latent_size, "latent_size")
    settings = check_settings_argument(settings)
    if not settings.has_edits:
        return (latent_size, None)
    edits = tuple(getattr(settings, f.name) for f in EDIT_FIELDS if f.name != "blur")  # blur: in samples
    return (latent_size, (*edits, _blur_samples(settings, latent_size, image_size)))


def _blur_samples(settings: DepthSettings, latent_size: tuple[int, int], image_size: tuple[int, int] | None) -> float:
    image_height = check_size_argument(image_size, "image_size")[0] if image_size is not None else 8 * latent_size[0]
    return settings.blur / (image_height / latent_size[0])


def edit_resized(
    depth: torch.Tensor,
    latent_size: tuple[int, int],
    settings: DepthSettings,
    image_size: tuple[int, int] | None,
    depth_range: DepthRange | None,
) -> torch.Tensor:
    """The edits on depth already at latent size (0..1 per image or in `depth_range`)."""
    image_height = image_size[0] if image_size else 8 * latent_size[0]
    return apply_edits(depth, settings, pixels_per_sample=image_height / latent_size[0], depth_range=depth_range)


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
    `depth_range` (from `sequence.sequence_ranges`) normalises every image of the batch with it.
    Every accepted input gives finite values in [-1, 1].
    """
    latent_size = check_size_argument(latent_size, "latent_size")
    settings = check_settings_argument(settings)
    if image_size is not None:
        image_size = check_size_argument(image_size, "image_size")
    if depth_range is not None:
        if not isinstance(depth_range, DepthRange):
            raise ValueError(f"depth_range: expected DepthRange or None, got {type(depth_range).__name__}")
        key = conditioning_key(latent_size, settings, image_size)
        if depth_range.computed_for is not None and depth_range.computed_for != key:
            raise ValueError(
                f"depth_range: measured for {depth_range.computed_for}, used with {key} (latent size and edits); "
                "compute the ranges with the same size and settings as the conditioning"
            )
    depth = resize_depth(depth, latent_size)
    if settings.has_edits:
        depth = edit_resized(depth, latent_size, settings, image_size, depth_range)
        if depth_range is None:
            conditioning = rescale_per_image(depth, -1.0, 1.0)
        else:
            conditioning = _rescale_to_range(depth, depth_range.edited_low, depth_range.edited_high, -1.0, 1.0)
    elif depth_range is None:
        conditioning = rescale_per_image(depth, -1.0, 1.0)
    else:
        conditioning = _rescale_to_range(depth, depth_range.low, depth_range.high, -1.0, 1.0)
    conditioning = conditioning.to(torch.float32)
    return conditioning.to(device=device if device is not None else conditioning.device, dtype=dtype)
