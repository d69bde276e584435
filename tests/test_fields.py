"""The field table drives the settings type, the infotext, the API names, the CLI and the settings page (docs/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib_depth.cli.arguments import settings_from_arguments
from lib_depth.cli.parser import build_parser
from lib_depth.fields import ARG_NAMES, CLI_FIELDS, FIELDS, INFOTEXT_FIELDS, SETTING_FIELDS, readme_table
from lib_depth.settings import DepthSettings

ROOT = Path(__file__).resolve().parents[1]


def test_settings_type_has_the_tables_fields_and_defaults():
    assert tuple(DepthSettings.__dataclass_fields__) == tuple(f.name for f in SETTING_FIELDS)
    defaults = DepthSettings()
    assert all(getattr(defaults, f.name) == f.default for f in SETTING_FIELDS)
    assert tuple(f.name for f in FIELDS) == ARG_NAMES
    assert tuple(name for name in ARG_NAMES if name != "image") == tuple(DepthSettings().to_dict())


@pytest.mark.parametrize("f", [f for f in SETTING_FIELDS if f.kind in ("float", "int")], ids=lambda f: f.name)
def test_each_range_is_enforced_at_both_ends(f):
    low, high = f.bounds
    base = {"near": 1.0, "far": 0.0}
    for inside in (low, high):
        values = {**base, f.name: inside}
        if f.name == "resolution" and inside:
            values["resolution"] = 1024  # a size dpt-hybrid takes
        if f.name in ("near", "far") and values["far"] >= values["near"]:
            continue
        assert getattr(DepthSettings(**values), f.name) == values[f.name]
    step = 1 if f.kind == "int" else 0.5
    for outside in (low - step, high + step):
        with pytest.raises(ValueError, match=f"{f.name}: .* is outside {f.describe_range()}"):
            DepthSettings(**{f.name: outside})


def test_infotext_uses_the_tables_labels():
    everything = dict(source="upload", invert=True, near=0.9, far=0.1, gamma=2.0, blur=1.0, masked_area="filled")
    everything.update(estimator="depth-anything-v2-small", resolution=700, normalise="shared", percentile=1.0)
    text = DepthSettings(**everything, time_constant=10.0).to_infotext()
    assert [part.split("=")[0] for part in text.split("; ")] == [f.infotext for f in INFOTEXT_FIELDS]


def test_cli_flags_come_from_the_table():
    parser = build_parser()
    args = parser.parse_args(["preview", "m.png", "-o", "p.png"])
    assert settings_from_arguments(args) == DepthSettings()
    flags = ["preview", "m.png", "-o", "p.png"]
    for f in CLI_FIELDS:
        flag = "--" + f.name.replace("_", "-")
        if f.kind == "bool":
            flags.append(flag)
        elif f.kind == "float":
            flags += [flag, str((f.bounds[0] + f.bounds[1]) / 2 if f.name != "far" else 0.25)]
        elif f.kind == "choice":
            flags += [flag, f.choices[-1].replace(" ", "-")]
    flags += ["--resolution", "1022", "--normalise", "per-image"]
    chosen = settings_from_arguments(parser.parse_args(flags))
    assert chosen.invert and chosen.gamma == pytest.approx(5.05) and chosen.far == 0.25
    assert chosen.estimator == "depth-anything-v2-large" and chosen.resolution == 1022
    assert chosen.normalise == "per image"
    help_text = "".join(build_parser()._subparsers._group_actions[0].choices["preview"].format_help().split())
    for f in CLI_FIELDS:
        assert "".join(f.help.split()) in help_text  # (argparse wraps lines, also at hyphens)


def test_settings_page_table_is_the_field_table():
    page = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    section = page.split("## Depth settings\n", 1)[1]
    lines = section.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    table = "\n".join(lines[start:end])
    expected = readme_table()
    message = "docs/settings.md's Depth settings table differs from lib_depth/fields.py; it must read:\n"
    assert table == expected, message + expected


def test_api_page_names_the_positional_order():
    page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert f"`{', '.join(ARG_NAMES)}`" in page
