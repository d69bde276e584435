"""Command line: `python -m lib_depth ...` (the engine without the WebUI)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .settings import BLUR_RANGE, GAMMA_RANGE, DepthSettings


def add_edit_arguments(parser: argparse.ArgumentParser) -> None:
    edits = parser.add_argument_group("depth edits (applied before normalisation, as in the WebUI)")
    edits.add_argument("--invert", action="store_true", help="flip near and far (for maps where black = near)")
    edits.add_argument("--near", type=float, default=1.0, help="depth level 0..1 that becomes nearest (default 1)")
    edits.add_argument("--far", type=float, default=0.0, help="depth level 0..1 that becomes farthest (default 0)")
    edits.add_argument(
        "--gamma", type=float, default=1.0, help=f"{GAMMA_RANGE[0]:g}..{GAMMA_RANGE[1]:g}; >1 pushes mid depths back"
    )
    edits.add_argument(
        "--blur",
        type=float,
        default=0.0,
        help=f"Gaussian blur radius in image pixels, {BLUR_RANGE[0]:g}..{BLUR_RANGE[1]:g}",
    )


def settings_from_arguments(args: argparse.Namespace) -> DepthSettings:
    return DepthSettings(invert=args.invert, near=args.near, far=args.far, gamma=args.gamma, blur=args.blur)


def _preview(args: argparse.Namespace) -> int:
    from .conditioning import depth_to_conditioning
    from .depthmap import colorize, conditioning_to_previews, depth_to_tensor, load_depth_map, save_png

    settings = settings_from_arguments(args)
    depth = load_depth_map(args.depth_map, name="depth map")
    height = args.height or depth.shape[0]
    width = args.width or depth.shape[1]
    if height < 64 or width < 64:
        raise ValueError(f"--width/--height: {width}x{height} is too small; at least 64x64")
    height, width = height - height % 8, width - width % 8
    conditioning = depth_to_conditioning(depth_to_tensor(depth), (height // 8, width // 8), settings)
    preview = conditioning_to_previews(conditioning, (height, width))[0]
    output = save_png(colorize(preview) if args.color else preview, args.output)
    print(f"{output}: the depth a {width}x{height} generation gets")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lib_depth",
        description="Depth tools for Stable Diffusion 2 depth-to-image, without the WebUI.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    preview = commands.add_parser(
        "preview",
        help="show the depth conditioning a depth map gives, after edits",
        description="Write a PNG of exactly the depth the depth UNet receives for a depth map and edits "
        "(resized to latent size, edited, normalised), upsampled to the generation size.",
    )
    preview.add_argument(
        "depth_map", type=Path, help="depth map image (8/16-bit grey, RGB, RGBA, palette); white = near"
    )
    preview.add_argument("-o", "--output", type=Path, required=True, help="PNG file to write")
    preview.add_argument("--width", type=int, help="generation width (default: the map's)")
    preview.add_argument("--height", type=int, help="generation height (default: the map's)")
    preview.add_argument("--color", action="store_true", help="colour-mapped instead of grayscale")
    add_edit_arguments(preview)
    preview.set_defaults(run=_preview)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error.strerror or error}: {getattr(error, 'filename', '') or ''}".rstrip(": "), file=sys.stderr)
        return 2
