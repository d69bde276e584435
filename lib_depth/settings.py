"""The one definition of the depth settings, shared by UI, API and infotext.

Infotext stores them as a single "Depth2img" parameter, e.g.
`source=estimate; invert=true; near=0.9; far=0.1; gamma=1.2; blur=4; masked area=original`
(no commas, so the WebUI's infotext parser needs no quoting).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

SOURCES = ("estimate", "upload", "reference")
MASKED_AREA_MODES = ("original", "filled")
GAMMA_RANGE = (0.1, 10.0)
BLUR_RANGE = (0.0, 128.0)

INFOTEXT_KEY = "Depth2img"
# infotext name -> field name; the names read well in PNG info
_INFOTEXT_NAMES = {
    "source": "source",
    "invert": "invert",
    "near": "near",
    "far": "far",
    "gamma": "gamma",
    "blur": "blur",
    "masked area": "masked_area",
}


@dataclass(frozen=True)
class DepthSettings:
    """What the user chose. Defaults reproduce the depth model's intended behaviour."""

    enabled: bool = True
    source: str = "estimate"  # estimate from the image | upload a depth map | reference image (txt2img)
    invert: bool = False  # flip near and far (for maps where black = near)
    near: float = 1.0  # depth level (0..1) that becomes nearest; nearer is clipped
    far: float = 0.0  # depth level (0..1) that becomes farthest; farther is clipped
    gamma: float = 1.0  # >1 pushes mid depths back, <1 pulls them forward
    blur: float = 0.0  # Gaussian blur radius in image pixels
    masked_area: str = "original"  # inpaint: depth of the masked area from original or filled pixels
    save_depth: bool = False  # save the depth map next to each output

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "bool" and not isinstance(value, bool):
                raise ValueError(f"{f.name}: expected true or false, got {value!r}")
            if f.type == "float":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise ValueError(f"{f.name}: expected a finite number, got {value!r}")
                object.__setattr__(self, f.name, float(value))
        _check_choice("source", self.source, SOURCES)
        _check_choice("masked_area", self.masked_area, MASKED_AREA_MODES)
        _check_range("near", self.near, (0.0, 1.0))
        _check_range("far", self.far, (0.0, 1.0))
        if self.far >= self.near:
            raise ValueError(f"far ({self.far}) must be below near ({self.near})")
        _check_range("gamma", self.gamma, GAMMA_RANGE)
        _check_range("blur", self.blur, BLUR_RANGE)

    @property
    def has_edits(self) -> bool:
        return self.invert or self.near != 1.0 or self.far != 0.0 or self.gamma != 1.0 or self.blur > 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DepthSettings:
        """Build from API/JSON values; unknown names are an error, missing ones take defaults."""
        if not isinstance(values, Mapping):
            raise ValueError(f"depth settings: expected an object of named values, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"depth settings: unknown field(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(known))}"
            )
        return cls(**dict(values))

    def to_infotext(self) -> str:
        parts = []
        for name, field_name in _INFOTEXT_NAMES.items():
            value = getattr(self, field_name)
            parts.append(f"{name}={_format(value)}")
        return "; ".join(parts)

    @classmethod
    def from_infotext(cls, text: str) -> DepthSettings:
        values: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.strip().strip('"').split(";"))):
            name, sep, raw = part.partition("=")
            name, raw = name.strip(), raw.strip()
            if not sep or name not in _INFOTEXT_NAMES:
                names = ", ".join(_INFOTEXT_NAMES)
                raise ValueError(
                    f"{INFOTEXT_KEY} infotext: cannot read {part!r}; expected name=value with a name in {names}"
                )
            field_name = _INFOTEXT_NAMES[name]
            values[field_name] = _parse(field_name, raw)
        return cls(**values)


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)  # exact, so infotext round-trips
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def _parse(field_name: str, raw: str) -> Any:
    kind = {f.name: f.type for f in fields(DepthSettings)}[field_name]
    if kind == "bool":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ValueError(f"{INFOTEXT_KEY} infotext: {field_name} must be true or false, got {raw!r}")
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{INFOTEXT_KEY} infotext: {field_name} must be a number, got {raw!r}") from None
    return raw


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")


def _check_range(name: str, value: float, bounds: tuple[float, float]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise ValueError(f"{name}: {value:g} is outside {low:g}..{high:g}")
