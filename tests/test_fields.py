"""The field table drives the settings type, the infotext, the API names, the CLI and the README."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib_depth.cli import build_parser, settings_from_arguments
from lib_depth.fields import ARG_NAMES, CLI_FIELDS, FIELDS, INFOTEXT_FIELDS, SETTING_FIELDS, readme_table
from lib_depth.settings import DepthSettings

ROOT = Path(__file__).resolve().parents[1]


def test_settings_type_has_the_tables_fields_and_defaults():
    assert tuple(DepthSettings.__dataclass_fields__) == tuple(f.name for f in SETTING_FIELDS)
    defaults = DepthSettings()
    assert all(getattr(defaults, f.name) == f.default for f in SETTING_FIELDS)
    assert tuple(f.name for f in FIELDS) == ARG_NAMES and ARG_NAMES[: len(SETTING_FIELDS)] == tuple(
        DepthSettings().to_dict()
    )


@pytest.mark.parametrize("f", [f for f in SETTING_FIELDS if f.kind == "float"], ids=lambda f: f.name)
def test_each_range_is_enforced_at_both_ends(f):
    low, high = f.bounds
    base = {"near": 1.0, "far": 0.0}
    for inside in (low, high):
        values = {**base, f.name: inside}
        if f.name in ("near", "far") and values["far"] >= values["near"]:
            continue
        assert getattr(DepthSettings(**values), f.name) == inside
    for outside in (low - 0.5, high + 0.5):
        with pytest.raises(ValueError, match=f"{f.name}: .* is outside {f.describe_range()}"):
            DepthSettings(**{f.name: outside})


def test_infotext_uses_the_tables_labels():
    text = DepthSettings(masked_area="filled").to_infotext()
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
    chosen = settings_from_arguments(parser.parse_args(flags))
    assert chosen.invert and chosen.gamma == pytest.approx(5.05) and chosen.far == 0.25
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["preview"].format_help().split())
    for f in CLI_FIELDS:
        assert " ".join(f.help.split()) in help_text


def test_readme_table_is_the_field_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Depth settings", 1)[1]
    table = "\n".join(line for line in section.strip().splitlines() if line.startswith("|"))
    first_table = table.split("\n\n")[0]
    expected = readme_table()
    assert first_table.startswith(expected) and first_table.count("\n") == expected.count("\n"), (
        "README's Depth settings table differs from lib_depth/fields.py; it must read:\n" + expected
    )


def test_readme_names_the_positional_order():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"`{', '.join(ARG_NAMES)}`" in readme
