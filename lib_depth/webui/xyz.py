"""X/Y/Z plot axes for the depth settings: one per setting the infotext stores, derived from the
field table (label, type, choices, validation), added to the WebUI's scripts/xyz_grid.py
(AUTOMATIC1111 v1.10.1; Forge's copy has the same AxisOption).

xyz_grid.py is loaded by its file name (modules/script_loading.py), so it is found through
`scripts.scripts_data`, never imported and never kept: Reload UI executes it anew with a fresh
`axis_options` list and calls on_before_ui again, where `register_axes` adds only the labels that
are not there yet.

xyz_grid applies each cell to a copy of `p`; an axis stores its value on that copy and
generation.process reads it where it builds the settings: over the accordion's settings, or over the
defaults when the accordion is closed. The cell's infotext then carries the value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from ..fields import INFOTEXT_FIELDS, Field
from ..settings import DepthSettings, check_field
from .args import ScriptRequest

log = logging.getLogger("sd-webui-depth2img")

LABEL_PREFIX = "[Depth2img] "
ATTRIBUTE = "depth2img_xyz"  # on the cell's processing object: {field name: value}
XYZ_MODULE = "xyz_grid.py"  # script_class.__module__ of the WebUI's X/Y/Z plot
TABS = ("txt2img", "img2img")
_TYPES = {"float": float, "int": int}


@dataclass(frozen=True)
class Axis:
    """One axis: a field on both tabs (`tab` None) or on one tab (its choices differ there)."""

    field: Field
    tab: str | None = None

    @property
    def label(self) -> str:
        return LABEL_PREFIX + self.field.label_for(self.tab or "img2img")

    @property
    def value_type(self) -> type:
        return _TYPES.get(self.field.kind, str)

    @property
    def choices(self) -> tuple[str, ...]:
        """The dropdown's values; none for numbers (typed, with xyz_grid's ranges such as 0.5-1.5 (+0.25))."""
        if self.field.kind == "bool":
            return ("false", "true")
        if self.field.kind == "choice":
            return self.field.choices_for(self.tab) if self.tab else self.field.choices
        return ()

    def value(self, x: Any) -> Any:
        """The setting from the axis's value ("true" for a bool)."""
        if self.field.kind == "bool" and isinstance(x, str) and x.strip().lower() in ("true", "false"):
            return x.strip().lower() == "true"
        return self.field.from_ui(x)

    def apply(self, p: Any, x: Any, xs: Any) -> None:
        """xyz_grid's apply: on this cell's copy of p; a new dict, so the original p keeps its own."""
        setattr(p, ATTRIBUTE, {**axis_values(p), self.field.name: self.value(x)})

    def confirm(self, p: Any, xs: Any) -> None:
        """xyz_grid's confirm, before any image: each value as the accordion validates it."""
        tab = "txt2img" if not hasattr(p, "init_images") else "img2img"
        for x in xs:
            try:
                value = check_field(self.field.name, self.value(x))
            except ValueError as error:
                raise ValueError(f"{self.label}: {error}") from None
            offered = self.field.choices_for(tab)
            if self.field.kind == "choice" and value not in offered:
                raise ValueError(f"{self.label}: {tab} offers {', '.join(offered)}, not {value!r}")

    def format_value(self, p: Any, opt: Any, x: Any) -> str:
        """The grid's legend: "[Depth2img] Gamma: 0.8", "[Depth2img] Depth resolution: auto (...)"."""
        value = self.value(x)
        if isinstance(value, float):
            value = round(value, 8)
        shown = self.field.words.get(value, value)
        return f"{self.label}: {str(shown).lower() if isinstance(shown, bool) else shown}"

    def option(self, xyz: Any) -> Any:
        """The module's AxisOption (or its one-tab subclass) for this axis."""
        kind = {None: "AxisOption", "img2img": "AxisOptionImg2Img", "txt2img": "AxisOptionTxt2Img"}[self.tab]
        choices = list(self.choices)
        return getattr(xyz, kind)(
            self.label,
            self.value_type,
            self.apply,
            format_value=self.format_value,
            confirm=self.confirm,
            choices=(lambda: list(choices)) if choices else None,
        )


def _axes() -> tuple[Axis, ...]:
    axes: list[Axis] = []
    for f in INFOTEXT_FIELDS:
        tabs = [tab for tab in TABS if tab in f.tabs]
        if len(tabs) == 1:
            axes.append(Axis(f, tabs[0]))
        elif f.choices_for("txt2img") != f.choices_for("img2img"):  # the source: each tab its own choices
            axes += [Axis(f, tab) for tab in tabs]
        else:
            axes.append(Axis(f))
    return tuple(axes)


AXES: tuple[Axis, ...] = _axes()


def axis_values(p: Any) -> dict[str, Any]:
    """The depth settings this cell's axes set ({} outside an X/Y/Z plot)."""
    return dict(getattr(p, ATTRIBUTE, None) or {})


def with_axis_values(
    p: Any, request: ScriptRequest | None, error: str | None
) -> tuple[ScriptRequest | None, str | None]:
    """generation.process: the script's request with this cell's axis values over its settings, or
    over the defaults when the accordion is closed (request None); (None, message) when the
    combination is invalid (far above near), so that the generation stops with that message."""
    values = axis_values(p)
    if not values or error is not None:
        return request, error
    base = request.settings if request is not None else DepthSettings()
    try:
        settings = base.replace(enabled=True, **values)
    except ValueError as invalid:
        return None, f"depth2img: {invalid}"
    return ScriptRequest(settings, request.image if request is not None else None), None


def find_xyz_module() -> Any | None:
    """The loaded scripts/xyz_grid.py, looked up each time (Reload UI replaces it)."""
    from modules import scripts

    for data in scripts.scripts_data:
        if getattr(data.script_class, "__module__", None) == XYZ_MODULE:
            return data.module
    return None


def _tab_of(option: Any) -> str | None:
    is_img2img = getattr(option, "is_img2img", None)
    return None if is_img2img is None else ("img2img" if is_img2img else "txt2img")


def register_axes(find: Callable[[], Any | None] = find_xyz_module) -> int:
    """on_before_ui: add the axes xyz_grid's list lacks (by label and tab); how many were added."""
    xyz = find()
    if xyz is None:
        log.info("Depth2img: no X/Y/Z plot script loaded; its depth axes are not added.")
        return 0
    present = {(option.label, _tab_of(option)) for option in xyz.axis_options}
    missing = [axis for axis in AXES if (axis.label, axis.tab) not in present]
    xyz.axis_options.extend(axis.option(xyz) for axis in missing)
    return len(missing)


def axis_indices(find: Callable[[], Any | None] = find_xyz_module) -> dict[str, dict[str, int]]:
    """{tab: {label: index}} of our axes, as an API caller passes the X/Y/Z type in script_args: the
    index into the tab's list, filtered as xyz_grid's ui() filters it (indices shift when other
    extensions add axes, so look them up rather than hard-coding them)."""
    xyz = find()
    if xyz is None:
        return {}
    indices: dict[str, dict[str, int]] = {}
    for tab in TABS:
        shown = [o for o in xyz.axis_options if type(o) is xyz.AxisOption or _tab_of(o) == tab]
        indices[tab] = {o.label: n for n, o in enumerate(shown) if o.label.startswith(LABEL_PREFIX)}
    return indices


def axes_table() -> str:
    """The axes as docs/xyz-plot.md lists them (tests/test_webui_xyz.py compares)."""
    lines = ["| axis | tabs | values | setting |", "| --- | --- | --- | --- |"]
    for axis in AXES:
        f = axis.field
        if axis.choices:
            values = ", ".join(axis.choices)
        else:
            kind = "whole numbers" if f.kind == "int" else "numbers"
            named = "".join(f"; {value} = {text}" for value, text in f.words.items())
            values = f"{kind} {f.describe_range()}{named}"
        tabs = axis.tab or ", ".join(tab for tab in TABS if tab in f.tabs)
        lines.append(f"| `{axis.label}` | {tabs} | {values} | `{f.name}` |")
    return "\n".join(lines)
