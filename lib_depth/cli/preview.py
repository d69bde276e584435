"""`preview`: the conditioning a depth map gives after the edits, as a PNG at the generation size."""

from __future__ import annotations

import argparse

from .arguments import RESIZE_MODES, settings_from_arguments
from .common import written_name


def run(args: argparse.Namespace) -> int:
    from ..conditioning import depth_to_conditioning
    from ..geometry import Geometry, generation_size
    from ..io.depthmap import colorize, conditioning_to_previews, depth_to_tensor, read_user_depth, save_png
    from ..io.images import check_pixels

    settings = settings_from_arguments(args)
    if args.output.suffix.lower() != ".png":
        raise ValueError(f"-o/--output: {args.output} must be a .png file name (the preview is written as PNG)")
    if args.width is not None and args.height is not None:
        check_pixels(args.width, args.height, "--width/--height")
    user_depth = read_user_depth(args.depth_map, settings.depth_kind, name=str(args.depth_map))
    print(f"{args.depth_map}: {user_depth.note}")
    depth = user_depth.values
    requested_width, requested_height = args.width or depth.shape[1], args.height or depth.shape[0]
    check_pixels(requested_width, requested_height, "--width/--height")
    width, height = generation_size(requested_width, requested_height, "--width/--height")
    geometry = Geometry.for_size(width, height, RESIZE_MODES[args.resize_mode])
    conditioning = depth_to_conditioning(depth_to_tensor(geometry.fit(depth)), geometry.latent, settings)
    preview = conditioning_to_previews(conditioning, (height, width))[0]
    output = save_png(colorize(preview) if args.color else preview, args.output)
    print(f"{written_name(args.output, output, args.depth_map)}: the depth a {width}x{height} generation gets")
    if (width, height) != (requested_width, requested_height):
        print(
            f"note: {requested_width}x{requested_height} is not a multiple of 8; a generation of that size "
            f"makes {width}x{height} images (the latent is 1/8 of the size, rounded down), so this is that size"
        )
    return 0
