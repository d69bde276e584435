"""What the numbers of a user depth map mean, and the model's convention they are turned into.

The depth model was trained on MiDaS output: relative inverse depth (disparity), white = near,
min-max normalised per image. Min-max removes scale and shift, so a map that is affine in
1/distance gives exactly the training signal:
- `relative`: the map already is that (MiDaS/Depth Anything output, a painted map, Nuke's depth.Z);
  used as it is.
- `distance`: distance from the camera in any unit, larger = farther (Blender's Z pass, Unreal's
  SceneDepth, a depth camera's millimetres); it becomes 1/distance. Pixels without depth (0,
  negative, NaN, inf: sky in a renderer, no reading in a depth camera) become the farthest valid
  distance, and how many there were is reported.
The scale of 1/distance is kept (not normalised here), so a sequence normalised with one shared
range still sees the frames' true relative distances.
"""

from __future__ import annotations

import numpy as np

DEPTH_KINDS = ("relative", "distance")
# Distances below the farthest valid one divided by this are clipped to it: 1/d would otherwise
# overflow float32 for subnormal readings, and a ratio of 10^12 is far beyond any scene's.
MAX_DISTANCE_RATIO = 1e12


def to_model_depth(values: np.ndarray, kind: str, name: str) -> tuple[np.ndarray, int]:
    """(float32 [H, W] depth the model's way, larger = nearer; pixels without depth filled).

    ValueError naming `name` for a map with no valid pixel, or whose valid pixels are all equal
    (a flat map holds no depth), or (relative) with NaN or infinite pixels.
    """
    if kind not in DEPTH_KINDS:
        raise ValueError(f"depth_kind: expected one of {', '.join(DEPTH_KINDS)}, got {kind!r}")
    values = np.asarray(values, dtype=np.float64)
    if kind == "relative":
        invalid = int(values.size - np.count_nonzero(np.isfinite(values)))
        if invalid:
            raise ValueError(
                f"{name}: {invalid:,} pixel(s) are NaN or infinite; if the map holds distances (larger = farther), "
                "choose depth_kind distance, which treats them as no depth"
            )
        _check_not_flat(values, name, "value")
        return values.astype(np.float32), 0
    valid = np.isfinite(values) & (values > 0)
    found = int(np.count_nonzero(valid))
    if not found:
        raise ValueError(f"{name}: no pixel holds a distance (all are 0, negative, NaN or infinite)")
    farthest = float(values[valid].max())
    _check_not_flat(values[valid], name, "distance")
    distance = np.where(valid, values, farthest)
    distance = np.maximum(distance, farthest / MAX_DISTANCE_RATIO)
    with np.errstate(over="ignore"):
        inverse = (1.0 / distance).astype(np.float32)
    if not np.isfinite(inverse).all():
        raise ValueError(
            f"{name}: distances down to {farthest / MAX_DISTANCE_RATIO:g} are too small to invert in 32 bits; "
            "scale the map up (any unit works)"
        )
    return inverse, int(values.size - found)


def _check_not_flat(values: np.ndarray, name: str, what: str) -> None:
    low, high = float(values.min()), float(values.max())
    if low == high:
        raise ValueError(
            f"{name}: every {'valid ' if what == 'distance' else ''}pixel holds the same {what} ({low:g}); "
            "a flat map has no depth to keep"
        )


def describe_filled(count: int, total: int) -> str:
    """The status note for pixels without depth, empty when there were none."""
    if not count:
        return ""
    return f"{count:,} of {total:,} pixels had no depth (0, negative, NaN or inf) and were set to the farthest distance"
