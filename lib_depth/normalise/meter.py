"""Sequence ranges measured one frame at a time, in memory that does not grow with the frames.

`ranges.sequence_ranges` takes every frame at once; a clip of thousands of frames does not fit.
`SequenceMeter` gives exactly the same ranges from frames handed in one by one:

- `per image` and `smoothed`: a frame's range depends only on it and the frames before it, so
  `add` returns it at once (the caller can write or generate that frame straight away);
- `shared`: the pooled range needs every frame; `add` keeps two numbers a frame (its min/max) and,
  with a percentile, a histogram; `finish` reads the frames again as often as it needs (an exact
  radix selection of the pooled percentiles, usually two more reads; one more for the edits'
  range), from wherever the caller keeps them (io/depth_store.py), and returns every frame's range.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from ..edits import check_size_argument, resize_depth
from ..settings import DepthSettings, check_settings_argument
from .ranges import (
    DEFAULT_CUT_THRESHOLD,
    DepthRange,
    SmoothedRanges,
    check_sequence_options,
    conditioning_key,
    edit_resized,
    frame_bounds,
    percentile_rank,
)

__all__ = ["ExactQuantiles", "SequenceMeter"]

_DIGIT_BITS = 16
_DIGIT_MASK = (1 << _DIGIT_BITS) - 1
_SIGN = -(1 << 63)  # int64 with only the sign bit
_MAGNITUDE = (1 << 63) - 1


def _order_keys(values: torch.Tensor) -> torch.Tensor:
    """Values -> int64 keys in the same order (as float64, exact for float32): negative floats get
    their magnitude bits flipped, so comparing keys as signed integers compares the values."""
    bits = values.reshape(-1).to(torch.float64).view(torch.int64)
    return bits ^ ((bits >> 63) & _MAGNITUDE)


def _value_of(key: int) -> float:
    bits = key ^ ((key >> 63) & _MAGNITUDE)
    return float(torch.tensor([bits], dtype=torch.int64).view(torch.float64))


def _digits(keys: torch.Tensor, shift: int) -> torch.Tensor:
    """The 16 bits at `shift` of the keys as unsigned numbers (sign bit flipped): bucket order is key order."""
    return ((keys ^ _SIGN) >> shift) & _DIGIT_MASK


def _tables() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(count, smallest key, largest key) per bucket."""
    size = 1 << _DIGIT_BITS
    return (
        torch.zeros(size, dtype=torch.int64),
        torch.full((size,), _MAGNITUDE, dtype=torch.int64),
        torch.full((size,), _SIGN, dtype=torch.int64),
    )


def _accumulate(tables: tuple[torch.Tensor, torch.Tensor, torch.Tensor], keys: torch.Tensor, shift: int) -> None:
    if not keys.numel():
        return
    histogram, low, high = tables
    digits = _digits(keys, shift)
    histogram += torch.bincount(digits, minlength=histogram.numel())
    low.scatter_reduce_(0, digits, keys, reduce="amin")
    high.scatter_reduce_(0, digits, keys, reduce="amax")


class _Target:
    """One wanted rank: the bucket it is in so far (a key from it) and its rank inside that bucket."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.reference = 0
        self.value: int | None = None

    def choose(self, tables: tuple[torch.Tensor, torch.Tensor, torch.Tensor], shift: int) -> None:
        histogram, low, high = tables
        cumulative = histogram.cumsum(0)
        bucket = int(torch.searchsorted(cumulative, torch.tensor([self.rank]), right=True))
        self.rank -= int(cumulative[bucket - 1]) if bucket else 0
        self.reference = int(low[bucket])
        if self.reference == int(high[bucket]) or shift == 0:  # one value left in the bucket
            self.value = self.reference

    def inside(self, keys: torch.Tensor, shift: int) -> torch.Tensor:
        """The keys in this target's bucket: the same bits above `shift` as the reference."""
        above = shift + _DIGIT_BITS
        return keys[((keys ^ _SIGN) >> above) == ((self.reference ^ _SIGN) >> above)]


class ExactQuantiles:
    """The k-th smallest values of a stream of tensors too large to hold together: the values
    `torch.kthvalue` gives over all of them, by radix selection on their bit patterns, 16 bits a
    pass. Each bucket also keeps its smallest and largest key, so a target stops as soon as its
    bucket holds one value (float32 depth: the caller's pass and two more)."""

    def __init__(self) -> None:
        self.count = 0
        self._first = _tables()

    def add(self, values: torch.Tensor) -> None:
        """The first pass: every value once."""
        keys = _order_keys(values)
        self.count += keys.numel()
        _accumulate(self._first, keys, 64 - _DIGIT_BITS)

    def select(self, ranks: list[int], values_again: Callable[[], Iterable[torch.Tensor]]) -> list[float]:
        """The values at 0-based `ranks` (each below `count`), reading the values again, in the same
        order, as often as needed."""
        if any(not 0 <= rank < self.count for rank in ranks):
            raise ValueError(f"ranks {ranks}: expected 0 <= rank < {self.count}")
        targets = [_Target(rank) for rank in ranks]
        shift = 64 - _DIGIT_BITS
        for target in targets:
            target.choose(self._first, shift)
        while any(t.value is None for t in targets):
            shift -= _DIGIT_BITS
            waiting = [t for t in targets if t.value is None]
            tables = [_tables() for _ in waiting]
            for values in values_again():
                keys = _order_keys(values)
                for target, table in zip(waiting, tables, strict=True):
                    _accumulate(table, target.inside(keys, shift), shift)
            for target, table in zip(waiting, tables, strict=True):
                target.choose(table, shift)
        return [_value_of(t.value) for t in targets]


class SequenceMeter:
    """The ranges of a sequence from frames added in order (see the module's note)."""

    def __init__(
        self,
        latent_size: tuple[int, int],
        settings: DepthSettings | None = None,
        image_size: tuple[int, int] | None = None,
        *,
        cut_threshold: float | None = DEFAULT_CUT_THRESHOLD,
    ) -> None:
        settings = check_settings_argument(settings)
        self.mode, time_constant, self.percentile, _ = check_sequence_options(
            settings.normalise, settings.time_constant, settings.percentile, cut_threshold
        )
        self.latent_size = check_size_argument(latent_size, "latent_size")
        self.image_size = check_size_argument(image_size, "image_size") if image_size is not None else None
        self.settings = settings
        self.key = conditioning_key(self.latent_size, settings, self.image_size)
        self._smoother = (
            SmoothedRanges(
                self.latent_size,
                settings,
                image_size=self.image_size,
                time_constant=time_constant,
                percentile=self.percentile,
                cut_threshold=cut_threshold,
            )
            if self.mode == "smoothed"
            else None
        )
        self._ranges: list[DepthRange] = []
        self._low = float("inf")
        self._high = float("-inf")
        self._quantiles = ExactQuantiles() if self.mode == "shared" and self.percentile else None
        self.frames = 0

    @property
    def online(self) -> bool:
        """Whether `add` gives each frame's range at once (per image, smoothed)."""
        return self.mode != "shared"

    def add(self, depth: torch.Tensor) -> DepthRange | None:
        """One frame's raw depth ([h, w], [1, h, w] or [1, 1, h, w]); its range when `online`."""
        frame = self._resized(depth, self.frames)
        self.frames += 1
        if self._smoother is not None:
            self._ranges.append(self._smoother._next_resized(frame))
            return self._ranges[-1]
        low, high = frame_bounds(frame, self.percentile)
        if self.mode == "per image":
            self._ranges.append(self._with_edits(frame, low, high))
            return self._ranges[-1]
        if self._quantiles is not None:
            self._quantiles.add(frame)
        self._low, self._high = min(self._low, low), max(self._high, high)
        return None

    def finish(self, depths_again: Callable[[], Iterable[torch.Tensor]]) -> list[DepthRange]:
        """Every frame's range, in order. `depths_again()` yields the frames' raw depth again, in the
        order they were added (only called for `shared`, never for `online` modes)."""
        if self.frames == 0:
            raise ValueError("depths: no frames given")
        if self.online:
            return list(self._ranges)
        low, high = self._low, self._high
        if self._quantiles is not None:
            rank = percentile_rank(self.percentile, self._quantiles.count)
            ranks = [rank, self._quantiles.count - rank - 1]
            low, high = self._quantiles.select(ranks, self._frames(depths_again))
        if not self.settings.has_edits:
            return [DepthRange(low, high, computed_for=self.key)] * self.frames
        edited_low, edited_high = float("inf"), float("-inf")
        for frame in self._frames(depths_again)():
            edited = edit_resized(frame, self.latent_size, self.settings, self.image_size, DepthRange(low, high))
            bounds = frame_bounds(edited, 0.0)
            edited_low, edited_high = min(edited_low, bounds[0]), max(edited_high, bounds[1])
        return [DepthRange(low, high, edited_low, edited_high, computed_for=self.key)] * self.frames

    def _with_edits(self, frame: torch.Tensor, low: float, high: float) -> DepthRange:
        if not self.settings.has_edits:
            return DepthRange(low, high, computed_for=self.key)
        edited = edit_resized(frame, self.latent_size, self.settings, self.image_size, DepthRange(low, high))
        return DepthRange(low, high, *frame_bounds(edited, 0.0), computed_for=self.key)

    def _resized(self, depth: torch.Tensor, index: int) -> torch.Tensor:
        frame = resize_depth(depth, self.latent_size, name=f"depth of frame {index + 1}")
        if frame.shape[0] != 1:
            raise ValueError(f"depth of frame {index + 1}: expected one frame, got a batch of {frame.shape[0]}")
        return frame

    def _frames(self, depths_again: Callable[[], Iterable[torch.Tensor]]) -> Callable[[], Iterable[torch.Tensor]]:
        def frames() -> Iterable[torch.Tensor]:
            count = 0
            for index, depth in enumerate(depths_again()):
                count += 1
                yield self._resized(depth, index)
            if count != self.frames:
                raise ValueError(f"depths: {count} frames read again, {self.frames} measured")

        return frames
