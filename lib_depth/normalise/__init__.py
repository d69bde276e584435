"""Normalisation, in one place: which depth values become near and far (0..1 before the edits,
[-1, 1] after them), per image or measured over a frame sequence. conditioning.py calls this
package; nothing here calls conditioning.

- depth_range.py: what a range is and how it is applied (a flat image never divides by zero);
- ranges.py: every range from a sequence's frames at once (per image, shared, smoothed,
  percentile, scene cuts);
- meter.py: the same ranges one frame at a time, in memory that does not grow with the frames.
"""

from .depth_range import DepthRange, rescale_per_image, rescale_to_range
from .meter import ExactQuantiles, SequenceMeter
from .ranges import (
    DEFAULT_CUT_THRESHOLD,
    DEFAULT_TIME_CONSTANT,
    NORMALISE_MODES,
    SmoothedRanges,
    check_depth_range,
    check_sequence_options,
    conditioning_key,
    cut_scores,
    edit_resized,
    edited_unit_depth,
    scene_cuts,
    sequence_ranges,
    settings_ranges,
    to_conditioning_range,
)

__all__ = [
    "DEFAULT_CUT_THRESHOLD",
    "DEFAULT_TIME_CONSTANT",
    "NORMALISE_MODES",
    "DepthRange",
    "ExactQuantiles",
    "SequenceMeter",
    "SmoothedRanges",
    "check_depth_range",
    "check_sequence_options",
    "conditioning_key",
    "cut_scores",
    "edit_resized",
    "edited_unit_depth",
    "rescale_per_image",
    "rescale_to_range",
    "scene_cuts",
    "sequence_ranges",
    "settings_ranges",
    "to_conditioning_range",
]
