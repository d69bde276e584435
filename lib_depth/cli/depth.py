"""`depth`: depth maps of images, folders or globs, per image or normalised as one sequence."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..io.files import check_writable_folder
from ..settings import DepthSettings
from .arguments import settings_from_arguments
from .common import error_text


def _depth_network(args: argparse.Namespace, settings: DepthSettings, progress) -> tuple:
    """(network, weights key) of the chosen estimator: the checkpoint's MiDaS, or Depth Anything V2
    from --estimator-weights or the WebUI's models/depth2img."""
    from ..depth.estimators import DEFAULT_ESTIMATOR, find_weights, get_estimator

    if settings.estimator == DEFAULT_ESTIMATOR:
        if args.checkpoint is None:
            raise ValueError("--checkpoint: dpt-hybrid is the depth checkpoint's own MiDaS: name the checkpoint")
        from ..depth.midas import load_depth_model

        progress.step(f"loading the depth model from {args.checkpoint.name}")
        return load_depth_model(args.checkpoint), str(args.checkpoint)
    weights = args.estimator_weights
    if weights is None:
        from ..models.doctor import default_paths

        try:
            weights = find_weights(default_paths()[0].parent, settings.estimator)
        except ValueError:
            weights = None
    if weights is None:
        raise ValueError(
            f"--estimator-weights: {settings.estimator} needs its weights file; give it, or download it with "
            f"`python -m lib_depth download --estimator {settings.estimator}` (from a WebUI, into models/depth2img)"
        )
    progress.step(f"loading {settings.estimator} from {Path(weights).name}")
    return get_estimator(settings.estimator).load(weights), str(weights)


def run(args: argparse.Namespace) -> int:
    from ..depth.cache import DepthCache
    from ..depth.estimator import DepthEstimator
    from ..io.images import image_to_tensor
    from ..io.pairing import expand_image_inputs
    from ..normalise import settings_ranges
    from .progress import Progress

    settings = settings_from_arguments(args)
    progress = Progress()
    failed = 0

    def report(problem: str) -> None:
        nonlocal failed
        failed += 1
        progress.print(f"error: {problem}", file=sys.stderr)

    distance = settings.depth_kind == "distance"  # the inputs are distance maps to convert, not photos
    images = expand_image_inputs(args.images, on_problem=report, depth_maps=distance)
    total = len(images) + failed  # the inputs that matched nothing count as failed items
    if not images:
        raise ValueError("no image to process")
    check_writable_folder(args.output, "-o/--output")
    if distance:
        estimator = DistanceMaps(progress)
    else:
        network, key = _depth_network(args, settings, progress)
        estimator = DepthEstimator(
            network, key=key, cache=DepthCache(), estimator=settings.estimator, resolution=settings.resolution or None
        )
    as_sequence = settings.normalise != "per image" or settings.percentile > 0
    estimates: list[tuple[Path, object]] = []  # (image, raw depth): all of them first for a sequence
    for number, path in enumerate(images, start=1):
        counter = f"({number}/{len(images)}) " if len(images) > 1 else ""
        try:
            progress.step(f"{'reading' if distance else 'estimating depth'} {counter}{path.name}")
            tensor = estimator.read(path) if distance else image_to_tensor(path, name="image")
            if as_sequence and estimates and tuple(tensor.shape[-2:]) != tuple(estimates[0][2]):
                raise ValueError(
                    f"{tuple(tensor.shape[-1:-3:-1])} pixels, but the sequence's first frame has "
                    f"{tuple(estimates[0][2][::-1])}: normalising across frames needs frames of one size"
                )
            estimates.append((path, estimator.estimate(tensor), tuple(tensor.shape[-2:])))
        except (ValueError, OSError) as error:
            report(f"{path}: {error_text(error)}")
            continue
        if not as_sequence:
            failed += not _write_depth(args, progress, counter, *estimates.pop(), settings, None)
    if as_sequence and estimates:
        size = estimates[0][2]
        progress.step(f"normalising {len(estimates)} frame(s) ({settings.normalise})")
        ranges = settings_ranges([depth for _, depth, _ in estimates], size, settings, size)
        for number, ((path, depth, _), depth_range) in enumerate(zip(estimates, ranges, strict=True), start=1):
            counter = f"({number}/{len(estimates)}) " if len(estimates) > 1 else ""
            failed += not _write_depth(args, progress, counter, path, depth, size, settings, depth_range)
    progress.clear()
    if failed:
        print(f"{failed} of {total} item(s) failed", file=sys.stderr)
        return 1
    return 0


class DistanceMaps:
    """`depth --depth-kind distance`: each input is a distance map, converted (1/distance) instead of
    estimated; `read` gives it as [1, 1, H, W], and `estimate` hands it back unchanged."""

    def __init__(self, progress) -> None:  # noqa: ANN001
        self.progress = progress

    def read(self, path: Path):  # noqa: ANN201
        import torch

        from ..io.depthmap import read_user_depth

        try:
            depth = read_user_depth(path, "distance", name=str(path))
        except ValueError as error:  # the caller names the file once
            raise ValueError(str(error).removeprefix(f"{path}: ")) from None
        if depth.filled:
            self.progress.print(f"note: {path}: {depth.note}")
        return torch.from_numpy(depth.values)[None, None]

    def estimate(self, tensor):  # noqa: ANN001, ANN201
        return tensor


def _write_depth(args, progress, counter: str, path: Path, depth, size, settings, depth_range) -> bool:
    """One image's 16-bit map (and preview) at its own size; False after reporting a failure."""
    from ..conditioning import depth_to_conditioning
    from ..io.depthmap import colorize, conditioning_to_png16, conditioning_to_previews, save_png

    try:
        conditioning = depth_to_conditioning(depth, size, settings, image_size=size, depth_range=depth_range)
        progress.step(f"writing {counter}{path.stem}-depth.png")
        written = save_png(conditioning_to_png16(conditioning)[0], args.output / f"{path.stem}-depth.png")
        line = f"{path} -> {written}"
        if args.preview:
            preview = conditioning_to_previews(conditioning)[0]
            extra = save_png(
                colorize(preview) if args.color else preview, args.output / f"{path.stem}-depth-preview.png"
            )
            line += f", {extra.name}"
    except (ValueError, OSError) as error:
        progress.print(f"error: {path}: {error_text(error)}", file=sys.stderr)
        return False
    progress.print(line)
    return True
