"""`download`: the official depth checkpoint or an estimator's weights, verified, into the WebUI's folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def run(args: argparse.Namespace) -> int:
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
