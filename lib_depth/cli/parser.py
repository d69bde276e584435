"""The command line's parser: the commands, their arguments, and the depth settings' flags built
from the field table (arguments.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..io.images import DEFAULT_MAX_MEGAPIXELS, MAX_MEGAPIXELS_VARIABLE
from . import convert as convert_command
from . import depth as depth_command
from . import doctor as doctor_command
from . import download as download_command
from . import preview as preview_command
from .arguments import RESIZE_MODES, add_edit_arguments, megapixels_argument, pixels_argument


def build_parser() -> argparse.ArgumentParser:
    from ..models.model_files import MODEL_FILES

    parser = argparse.ArgumentParser(
        prog="python -m lib_depth",
        description="Depth tools for Stable Diffusion 2 depth-to-image, without the WebUI.",
    )
    parser.add_argument(
        "--max-megapixels",
        type=megapixels_argument,
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
        "depth_map",
        type=Path,
        help="depth map file: PNG (8/16-bit), TIFF (16-bit, 32-bit float), OpenEXR, .npy; see --depth-kind",
    )
    preview.add_argument(
        "-o", "--output", type=Path, required=True, help="PNG file to write (never overwritten: name-1.png ...)"
    )
    preview.add_argument(
        "--width",
        type=pixels_argument,
        help="generation width (default: the map's); rounded down to a multiple of 8 as the generation does",
    )
    preview.add_argument("--height", type=pixels_argument, help="generation height (default: the map's); as --width")
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
    preview.set_defaults(run=preview_command.run)

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
    doctor.set_defaults(run=doctor_command.run)

    depth = commands.add_parser(
        "depth",
        help="depth maps of images, folders or globs (the checkpoint's MiDaS, or Depth Anything V2)",
        description="Estimate depth with the DPT-Hybrid weights stored in a depth checkpoint, or with Depth Anything "
        "V2 (--estimator, its weights with --estimator-weights), no WebUI needed. Images are files, folders or glob "
        "patterns, processed in natural order (frame_2 before frame_10). Writes one 16-bit PNG per image at the "
        "image's resolution (white = near), named <image>-depth.png; existing files are never overwritten. With "
        "--normalise shared or smoothed the frames are normalised as one sequence (all estimated first).",
    )
    depth.add_argument(
        "images",
        nargs="+",
        help="input images, folders of images, or glob patterns ('frames/*.png'); with --depth-kind distance, "
        "distance maps (also OpenEXR, .npy) converted to the depth the model gets instead of estimated",
    )
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
    depth.set_defaults(run=depth_command.run)

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
    convert.set_defaults(run=convert_command.run)

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
    download.set_defaults(run=download_command.run)
    return parser
