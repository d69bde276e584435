"""`convert`: a diffusers depth pipeline folder -> one depth checkpoint for the WebUI."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
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
