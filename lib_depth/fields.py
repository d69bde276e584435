"""THE table of the script's fields: one row each, and everything else is derived from it.

Validation and the `DepthSettings` type (settings.py), the infotext names, the API's argument
names and positional order, the UI widgets with their tooltips and the paste-back pairs (the WebUI
glue), the command line's flags (cli.py) and the settings table of docs/settings.md (a test compares)
all read these rows. A new field is one new row here, appended at the end so that positional API
calls keep working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .depth.estimators import DAV2_RESOLUTIONS, DEFAULT_ESTIMATOR, ESTIMATOR_NAMES, ESTIMATORS

INFOTEXT_KEY = "Depth2img"
NORMALISE_MODES = ("per image", "shared", "smoothed")  # sequence.py implements them
# 10 s at 24 fps: within a shot the range barely moves (an object approaching for a second moves it
# by a tenth or less of what per-image normalisation does); scene cuts reset it, so it need not adapt fast.
DEFAULT_TIME_CONSTANT = 240.0
ESTIMATED_SOURCES = ("estimate", "reference")  # the sources whose depth an estimator makes
AUTO_RESOLUTION = "auto (the estimator's size)"  # resolution 0 in words


@dataclass(frozen=True)
class Field:
    """One script field. `kind` is "bool", "float", "int", "choice", "text" or "image" (not a
    setting: the uploaded map(s) or reference photo, passed beside the settings)."""

    name: str  # attribute, API name, CLI flag (--name with dashes)
    kind: str
    default: Any
    label: str  # UI label
    help: str  # tooltip, CLI help and the settings page's meaning column
    infotext: str | None = None  # name inside the infotext parameter; None: not stored
    bounds: tuple[float, float] | None = None  # inclusive range of a "float"
    step: float | None = None  # UI slider step
    choices: tuple[str, ...] = ()
    edit: bool = False  # an edit of the depth (has_edits; applied before normalisation)
    cli: bool = False  # a command-line flag of `preview` and `depth`
    api: bool = True  # accepted over the HTTP API (False: the Batch tab's own: a server folder or an option about one)
    mirrors: str | None = None  # a hidden copy of this WebUI input (its elem_id), kept in step by the UI
    tabs: tuple[str, ...] = ("txt2img", "img2img")  # where the UI shows it
    per_tab: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # UI overrides (choices, label)
    widget: str = ""  # "dropdown": a dropdown instead of the kind's usual widget (radio, slider)
    words: Mapping[Any, str] = field(default_factory=dict)  # values the UI names in words (0: "auto ...")
    suggestions: tuple[Any, ...] = ()  # a dropdown's usual values beside the words (any other can be typed)
    shown_when: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # the UI shows it only then

    @property
    def is_setting(self) -> bool:
        return self.kind != "image"

    def choices_for(self, tab: str) -> tuple[str, ...]:
        return tuple(self.per_tab.get(tab, {}).get("choices", self.choices))

    def label_for(self, tab: str) -> str:
        return self.per_tab.get(tab, {}).get("label", self.label)

    def default_for(self, tab: str) -> Any:
        if self.kind == "choice":
            return self.choices_for(tab)[0] if self.default not in self.choices_for(tab) else self.default
        return self.default

    def to_ui(self, value: Any) -> Any:
        """The value as its widget shows it: words for a named value, text in a dropdown of numbers."""
        if value in self.words:
            return self.words[value]
        return str(value) if self.widget == "dropdown" and self.kind in ("int", "float") else value

    def from_ui(self, value: Any) -> Any:
        """The widget's value as the setting: words back to their value, a typed number to a number;
        anything else unchanged (validation names what is wrong with it)."""
        if isinstance(value, str):
            for named, text in self.words.items():
                if value.strip() == text:
                    return named
            if self.kind == "int" and value.strip().isdigit():
                return int(value.strip())
        return value

    def shown(self, values: Mapping[str, Any]) -> bool:
        """Whether the UI shows this field when the fields it depends on have `values`."""
        return all(values.get(name) in allowed for name, allowed in self.shown_when.items())

    def describe_range(self) -> str:
        """ "0.1..10" or "estimate, upload" for help texts and docs/settings.md."""
        if self.bounds:
            return f"{self.bounds[0]:g}..{self.bounds[1]:g}"
        if self.kind == "text":
            return "a folder"
        if self.choices:
            return ", ".join(self.choices)
        return ""


FIELDS: tuple[Field, ...] = (
    Field(
        "enabled",
        "bool",
        True,
        "Depth2img",
        "use the settings below, store them in the infotext (a depth model always gets per-image depth)",
    ),
    Field(
        "source",
        "choice",
        "estimate",
        "Depth source",
        "estimate: MiDaS depth of the init image; upload: your own depth map (white = near); "
        "reference: the depth of another photo (txt2img)",
        infotext="source",
        choices=("estimate", "upload", "reference"),
        per_tab={"img2img": {"choices": ("estimate", "upload")}, "txt2img": {"choices": ("upload", "reference")}},
    ),
    Field(
        "invert",
        "bool",
        False,
        "Invert",
        "flip near and far (for maps where black = near)",
        infotext="invert",
        edit=True,
        cli=True,
    ),
    Field(
        "near",
        "float",
        1.0,
        "Near level",
        "depth (0..1) that becomes nearest; anything nearer is clipped",
        infotext="near",
        bounds=(0.0, 1.0),
        step=0.01,
        edit=True,
        cli=True,
    ),
    Field(
        "far",
        "float",
        0.0,
        "Far level",
        "depth (0..1) that becomes farthest; anything farther is clipped",
        infotext="far",
        bounds=(0.0, 1.0),
        step=0.01,
        edit=True,
        cli=True,
    ),
    Field(
        "gamma",
        "float",
        1.0,
        "Gamma",
        "above 1 pushes mid depths back, below 1 pulls them forward",
        infotext="gamma",
        bounds=(0.1, 10.0),
        step=0.05,
        edit=True,
        cli=True,
    ),
    Field(
        "blur",
        "float",
        0.0,
        "Blur",
        "Gaussian blur radius in image pixels: softens depth edges",
        infotext="blur",
        bounds=(0.0, 128.0),
        step=1.0,
        edit=True,
        cli=True,
    ),
    Field(
        "masked_area",
        "choice",
        "original",
        "Masked area depth",
        "inpaint: estimate the masked area's depth from the original pixels (keeps the composition) "
        "or from the image as the WebUI filled it",
        infotext="masked area",
        choices=("original", "filled"),
        tabs=("img2img",),
    ),
    Field(
        "save_depth",
        "bool",
        False,
        "Save depth map",
        "save the depth map next to each output as NAME-depth.png (16-bit)",
    ),
    Field(
        "image",
        "image",
        None,
        "Depth map",
        "8/16-bit grayscale, RGB or palette; white = near. In txt2img with 'reference', a photo whose depth "
        "is estimated",
        per_tab={"txt2img": {"label": "Depth map / reference image"}},
        shown_when={"source": ("upload", "reference")},
    ),
    # appended after "image" so that positional API calls made before them keep working
    Field(
        "estimator",
        "choice",
        DEFAULT_ESTIMATOR,
        "Depth estimator",
        "dpt-hybrid: the checkpoint's own MiDaS, what the model was trained with (no extra file); "
        "depth-anything-v2-*: sharper on people and thin structures (small: Apache-2.0; base, large: "
        "CC-BY-NC-4.0, non-commercial), weights in models/depth2img",
        infotext="estimator",
        choices=ESTIMATOR_NAMES,
        cli=True,
        widget="dropdown",
        shown_when={"source": ESTIMATED_SOURCES},
    ),
    Field(
        "resolution",
        "int",
        0,
        "Depth resolution",
        "the estimator's input size; 0: its trained size ("
        + ", ".join(
            f"{spec.name} {spec.default_resolution}"
            for spec in ESTIMATORS.values()
            if spec.name in ("dpt-hybrid", "depth-anything-v2-small")
        )
        + "); dpt-hybrid takes 384, 512, 768, 1024; depth-anything-v2 multiples of 14 up to 1022",
        infotext="resolution",
        bounds=(0, 1024),
        step=2,
        cli=True,
        widget="dropdown",
        words={0: AUTO_RESOLUTION},
        suggestions=tuple(  # dpt-hybrid's sizes, each estimator's own, the largest depth-anything-v2 takes
            sorted(
                {
                    *ESTIMATORS["dpt-hybrid"].allowed_resolutions,
                    *(s.default_resolution for s in ESTIMATORS.values()),
                    DAV2_RESOLUTIONS[-1],
                }
            )
        ),
        shown_when={"source": ESTIMATED_SOURCES},
    ),
    Field(
        "normalise",
        "choice",
        NORMALISE_MODES[0],
        "Normalise",
        "per image: each image's own near..far (as trained); shared: one range for the whole sequence "
        "(batch or Batch tab), no flicker; smoothed: a range that follows the sequence slowly, reset at "
        "scene cuts",
        infotext="normalise",
        choices=NORMALISE_MODES,
        cli=True,
    ),
    Field(
        "percentile",
        "float",
        0.0,
        "Range percentile",
        "cut this percentage off each end of the depth range (0.5 keeps 0.5..99.5 %), so a stray pixel "
        "does not compress the rest; 0: the exact min..max",
        infotext="percentile",
        bounds=(0.0, 10.0),
        step=0.1,
        cli=True,
        shown_when={"normalise": NORMALISE_MODES[1:]},  # per image keeps each image's own min..max
    ),
    Field(
        "time_constant",
        "float",
        DEFAULT_TIME_CONSTANT,
        "Smoothing (frames)",
        "smoothed: frames after which the range has followed 63 % of a change; longer is steadier",
        infotext="time constant",
        bounds=(1.0, 10000.0),
        step=1.0,
        cli=True,
        shown_when={"normalise": ("smoothed",)},
    ),
    Field(
        "depth_folder",
        "text",
        "",
        "Depth maps folder (Batch tab)",
        "img2img Batch tab: a folder of depth maps paired with the frames by name (frame_0001.png <-> "
        "frame_0001.png, frame_0001-depth.png or another extension)",
        tabs=("img2img",),
        api=False,
    ),
    Field(
        "missing_map",
        "choice",
        "stop",
        "Frame without a depth map",
        "Batch tab: stop the batch with a message, or estimate that frame's depth instead",
        choices=("stop", "estimate"),
        tabs=("img2img",),
        api=False,
    ),
    Field(
        "frames_folder",
        "text",
        "",
        "Batch input directory",
        "set from the Batch tab's input directory (hidden): the frames the depth maps folder is paired with",
        tabs=("img2img",),
        api=False,
        mirrors="img2img_batch_input_dir",
    ),
)

BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
SETTING_FIELDS: tuple[Field, ...] = tuple(f for f in FIELDS if f.is_setting)
INFOTEXT_FIELDS: tuple[Field, ...] = tuple(f for f in FIELDS if f.infotext)
EDIT_FIELDS: tuple[Field, ...] = tuple(f for f in FIELDS if f.edit)
CLI_FIELDS: tuple[Field, ...] = tuple(f for f in FIELDS if f.cli)
# the script's arguments: the UI's component order, the API's positional order and its names
ARG_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)


def readme_table() -> str:
    """docs/settings.md's "Depth settings" table, as it must read (tests/test_fields.py compares)."""
    lines = ["| setting | default | values | meaning |", "| --- | --- | --- | --- |"]
    for f in SETTING_FIELDS:
        default = {"bool": lambda v: "true" if v else "false", "float": lambda v: f"{v:g}"}.get(f.kind, str)(f.default)
        values = "true, false" if f.kind == "bool" else f.describe_range()
        lines.append(f"| `{f.name}` | `{default}` | {values} | {f.help} |")
    return "\n".join(lines)
