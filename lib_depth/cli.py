"""Command line: `python -m lib_depth ...` (the engine without the WebUI)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .fields import CLI_FIELDS
from .settings import DepthSettings


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


def _doctor(args: argparse.Namespace) -> int:
    import json

    from .checkpoint import inspect_checkpoint
    from .doctor import (
        default_paths,
        examine,
        examine_partial,
        find_checkpoints,
        find_partial_downloads,
        format_table,
        identify,
        is_partial_download,
    )

    paths = args.paths or default_paths()
    files = [path for path in find_checkpoints(paths) if not is_partial_download(path)]
    partial = find_partial_downloads(paths)
    if not files and not partial:
        raise ValueError(f"no .safetensors or .ckpt files in {', '.join(map(str, paths))}")
    rows = []
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
            f"\n{len(rows)} file(s) examined, {bad} with problems"
            if bad
            else f"\n{len(rows)} file(s) examined, all fine"
        )
    return 0 if all(row.ok for row in rows) else 1


def _known_sha256(path: Path, report, *, compute: bool) -> str | None:
    """A cached hash; with --hash, computed (with progress) for the files it can tell something about:
    depth models and files the size of an official one."""
    from .download import Progress, SpeedMeter, TerminalProgress
    from .hashes import file_sha256, known_sha256
    from .model_files import official_by_size

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


def _unused_path(path: Path) -> Path:
    """`path`, or `name-1.png`, `name-2.png`... so an existing file is never overwritten."""
    candidate, counter = path, 0
    while candidate.exists():
        counter += 1
        candidate = path.with_name(f"{path.stem}-{counter}{path.suffix}")
    return candidate


def _progress(items: list, description: str):
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=description, unit="image", disable=len(items) < 2 or None)


def _depth(args: argparse.Namespace) -> int:
    from .cache import DepthCache
    from .conditioning import depth_to_conditioning
    from .depthmap import colorize, conditioning_to_png16, conditioning_to_previews, save_png
    from .estimator import DepthEstimator
    from .images import image_to_tensor
    from .midas import load_depth_model

    settings = settings_from_arguments(args)
    missing = [str(path) for path in args.images if not path.is_file()]
    if missing:
        raise ValueError(f"image not found: {', '.join(missing)}")
    model = load_depth_model(args.checkpoint)
    estimator = DepthEstimator(model, key=str(args.checkpoint), cache=DepthCache())
    args.output.mkdir(parents=True, exist_ok=True)
    for path in _progress(args.images, "depth"):
        images = image_to_tensor(path, name="image")
        size = tuple(images.shape[-2:])
        depth = depth_to_conditioning(estimator.estimate(images), size, settings, image_size=size)
        written = save_png(conditioning_to_png16(depth)[0], _unused_path(args.output / f"{path.stem}-depth.png"))
        line = f"{path} -> {written}"
        if args.preview:
            preview = conditioning_to_previews(depth)[0]
            extra = save_png(
                colorize(preview) if args.color else preview,
                _unused_path(args.output / f"{path.stem}-depth-preview.png"),
            )
            line += f", {extra.name}"
        print(line)
    return 0


def _convert(args: argparse.Namespace) -> int:
    from .convert import COMPONENTS, convert_pipeline, write_checkpoint

    try:
        from tqdm import tqdm

        bar = tqdm(total=len(COMPONENTS) + 1, desc="convert", unit="part")
    except ImportError:
        bar = None

    def advance(name: str) -> None:
        if bar is not None:
            bar.set_postfix_str(name)
            bar.update()

    state, config = convert_pipeline(args.pipeline, text_arch=args.text_arch, progress=advance)
    advance("writing")
    checkpoint, yaml_path = write_checkpoint(state, config, args.output, half=args.half)
    if bar is not None:
        bar.close()
    size = checkpoint.stat().st_size / 2**20
    print(f"{checkpoint} ({len(state)} tensors, {size:.0f} MiB) and {yaml_path.name}: load it as a depth model")
    return 0


def _download(args: argparse.Namespace) -> int:
    from urllib.parse import unquote, urlsplit

    from .doctor import default_paths
    from .download import RetryPolicy, Source, TerminalProgress, download_model
    from .model_files import KIND_FOLDERS, ModelFile, estimator_file, format_bytes, model_file

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


def build_parser() -> argparse.ArgumentParser:
    from .model_files import MODEL_FILES

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
        help="depth maps of images with the MiDaS weights inside a depth checkpoint",
        description="Estimate depth with the DPT-Hybrid weights stored in a depth checkpoint, no WebUI needed. "
        "Writes one 16-bit PNG per image at the image's resolution (white = near), named <image>-depth.png; "
        "existing files are never overwritten.",
    )
    depth.add_argument("images", nargs="+", type=Path, help="input images")
    depth.add_argument("--checkpoint", type=Path, required=True, help="depth checkpoint (.safetensors or .ckpt)")
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
