"""The ranges of a sequence's frames, all given at once: which depth values become near and far
(0..1 before the edits, [-1, 1] after them).

- `per image`: each image's own min..max (what the model was trained on; the default).
- `shared`: one range for the whole sequence.
- `smoothed`: an online range that follows the frames with a time constant (in frames), reset at
  scene cuts (the depth's layout changes from one frame to the next, see `cut_scores`).
- `percentile` cuts that percent at each end, so an outlier pixel or frame does not compress the rest.

Ranges are measured where the conditioning applies them: on the depth at latent size (before the
edits) and again on the edited depth (after invert, levels, gamma, blur), so both rescales of the
conditioning are replaced consistently. A frame whose range equals its own gets exactly the
per-image result: a static sequence is bit-identical in all three modes. conditioning.py calls this
module; this module never calls conditioning.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Iterable

import torch

from ..edits import check_size_argument, edit_unit_depth, resize_depth
from ..fields import DEFAULT_TIME_CONSTANT, EDIT_FIELDS, NORMALISE_MODES
from ..settings import DepthSettings, check_settings_argument
from .depth_range import DepthRange, rescale_per_image, rescale_to_range

__all__ = [
    "DEFAULT_CUT_THRESHOLD",
    "DEFAULT_TIME_CONSTANT",
    "NORMALISE_MODES",
    "DepthRange",
    "SmoothedRanges",
    "check_sequence_options",
    "conditioning_key",
    "cut_scores",
    "edited_unit_depth",
    "rescale_per_image",
    "scene_cuts",
    "sequence_ranges",
    "settings_ranges",
    "to_conditioning_range",
]

DEFAULT_CUT_THRESHOLD = 0.15
PERCENTILE_RANGE = (0.0, 50.0)  # per end, upper bound excluded


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


def edited_unit_depth(
    depth: torch.Tensor,
    settings: DepthSettings,
    pixels_per_sample: float = 1.0,
    depth_range: DepthRange | None = None,
) -> torch.Tensor:
    """Raw depth -> 0..1 (its own min/max, or `depth_range`'s low/high) -> the edits; 0..1."""
    if depth_range is None:
        unit = rescale_per_image(depth, 0.0, 1.0)
    else:
        unit = rescale_to_range(depth, depth_range.low, depth_range.high, 0.0, 1.0)
    return edit_unit_depth(unit, settings, pixels_per_sample)


def edit_resized(
    depth: torch.Tensor,
    latent_size: tuple[int, int],
    settings: DepthSettings,
    image_size: tuple[int, int] | None,
    depth_range: DepthRange | None,
) -> torch.Tensor:
    """The edits on depth already at latent size (0..1 per image or in `depth_range`)."""
    image_height = image_size[0] if image_size else 8 * latent_size[0]
    return edited_unit_depth(depth, settings, image_height / latent_size[0], depth_range)


def to_conditioning_range(depth: torch.Tensor, depth_range: DepthRange | None, *, edited: bool) -> torch.Tensor:
    """The last step: depth (edited 0..1, or raw when there are no edits) -> [-1, 1], per image or
    with `depth_range` (its edited or raw bounds)."""
    if depth_range is None:
        return rescale_per_image(depth, -1.0, 1.0)
    if edited:
        return rescale_to_range(depth, depth_range.edited_low, depth_range.edited_high, -1.0, 1.0)
    return rescale_to_range(depth, depth_range.low, depth_range.high, -1.0, 1.0)


def check_depth_range(
    depth_range: object, latent_size: tuple[int, int], settings: DepthSettings, image_size: tuple[int, int] | None
) -> DepthRange | None:
    """`depth_range` if it is None or a DepthRange measured for this size and these edits."""
    if depth_range is None:
        return None
    if not isinstance(depth_range, DepthRange):
        raise ValueError(f"depth_range: expected DepthRange or None, got {type(depth_range).__name__}")
    key = conditioning_key(latent_size, settings, image_size)
    if depth_range.computed_for is not None and depth_range.computed_for != key:
        raise ValueError(
            f"depth_range: measured for {depth_range.computed_for}, used with {key} (latent size and edits); "
            "compute the ranges with the same size and settings as the conditioning"
        )
    return depth_range



def check_sequence_options(
    mode: str, time_constant: float, percentile: float, cut_threshold: float | None
) -> tuple[str, float, float, float | None]:
    """Validate the normalisation options; ValueError naming the option otherwise."""
    if mode not in NORMALISE_MODES:
        raise ValueError(f"normalise: expected one of {', '.join(NORMALISE_MODES)}, got {mode!r}")
    time_constant = _number("time_constant", time_constant)
    if time_constant <= 0:
        raise ValueError(f"time_constant: expected a number of frames above 0, got {time_constant:g}")
    percentile = _number("percentile", percentile)
    if not PERCENTILE_RANGE[0] <= percentile < PERCENTILE_RANGE[1]:
        raise ValueError(
            f"percentile: expected 0 <= percentile < 50 (percent cut at each end, e.g. 0.5 keeps 0.5..99.5 %), "
            f"got {percentile:g}"
        )
    if cut_threshold is not None:
        cut_threshold = _number("cut_threshold", cut_threshold)
        if not 0.0 <= cut_threshold <= 1.0:
            raise ValueError(f"cut_threshold: expected 0..1 (or None for no cut detection), got {cut_threshold:g}")
    return mode, time_constant, percentile, cut_threshold


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def _frames(depths: torch.Tensor | Iterable[torch.Tensor], latent_size: tuple[int, int]) -> list[torch.Tensor]:
    """Each item ([h, w], [B, h, w] or [B, 1, h, w]; a batch is B frames) -> [1, 1, h, w] at latent size."""
    items = [depths] if isinstance(depths, torch.Tensor) else list(depths)
    frames: list[torch.Tensor] = []
    for index, item in enumerate(items):
        resized = resize_depth(item, latent_size, name=f"depths[{index}]")
        frames.extend(resized.split(1))
    if not frames:
        raise ValueError("depths: no frames given")
    return frames


def percentile_rank(percentile: float, count: int) -> int:
    """0-based rank of the lower bound: floor(p/100 * n), exactly (nearest rank, no interpolation).

    Exact ranks keep a repeated frame's pooled range equal to its own range (static sequences).
    """
    return int(Fraction(percentile) * count // 100)


def frame_bounds(values: torch.Tensor, percentile: float) -> tuple[float, float]:
    flat = values.reshape(-1)
    if percentile == 0.0:
        return float(flat.amin()), float(flat.amax())
    rank = percentile_rank(percentile, flat.numel())
    low = flat.kthvalue(rank + 1).values
    high = flat.kthvalue(flat.numel() - rank).values
    return float(low), float(high)


def cut_scores(depths: torch.Tensor | Iterable[torch.Tensor], latent_size: tuple[int, int]) -> list[float]:
    """Per frame, how much its depth changed from the frame before, 0..1 (0 for the first frame).

    (1 - correlation) / 2 of the two frames' depth at latent size: blind to a change of depth scale or
    offset (which normalisation handles), so only a change of the scene's layout counts; unrelated
    shots score about 0.5, motion within a shot a few hundredths.
    """
    return _cut_scores(_frames(depths, check_size_argument(latent_size, "latent_size")))


def _centred(frame: torch.Tensor) -> torch.Tensor:
    """A frame's depth, mean removed, at unit scale (float64: no overflow or underflow in the sums)."""
    values = frame.reshape(-1).to(torch.float64)
    values = values - values.mean()
    peak = float(values.abs().max())
    return values / peak if peak > 0 else values


def _cut_score(before: torch.Tensor, after: torch.Tensor) -> float:
    norms = float(before.norm()) * float(after.norm())
    if norms > 0:
        correlation = float(before @ after) / norms
    else:
        correlation = 1.0 if float(before.norm()) == float(after.norm()) else 0.0  # flat: same if both flat
    return min(1.0, max(0.0, (1.0 - correlation) / 2.0))


def _cut_scores(frames: list[torch.Tensor]) -> list[float]:
    centred = [_centred(frame) for frame in frames]
    return [0.0] + [_cut_score(before, after) for before, after in zip(centred, centred[1:], strict=False)]


def scene_cuts(
    depths: torch.Tensor | Iterable[torch.Tensor],
    latent_size: tuple[int, int],
    threshold: float | None = DEFAULT_CUT_THRESHOLD,
) -> list[int]:
    """Indices of the frames that start a new shot (always including 0)."""
    check_sequence_options("smoothed", 1.0, 0.0, threshold)
    return _cuts(cut_scores(depths, latent_size), threshold)


def _cuts(scores: list[float], threshold: float | None) -> list[int]:
    if threshold is None:
        return [0]
    return [0] + [index for index, score in enumerate(scores) if index > 0 and score > threshold]


def _combine(bounds: list[tuple[float, float]], mode: str, pooled: tuple[float, float]) -> list[tuple[float, float]]:
    """Per-frame (low, high) -> the range each frame is normalised with (per image or shared)."""
    return list(bounds) if mode == "per image" else [pooled] * len(bounds)


def _follow(current: tuple[float, float], frame: tuple[float, float], rate: float) -> tuple[float, float]:
    """One step of the smoothed range towards a frame's own range."""
    low = current[0] + rate * (frame[0] - current[0])
    high = current[1] + rate * (frame[1] - current[1])
    return low, max(high, low)  # rounding must not cross them


class SmoothedRanges:
    """The `smoothed` ranges one frame at a time, in order: for callers that cannot gather the frames
    first (the img2img Batch tab calls the generation once per frame). Each frame's range depends only
    on the frames before it, so this gives exactly `sequence_ranges(..., mode="smoothed")`.
    """

    def __init__(
        self,
        latent_size: tuple[int, int],
        settings: DepthSettings | None = None,
        *,
        image_size: tuple[int, int] | None = None,
        time_constant: float = DEFAULT_TIME_CONSTANT,
        percentile: float = 0.0,
        cut_threshold: float | None = DEFAULT_CUT_THRESHOLD,
    ) -> None:
        _, time_constant, self.percentile, self.cut_threshold = check_sequence_options(
            "smoothed", time_constant, percentile, cut_threshold
        )
        self.latent_size = check_size_argument(latent_size, "latent_size")
        self.settings = check_settings_argument(settings)
        self.image_size = check_size_argument(image_size, "image_size") if image_size is not None else None
        self.key = conditioning_key(self.latent_size, self.settings, self.image_size)
        self.rate = -math.expm1(-1.0 / time_constant)  # 1 - exp(-1/tau): a step decays by 1/e in tau frames
        self.reset()

    def reset(self) -> None:
        """Forget the frames so far: the next frame starts a new shot."""
        self._previous: torch.Tensor | None = None
        self._raw = (0.0, 0.0)
        self._edited = (0.0, 0.0)
        self.frames = 0
        self.last_was_cut = False

    def next(self, depth: torch.Tensor) -> DepthRange:
        """The range for the next frame's raw depth ([h, w], [1, h, w] or [1, 1, h, w])."""
        frame = resize_depth(depth, self.latent_size, name=f"depth of frame {self.frames + 1}")
        if frame.shape[0] != 1:
            raise ValueError(f"depth of frame {self.frames + 1}: expected one frame, got a batch of {frame.shape[0]}")
        return self._next_resized(frame)

    def _next_resized(self, frame: torch.Tensor) -> DepthRange:
        centred = _centred(frame)
        cut = self._previous is None or (
            self.cut_threshold is not None and _cut_score(self._previous, centred) > self.cut_threshold
        )
        self._previous = centred
        self.frames += 1
        self.last_was_cut = cut
        bounds = frame_bounds(frame, self.percentile)
        self._raw = bounds if cut else _follow(self._raw, bounds, self.rate)
        if not self.settings.has_edits:
            return DepthRange(*self._raw, computed_for=self.key)
        edited = edit_resized(frame, self.latent_size, self.settings, self.image_size, DepthRange(*self._raw))
        edited_bounds = frame_bounds(edited, 0.0)
        self._edited = edited_bounds if cut else _follow(self._edited, edited_bounds, self.rate)
        return DepthRange(*self._raw, *self._edited, computed_for=self.key)


def sequence_ranges(
    depths: torch.Tensor | Iterable[torch.Tensor],
    latent_size: tuple[int, int],
    settings: DepthSettings | None = None,
    *,
    image_size: tuple[int, int] | None = None,
    mode: str = "per image",
    time_constant: float = DEFAULT_TIME_CONSTANT,
    percentile: float = 0.0,
    cut_threshold: float | None = DEFAULT_CUT_THRESHOLD,
) -> list[DepthRange]:
    """One `DepthRange` per frame, in order, for `depth_to_conditioning(..., depth_range=...)`.

    `depths`: the raw depth of every frame (white = near), as given to `depth_to_conditioning`; a
    tensor with a batch dimension counts as that many frames. `latent_size`, `settings` and
    `image_size` must be those of the conditioning (the ranges are measured at that size, after
    those edits). `percentile` cuts that percent at each end of the range (0.5 keeps 0.5..99.5 %;
    pooled over all frames for `shared`), so an outlier pixel or frame does not compress the rest;
    0 is the exact min/max. `time_constant` (frames) and `cut_threshold` (see `scene_cuts`; None:
    never reset) only matter for `smoothed`.
    """
    mode, time_constant, percentile, cut_threshold = check_sequence_options(
        mode, time_constant, percentile, cut_threshold
    )
    latent_size = check_size_argument(latent_size, "latent_size")
    settings = check_settings_argument(settings)
    if image_size is not None:
        image_size = check_size_argument(image_size, "image_size")
    key = conditioning_key(latent_size, settings, image_size)
    frames = _frames(depths, latent_size)
    if mode == "smoothed":
        smoother = SmoothedRanges(
            latent_size,
            settings,
            image_size=image_size,
            time_constant=time_constant,
            percentile=percentile,
            cut_threshold=cut_threshold,
        )
        return [smoother._next_resized(frame) for frame in frames]

    bounds = [frame_bounds(frame, percentile) for frame in frames]
    pooled = _pooled(frames, bounds, percentile) if mode == "shared" else (0.0, 0.0)
    raw = _combine(bounds, mode, pooled)
    if not settings.has_edits:
        return [DepthRange(low, high, computed_for=key) for low, high in raw]

    edited_bounds = [  # exact min/max: the percentile already clipped the raw range
        frame_bounds(edit_resized(frame, latent_size, settings, image_size, DepthRange(low, high)), 0.0)
        for frame, (low, high) in zip(frames, raw, strict=True)
    ]
    edited_pooled = (min(low for low, _ in edited_bounds), max(high for _, high in edited_bounds))
    edited = _combine(edited_bounds, mode, edited_pooled)
    return [
        DepthRange(low, high, edited_low, edited_high, computed_for=key)
        for (low, high), (edited_low, edited_high) in zip(raw, edited, strict=True)
    ]


def settings_ranges(
    depths: torch.Tensor | Iterable[torch.Tensor],
    latent_size: tuple[int, int],
    settings: DepthSettings,
    image_size: tuple[int, int] | None = None,
) -> list[DepthRange]:
    """`sequence_ranges` with the sequence options the settings carry (normalise, time constant,
    percentile): what the WebUI and the command line use."""
    return sequence_ranges(
        depths,
        latent_size,
        settings,
        image_size=image_size,
        mode=settings.normalise,
        time_constant=settings.time_constant,
        percentile=settings.percentile,
    )


def _pooled(frames: list[torch.Tensor], bounds: list[tuple[float, float]], percentile: float) -> tuple[float, float]:
    """The range of all frames' values together."""
    if percentile == 0.0:
        return min(low for low, _ in bounds), max(high for _, high in bounds)
    values = torch.cat([frame.reshape(-1).to(torch.float64) for frame in frames])
    return frame_bounds(values, percentile)
