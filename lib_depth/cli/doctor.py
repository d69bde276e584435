"""`doctor`: examine checkpoints without loading them, and say what each is."""

from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
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
