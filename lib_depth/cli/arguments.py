"""The field table as command-line flags, and back: one flag per command-line field (fields.py),
the flags' value types, and DepthSettings from the parsed arguments."""

from __future__ import annotations

import argparse

from ..fields import CLI_FIELDS
from ..settings import DepthSettings
from ..validation import MIN_IMAGE_SIDE


def add_edit_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per command-line field of the table (fields.py), with its help and range."""
    edits = parser.add_argument_group("depth settings (as in the WebUI's Depth2img accordion)")
    for f in CLI_FIELDS:
        flag = "--" + f.name.replace("_", "-")
        help_text = f.help.replace("%", "%%")  # argparse formats help with %
        if f.kind == "bool":
            edits.add_argument(flag, action="store_true", default=f.default, help=help_text)
        elif f.kind in ("float", "int"):
            number = float if f.kind == "float" else int
            help_text = f"{f.describe_range()}: {help_text} (default {f.default:g})"
            edits.add_argument(flag, type=number, default=f.default, metavar="N", help=help_text)
        else:  # a choice; "per-image" also names "per image", so no quoting is needed
            edits.add_argument(
                flag,
                type=lambda text, choices=f.choices: (
                    text.replace("-", " ") if text.replace("-", " ") in choices else text
                ),
                choices=f.choices,
                default=f.default,
                metavar="{" + ",".join(c.replace(" ", "-") for c in f.choices) + "}",
                help=f"{help_text} (default {f.default.replace(' ', '-')})",
            )


def settings_from_arguments(args: argparse.Namespace) -> DepthSettings:
    return DepthSettings(**{f.name: getattr(args, f.name) for f in CLI_FIELDS})


RESIZE_MODES = {"just-resize": 0, "crop-and-resize": 1, "resize-and-fill": 2}


def pixels_argument(text: str) -> int:
    """argparse type for --width/--height: a whole number of pixels, at least 64."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, got {text!r}") from None
    if value < MIN_IMAGE_SIDE:
        raise argparse.ArgumentTypeError(f"{value} is too small: at least {MIN_IMAGE_SIDE} pixels")
    return value


def megapixels_argument(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of megapixels, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of megapixels, got {text!r}")
    return value
