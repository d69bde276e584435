"""Checkpoint files as the glue sees them: each file version (path, size, mtime) read once and
remembered, because the status line, the doctor rows and the model load all ask about the same files."""

from __future__ import annotations

import os
from pathlib import Path

from ..models.checkpoint import CheckpointReport, inspect_checkpoint

_reports: dict[tuple[str, int, int], CheckpointReport] = {}


def cached_report(filename: str | os.PathLike) -> CheckpointReport | None:
    """inspect_checkpoint, remembered per file version; None if the file is gone."""
    try:
        stat = os.stat(filename)
    except OSError:
        return None
    key = (os.fspath(filename), stat.st_size, stat.st_mtime_ns)
    if key not in _reports:
        _reports[key] = inspect_checkpoint(Path(filename))
    return _reports[key]


def checkpoint_has_depth_weights(filename: str | os.PathLike) -> bool | None:
    """Whether a checkpoint file holds MiDaS weights (header read, cached per file version)."""
    report = cached_report(filename)
    if report is None or not (report.readable or report.is_depth):
        return None
    return report.has_depth_weights
