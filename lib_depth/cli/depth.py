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
    from ..io.pairing import expand_image_inputs
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
    if settings.normalise != "per image" or settings.percentile > 0:
        not_written = _sequence(args, settings, estimator, images, progress, report)  # (report counts its own)
        failed += not_written
    else:
        for number, path in enumerate(images, start=1):
            counter = f"({number}/{len(images)}) " if len(images) > 1 else ""
            try:
                progress.step(f"{'reading' if distance else 'estimating depth'} {counter}{path.name}")
                depth, size = _estimate(estimator, path, None)
            except (ValueError, OSError) as error:
                report(f"{path}: {error_text(error)}")
                continue
            progress.step(f"writing {counter}{path.stem}-depth.png")
            failed += not _write_depth(args, progress, counter, path, depth, size, settings, None)
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


def _estimate(estimator, path: Path, size: tuple[int, int] | None) -> tuple:  # noqa: ANN001
    """(raw depth, image size) of one image; ValueError if a sequence's frame has another size."""
    from ..io.images import image_to_tensor

    tensor = estimator.read(path) if isinstance(estimator, DistanceMaps) else image_to_tensor(path, name="image")
    found = tuple(tensor.shape[-2:])
    if size is not None and found != size:
        raise ValueError(
            f"{found[::-1]} pixels, but the sequence's first frame has {size[::-1]}: "
            "normalising across frames needs frames of one size"
        )
    return estimator.estimate(tensor), found


def _sequence(args, settings: DepthSettings, estimator, images: list[Path], progress, report) -> int:  # noqa: ANN001
    """The frames normalised as one sequence, in memory that does not grow with their number: each
    frame's range as it is measured (per image, smoothed: written at once), or for `shared` every
    range first, the raw estimates kept meanwhile on disk (io/depth_store.py) and read back for
    writing. Returns the number of frames that failed (each reported by name)."""
    from ..io.depth_store import DepthStore
    from ..normalise import SequenceMeter

    meter: SequenceMeter | None = None
    size: tuple[int, int] | None = None
    kept: list[Path] = []  # the frames measured, in order
    failed = 0
    clock = _Clock(len(images))
    with DepthStore() as store:
        for number, path in enumerate(images, start=1):
            counter = f"({number}/{len(images)}) " if len(images) > 1 else ""
            doing = "reading" if isinstance(estimator, DistanceMaps) else "estimating depth"
            progress.step(f"{doing} {counter}{path.name}{clock.eta(number - 1)}")
            try:
                depth, size = _estimate(estimator, path, size)
                if meter is None:
                    meter = SequenceMeter(size, settings, size)
                depth_range = meter.add(depth)
            except (ValueError, OSError) as error:
                report(f"{path}: {error_text(error)}")
                continue
            if meter.online:  # its range is known: write it now
                failed += not _write_depth(args, progress, counter, path, depth, size, settings, depth_range)
            else:
                store.put(len(kept), depth)
                kept.append(path)
        if meter is None or meter.online:
            return failed

        def depth_of(index: int):  # noqa: ANN202
            stored = store.get(index)
            return stored if stored is not None else _estimate(estimator, kept[index], size)[0]

        progress.step(f"normalising {len(kept)} frame(s) ({settings.normalise})")
        ranges = meter.finish(lambda: (depth_of(index) for index in range(len(kept))))
        clock = _Clock(len(kept))
        for number, (path, depth_range) in enumerate(zip(kept, ranges, strict=True), start=1):
            counter = f"({number}/{len(kept)}) " if len(kept) > 1 else ""
            progress.step(f"writing {counter}{path.stem}-depth.png{clock.eta(number - 1)}")
            try:
                depth = depth_of(number - 1)
            except (ValueError, OSError) as error:
                report(f"{path}: {error_text(error)}")
                continue
            failed += not _write_depth(args, progress, counter, path, depth, size, settings, depth_range)
    return failed


class _Clock:
    """The time left in a pass over `total` frames, from the pace so far."""

    def __init__(self, total: int) -> None:
        import time

        self.total = total
        self.monotonic = time.monotonic
        self.started = time.monotonic()

    def eta(self, done: int) -> str:
        if done < 1 or self.total < 2:
            return ""
        left = (self.monotonic() - self.started) / done * (self.total - done)
        minutes, seconds = divmod(int(left + 0.5), 60)
        return f", about {minutes}:{seconds:02d} left" if minutes else f", about {seconds} s left"


def _write_depth(args, progress, counter: str, path: Path, depth, size, settings, depth_range) -> bool:
    """One image's 16-bit map (and preview) at its own size; False after reporting a failure."""
    from ..conditioning import depth_to_conditioning
    from ..io.depthmap import colorize, conditioning_to_png16, conditioning_to_previews, save_png

    try:
        conditioning = depth_to_conditioning(depth, size, settings, image_size=size, depth_range=depth_range)
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
