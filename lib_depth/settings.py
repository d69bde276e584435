"""`DepthSettings`: the value the UI, the API, the infotext and the command line exchange.

Built from the field table (fields.py): its attributes, defaults, validation and both text forms
come from the rows, so nothing here names a single field except the one rule that ties two of them
(far below near). Infotext stores the settings as a single "Depth2img" parameter, e.g.
`source=estimate; invert=true; near=0.9; far=0.1; gamma=1.2` (the source and what differs from the
defaults; no commas, so the WebUI's infotext parser needs no quoting).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from .depth.estimators import get_estimator
from .fields import BY_NAME, EDIT_FIELDS, INFOTEXT_FIELDS, INFOTEXT_KEY, SETTING_FIELDS, Field
from .validation import quote, quote_names

__all__ = ["INFOTEXT_KEY", "DepthSettings"]

_PY_TYPES = {"bool": bool, "float": float, "int": int, "choice": str, "text": str}
MAX_TEXT = 4096  # a folder path


class _SettingsBehaviour:
    """Methods of DepthSettings; the attributes come from the field table."""

    def __post_init__(self) -> None:
        for f in SETTING_FIELDS:
            object.__setattr__(self, f.name, _validated(f, getattr(self, f.name)))
        # the rules that tie fields together
        if self.far >= self.near:  # type: ignore[attr-defined]
            raise ValueError(f"far ({self.far}) must be below near ({self.near})")  # type: ignore[attr-defined]
        if self.resolution:  # type: ignore[attr-defined]  0 is the estimator's own size
            get_estimator(self.estimator).check_resolution(self.resolution)  # type: ignore[attr-defined]

    @property
    def has_edits(self) -> bool:
        """Whether any edit differs from its default (the plain model path skips them)."""
        return any(getattr(self, f.name) != f.default for f in EDIT_FIELDS)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in SETTING_FIELDS}

    def replace(self, **changes: Any) -> DepthSettings:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DepthSettings:
        """Build from API/JSON values; unknown names are an error, missing ones take defaults."""
        if not isinstance(values, Mapping):
            raise ValueError(f"depth settings: expected an object of named values, got {type(values).__name__}")
        known = [f.name for f in SETTING_FIELDS]
        unknown = sorted(map(str, set(values) - set(known)))
        if unknown:
            raise ValueError(f"depth settings: unknown field(s) {quote_names(unknown)}; known: {', '.join(known)}")
        return cls(**dict(values))

    def to_infotext(self) -> str:
        """Every stored field that differs from its default, and the source always (so that the
        parameter is never empty); a missing field reads back as its default."""
        return "; ".join(
            f"{f.infotext}={_format(getattr(self, f.name))}"
            for f in INFOTEXT_FIELDS
            if f.name == "source" or getattr(self, f.name) != f.default
        )

    @classmethod
    def from_infotext(cls, text: str) -> DepthSettings:
        by_label = {f.infotext: f for f in INFOTEXT_FIELDS}
        values: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.strip().strip('"').split(";"))):
            label, sep, raw = part.partition("=")
            label, raw = label.strip(), raw.strip()
            if not sep or label not in by_label:
                raise ValueError(
                    f"{INFOTEXT_KEY} infotext: cannot read {quote(part)}; expected name=value with a name in "
                    + ", ".join(by_label)
                )
            f = by_label[label]
            values[f.name] = _parse(f, raw)
        return cls(**values)


DepthSettings = dataclasses.make_dataclass(
    "DepthSettings",
    [(f.name, _PY_TYPES[f.kind], dataclasses.field(default=f.default)) for f in SETTING_FIELDS],
    bases=(_SettingsBehaviour,),
    frozen=True,
)
DepthSettings.__module__ = __name__
DepthSettings.__doc__ = "What the user chose (fields.py lists each field). Defaults reproduce the depth model."


def check_field(name: str, value: Any) -> Any:
    """One setting validated on its own, as DepthSettings validates it (the same message); the rules
    that tie two fields together are checked when the settings are built."""
    return _validated(BY_NAME[name], value)


def _validated(f: Field, value: Any) -> Any:
    if f.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{f.name}: expected true or false, got {quote(value)}")
        return value
    if f.kind in ("float", "int"):
        # an int is always finite, and math.isfinite of a 400-digit one raises OverflowError
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise ValueError(f"{f.name}: expected a finite number, got {quote(value)}")
        if f.kind == "int" and value != int(value):
            raise ValueError(f"{f.name}: expected a whole number, got {quote(value)}")
        low, high = f.bounds or (-math.inf, math.inf)
        if not low <= value <= high:
            shown = format(value, "g") if isinstance(value, float) else quote(value)  # a 4,000-digit int: cut
            raise ValueError(f"{f.name}: {shown} is outside {f.describe_range()}")
        return float(value) if f.kind == "float" else int(value)
    if f.kind == "text":
        if not isinstance(value, str) or len(value) > MAX_TEXT or "\x00" in value:
            raise ValueError(f"{f.name}: expected a text of at most {MAX_TEXT} characters, got {quote(value)}")
        return value.strip()
    if value not in f.choices:
        raise ValueError(f"{f.name}: expected one of {', '.join(f.choices)}, got {quote(value)}")
    return value


def _finite(value: int | float) -> bool:
    return isinstance(value, int) or math.isfinite(value)


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)  # exact, so infotext round-trips
        return text[:-2] if text.endswith(".0") else text
    return str(value)


def _parse(f: Field, raw: str) -> Any:
    if f.kind == "bool":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ValueError(f"{INFOTEXT_KEY} infotext: {f.name} must be true or false, got {quote(raw)}")
    if f.kind in ("float", "int"):
        try:
            return float(raw) if f.kind == "float" else int(raw)
        except ValueError:
            raise ValueError(f"{INFOTEXT_KEY} infotext: {f.name} must be a number, got {quote(raw)}") from None
    return raw


def check_settings_type(value: object, name: str = "settings") -> object:
    """`value` if it is a DepthSettings (or None for the defaults); ValueError naming what it is
    otherwise (a dict of settings, for example, says how to build one)."""
    if value is None or isinstance(value, DepthSettings):
        return value
    hint = "; build one with DepthSettings(**values)" if isinstance(value, dict) else ""
    raise ValueError(f"{name}: expected a DepthSettings or None, got {type(value).__name__}{hint}")


def check_settings_argument(settings: object) -> DepthSettings:
    """The settings, None meaning the defaults; anything else is a ValueError naming it."""
    return check_settings_type(settings) or DepthSettings()
