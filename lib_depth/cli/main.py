"""Command line: `python -m lib_depth ...` (the engine without the WebUI)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..fields import CLI_FIELDS
from ..io.files import check_writable_folder, same_file
from ..io.images import DEFAULT_MAX_MEGAPIXELS, MAX_MEGAPIXELS_VARIABLE
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


def _size(text: str) -> int:
    """argparse type for --width/--height: a whole number of pixels, at least 64."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, got {text!r}") from None
    if value < MIN_IMAGE_SIDE:
        raise argparse.ArgumentTypeError(f"{value} is too small: at least {MIN_IMAGE_SIDE} pixels")
    return value


def _megapixels(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of megapixels, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of megapixels, got {text!r}")
    return value


def _written(requested: Path, written: Path, source: Path | None = None) -> str:
    """How to name a written file: says so when the requested name was taken."""
    if written == requested:
        return str(written)
    whose = "is the input" if source is not None and same_file(requested, source) else "exists"
    return f"{written} ({requested.name} {whose}; files are never overwritten)"


def _preview(args: argparse.Namespace) -> int:
    from ..conditioning import depth_to_conditioning
    from ..geometry import Geometry, generation_size
    from ..io.depthmap import colorize, conditioning_to_previews, depth_to_tensor, load_depth_map, save_png
    from ..io.images import check_pixels

    settings = settings_from_arguments(args)
    if args.output.suffix.lower() != ".png":
        raise ValueError(f"-o/--output: {args.output} must be a .png file name (the preview is written as PNG)")
    if args.width is not None and args.height is not None:
        check_pixels(args.width, args.height, "--width/--height")
    depth = load_depth_map(args.depth_map, name="depth map")
    requested_width, requested_height = args.width or depth.shape[1], args.height or depth.shape[0]
    check_pixels(requested_width, requested_height, "--width/--height")
    width, height = generation_size(requested_width, requested_height, "--width/--height")
    geometry = Geometry.for_size(width, height, RESIZE_MODES[args.resize_mode])
    conditioning = depth_to_conditioning(depth_to_tensor(geometry.fit(depth)), geometry.latent, settings)
    preview = conditioning_to_previews(conditioning, (height, width))[0]
    output = save_png(colorize(preview) if args.color else preview, args.output)
    print(f"{_written(args.output, output, args.depth_map)}: the depth a {width}x{height} generation gets")
    if (width, height) != (requested_width, requested_height):
        print(
            f"note: {requested_width}x{requested_height} is not a multiple of 8; a generation of that size "
            f"makes {width}x{height} images (the latent is 1/8 of the size, rounded down), so this is that size"
        )
    return 0


def _doctor(args: argparse.Namespace) -> int:
    import json

    from ..models.checkpoint import inspect_checkpoint
    from ..models.doctor import (
        default_paths,
        examine,
        examine_partial,
        find_partial_downloads,
        format_table,
        identify,
        is_partial_download,
        scan_checkpoints,
        unreadable_row,
    )

    paths = args.paths or default_paths()
    found, unreadable = scan_checkpoints(paths)
    files = [path for path in found if not is_partial_download(path)]
    partial = find_partial_downloads(paths)
    if not files and not partial and not unreadable:
        raise ValueError(f"no .safetensors or .ckpt files in {', '.join(map(str, paths))}")
    rows = [unreadable_row(path, problem) for path, problem in unreadable]
    for path in files:
        report = inspect_checkpoint(path)
        row = examine(path, fix=args.fix, report=report)
        rows.append(identify(row, path, report, _known_sha256(path, report, compute=args.hash)))
    rows += [examine_partial(path) for path in partial]
    if args.json:
        print(json.dumps([row.to_dict() for row in rows], indent=2))
    else:
        print(format_table(rows))
        bad = sum(not row.ok for row in rows)
        print(
            f"\n{len(rows)} item(s) examined, {bad} with problems"
            if bad
            else f"\n{len(rows)} file(s) examined, all fine"
        )
    return 0 if all(row.ok for row in rows) else 1


def _known_sha256(path: Path, report, *, compute: bool) -> str | None:
    """A cached hash; with --hash, computed (with progress) for the files it can tell something about:
    depth models and files the size of an official one."""
    from ..models.hashes import file_sha256, known_sha256
    from ..models.model_files import official_by_size
    from ..models.transport import Progress, SpeedMeter
    from .terminal_progress import TerminalProgress

    worth = report.is_depth or bool(official_by_size(path.stat().st_size))
    if not (compute and worth):
        return known_sha256(path).sha256
    bar = TerminalProgress()
    meter = SpeedMeter(bar.clock)
    bar.log(f"hashing {path}")

    def progress(done: int, total: int) -> None:
        speed, eta = meter.update(done, total)
        bar(Progress(done, total, speed, eta))

    try:
        return file_sha256(path, progress=progress).sha256
    finally:
        bar.close()


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


def _depth(args: argparse.Namespace) -> int:
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

    images = expand_image_inputs(args.images, on_problem=report)
    total = len(images) + failed  # the inputs that matched nothing count as failed items
    if not images:
        raise ValueError("no image to process")
    check_writable_folder(args.output, "-o/--output")
    network, key = _depth_network(args, settings, progress)
    estimator = DepthEstimator(
        network, key=key, cache=DepthCache(), estimator=settings.estimator, resolution=settings.resolution or None
    )
    as_sequence = settings.normalise != "per image" or settings.percentile > 0
    estimates: list[tuple[Path, object]] = []  # (image, raw depth): all of them first for a sequence
    for number, path in enumerate(images, start=1):
        counter = f"({number}/{len(images)}) " if len(images) > 1 else ""
        try:
            progress.step(f"estimating depth {counter}{path.name}")
            tensor = image_to_tensor(path, name="image")
            if as_sequence and estimates and tuple(tensor.shape[-2:]) != tuple(estimates[0][2]):
                raise ValueError(
                    f"{tuple(tensor.shape[-1:-3:-1])} pixels, but the sequence's first frame has "
                    f"{tuple(estimates[0][2][::-1])}: normalising across frames needs frames of one size"
                )
            estimates.append((path, estimator.estimate(tensor), tuple(tensor.shape[-2:])))
        except (ValueError, OSError) as error:
            report(f"{path}: {_error_text(error)}")
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
        progress.print(f"error: {path}: {_error_text(error)}", file=sys.stderr)
        return False
    progress.print(line)
    return True


def _convert(args: argparse.Namespace) -> int:
    import warnings

    from ..models.convert import check_output, convert_pipeline, write_checkpoint
    from .progress import Progress

    check_output(args.output)  # before any weight is read
    progress = Progress()

    def advance(name: str) -> None:
        progress.step(f"converting {name}")

    with warnings.catch_warnings():
        # warnings the libraries that build the model raise about themselves (deprecated names,
        # pkg_resources) are no concern of the user's conversion; ours still show
        warnings.filterwarnings("ignore", module=r"(?!lib_depth)")
        state, config = convert_pipeline(args.pipeline, text_arch=args.text_arch, progress=advance)
    progress.step(f"writing {args.output.name}")
    checkpoint, yaml_path = write_checkpoint(state, config, args.output, half=args.half)
    size = checkpoint.stat().st_size / 2**20
    progress.print(
        f"{checkpoint} ({len(state)} tensors, {size:.0f} MiB) and {yaml_path.name}: load it as a depth model"
    )
    return 0


def _download(args: argparse.Namespace) -> int:
    from urllib.parse import unquote, urlsplit

    from ..models.doctor import default_paths
    from ..models.download import download_model
    from ..models.model_files import KIND_FOLDERS, ModelFile, estimator_file, format_bytes, model_file
    from ..models.transport import RetryPolicy, Source
    from .terminal_progress import TerminalProgress

    if args.retries < 1 or not args.timeout > 0:
        raise ValueError("--retries must be 1 or more and --timeout more than 0 seconds")
    if args.url:
        if not args.sha256:
            raise ValueError("--url needs --sha256 (the file's published SHA-256): only a verified file is installed")
        if args.mirror or args.variant:
            raise ValueError(f"{'--mirror' if args.mirror else '--variant'} or --url, not both")
        filename = unquote(urlsplit(args.url).path.rsplit("/", 1)[-1])
        if not filename.lower().endswith((".safetensors", ".ckpt")) or filename != Path(filename).name:
            raise ValueError(f"--url: {filename!r} is not a .safetensors or .ckpt file name")
        entry = ModelFile(
            name=filename,
            model=Path(filename).stem,
            variant="url",
            filename=filename,
            size=None,
            sha256=args.sha256.strip().lower(),
            kind="checkpoint",
            description="from --url",
            licence="",
            mirrors=(),
        )
        sources = [Source(args.url, urlsplit(args.url).netloc)]
    elif args.estimator:
        if args.sha256 or args.variant:
            raise ValueError(f"{'--sha256' if args.sha256 else '--variant'} does not go with --estimator")
        entry, sources = estimator_file(args.estimator), None
    else:
        if args.sha256:
            raise ValueError("--sha256 goes with --url (the table's files have their hashes)")
        entry, sources = model_file(variant=args.variant or "fp16"), None
    if args.to:
        folder = args.to
    elif entry.kind == "estimator":
        try:
            folder = default_paths()[0].parent / KIND_FOLDERS["estimator"].name
        except ValueError:
            raise ValueError(
                "no models/Stable-diffusion here: run from the WebUI folder, or give the folder with --to DIR"
            ) from None
        folder.mkdir(exist_ok=True)  # the WebUI's models/depth2img is ours to create
    else:
        try:
            folder = default_paths()[0]
        except ValueError:
            raise ValueError(
                "no models/Stable-diffusion here: run from the WebUI folder, or give the folder with --to DIR"
            ) from None
    print(f"{entry.filename} ({entry.size_text()}) into {folder}")
    if entry.licence:
        print(f"licence: {entry.licence}")
    bar = TerminalProgress()
    policy = RetryPolicy(attempts=args.retries, timeout=args.timeout)
    try:
        result = download_model(
            entry,
            folder,
            mirror=args.mirror,
            sources=sources,
            token=args.token,
            progress=bar,
            log=bar.log,
            policy=policy,
        )
    except KeyboardInterrupt:
        bar.close()
        print("interrupted; the part downloaded so far is kept: run the same command again to resume", file=sys.stderr)
        return 130
    bar.close()
    print(f"{result.path}: verified (SHA-256 {result.sha256}, {format_bytes(result.path.stat().st_size)})")
    for note in result.notes:
        print(note)
    print("Next:")
    for step in result.next_steps:
        print(f"  - {step}")
    return 0


def _error_text(error: BaseException) -> str:
    if isinstance(error, OSError) and not isinstance(error, FileExistsError):
        return f"{error.strerror or error}: {getattr(error, 'filename', '') or ''}".rstrip(": ")
    return str(error)


def build_parser() -> argparse.ArgumentParser:
    from ..models.model_files import MODEL_FILES

    parser = argparse.ArgumentParser(
        prog="python -m lib_depth",
        description="Depth tools for Stable Diffusion 2 depth-to-image, without the WebUI.",
    )
    parser.add_argument(
        "--max-megapixels",
        type=_megapixels,
        help=f"refuse images larger than this, read from the file header before decoding (default: "
        f"${MAX_MEGAPIXELS_VARIABLE}, else {DEFAULT_MAX_MEGAPIXELS:g}, the WebUI's default; Pillow's own "
        "decompression-bomb limit caps it)",
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
    preview.add_argument(
        "-o", "--output", type=Path, required=True, help="PNG file to write (never overwritten: name-1.png ...)"
    )
    preview.add_argument(
        "--width",
        type=_size,
        help="generation width (default: the map's); rounded down to a multiple of 8 as the generation does",
    )
    preview.add_argument("--height", type=_size, help="generation height (default: the map's); as --width")
    preview.add_argument(
        "--resize-mode",
        choices=tuple(RESIZE_MODES),
        default="crop-and-resize",
        help="how a map of another aspect ratio fits the size, as the generation does: crop-and-resize "
        "(default; txt2img, and img2img's 'Crop and resize'), just-resize (stretch; img2img's default), "
        "resize-and-fill",
    )
    preview.add_argument("--color", action="store_true", help="colour-mapped instead of grayscale")
    add_edit_arguments(preview)
    preview.set_defaults(run=_preview)

    doctor = commands.add_parser(
        "doctor",
        help="check checkpoints and the configs beside depth checkpoints",
        description="Examine checkpoints without loading them: what each is (depth, SD 1.x, SD 2.x, inpainting, "
        "SDXL), its precision, whether it is truncated or corrupt, and whether a depth checkpoint has a usable "
        "config beside it. Exit status 0 when every file is a readable checkpoint and every depth checkpoint is "
        "usable, 1 otherwise.",
    )
    doctor.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="checkpoint files or folders (default: models/Stable-diffusion when run from the WebUI folder)",
    )
    doctor.add_argument(
        "--fix",
        action="store_true",
        help="write a depth config where missing or wrong (the old file is kept as .bak-<time>)",
    )
    doctor.add_argument("--json", action="store_true", help="print JSON for scripts instead of a table")
    doctor.add_argument(
        "--hash",
        action="store_true",
        help="compute the SHA-256 of depth checkpoints and of files the size of an official one (a minute per "
        "5 GB; remembered) to tell official files from fine-tunes and damaged copies; without it, only hashes "
        "the WebUI or an earlier run has cached are used",
    )
    doctor.set_defaults(run=_doctor)

    depth = commands.add_parser(
        "depth",
        help="depth maps of images, folders or globs (the checkpoint's MiDaS, or Depth Anything V2)",
        description="Estimate depth with the DPT-Hybrid weights stored in a depth checkpoint, or with Depth Anything "
        "V2 (--estimator, its weights with --estimator-weights), no WebUI needed. Images are files, folders or glob "
        "patterns, processed in natural order (frame_2 before frame_10). Writes one 16-bit PNG per image at the "
        "image's resolution (white = near), named <image>-depth.png; existing files are never overwritten. With "
        "--normalise shared or smoothed the frames are normalised as one sequence (all estimated first).",
    )
    depth.add_argument("images", nargs="+", help="input images, folders of images, or glob patterns ('frames/*.png')")
    depth.add_argument(
        "--checkpoint", type=Path, help="depth checkpoint (.safetensors or .ckpt): the dpt-hybrid estimator's weights"
    )
    depth.add_argument(
        "--estimator-weights",
        type=Path,
        metavar="FILE",
        help="the estimator's weights, either layout (default: the WebUI's models/depth2img); used as is, offline",
    )
    depth.add_argument("-o", "--output", type=Path, required=True, help="folder to write the depth maps to")
    depth.add_argument("--preview", action="store_true", help="also write an 8-bit preview, <image>-depth-preview.png")
    depth.add_argument("--color", action="store_true", help="colour-map the preview")
    add_edit_arguments(depth)
    depth.set_defaults(run=_depth)

    convert = commands.add_parser(
        "convert",
        help="a diffusers depth pipeline folder -> one depth checkpoint for the WebUI",
        description="Convert a diffusers StableDiffusionDepth2ImgPipeline (unet, vae, text_encoder, depth_estimator) "
        "to the single-file layout the WebUI loads as a depth model, with its config beside it as OUT.yaml. Every "
        "tensor must map one-to-one, or nothing is written. Needs ldm and open_clip (any WebUI has them).",
    )
    convert.add_argument("pipeline", type=Path, help="the diffusers pipeline folder (with model_index.json)")
    convert.add_argument("output", type=Path, help="the checkpoint to write, .safetensors (never overwritten)")
    convert.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    convert.add_argument("--text-arch", help="OpenCLIP model of the text encoder (default ViT-H-14, SD 2's)")
    convert.set_defaults(run=_convert)

    download = commands.add_parser(
        "download",
        help="download the official SD 2 depth checkpoint, verified, into models/Stable-diffusion",
        description="Download 512-depth-ema from a Hugging Face mirror (HF_ENDPOINT honoured) into the WebUI's "
        "models/Stable-diffusion (found from the WebUI or extension folder) or --to. Resumable: an interrupted "
        "download continues from its .part file. The SHA-256 is checked while downloading; only a verified file is "
        "installed, never over an existing one. A token (--token or HF_TOKEN) is only sent to the Hub.",
    )
    download.add_argument(
        "--variant",
        choices=["fp16", "fp32", "ckpt"],
        help="fp16 safetensors (default: 2.85 GB, same results in the WebUI), fp32 safetensors (5.71 GB), or "
        "the original ckpt (5.71 GB, a pickle)",
    )
    download.add_argument(
        "--estimator",
        metavar="NAME",
        help="instead, the weights of a depth estimator into models/depth2img: "
        + ", ".join(sorted(e.name for e in MODEL_FILES if e.kind == "estimator"))
        + " (read its licence: the base and large models are for non-commercial use only)",
    )
    download.add_argument(
        "--to", type=Path, metavar="DIR", help="folder to download into (default: the WebUI's models/Stable-diffusion)"
    )
    download.add_argument(
        "--mirror", metavar="NAME", help="only this mirror of the table: webui, sd2-community (default: each in turn)"
    )
    download.add_argument("--url", metavar="URL", help="download this URL instead of a mirror (needs --sha256)")
    download.add_argument("--sha256", metavar="HEX", help="the expected SHA-256 of --url")
    download.add_argument("--token", metavar="TOKEN", help="Hugging Face token for the Hub (default: HF_TOKEN)")
    download.add_argument(
        "--retries", type=int, default=6, metavar="N", help="tries per mirror without progress (default 6)"
    )
    download.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds without data before reconnecting (default 60)",
    )
    download.set_defaults(run=_download)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    import os
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    configured = os.environ.get(MAX_MEGAPIXELS_VARIABLE)
    if args.max_megapixels is not None:
        os.environ[MAX_MEGAPIXELS_VARIABLE] = repr(args.max_megapixels)  # the limit everywhere, for this command
    shown = warnings.showwarning
    warnings.showwarning = _show_warning  # one "warning: ..." line, no source listing
    try:
        return args.run(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {_error_text(error)}", file=sys.stderr)
        return 2
    except ImportError as error:  # ldm, open_clip or a library missing: which one, and what to run instead
        print(
            f"error: cannot import {error.name or error} ({error}); run the command line with the WebUI's own "
            "Python, from the WebUI folder: venv/bin/python extensions/sd-webui-depth2img/depth2img-cli.py ... "
            "(Windows: venv\\Scripts\\python.exe), or install requirements-cli.txt",
            file=sys.stderr,
        )
        return 2
    except MemoryError:
        print("error: not enough memory for this; try smaller images or --max-megapixels", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown
        if configured is None:
            os.environ.pop(MAX_MEGAPIXELS_VARIABLE, None)
        else:
            os.environ[MAX_MEGAPIXELS_VARIABLE] = configured
