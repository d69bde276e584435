"""What every command shares: one line for an error, and how a written file is named."""

from __future__ import annotations

from pathlib import Path

from ..io.files import same_file


def written_name(requested: Path, written: Path, source: Path | None = None) -> str:
    """How to name a written file: says so when the requested name was taken."""
    if written == requested:
        return str(written)
    whose = "is the input" if source is not None and same_file(requested, source) else "exists"
    return f"{written} ({requested.name} {whose}; files are never overwritten)"


def error_text(error: BaseException) -> str:
    if isinstance(error, OSError) and not isinstance(error, FileExistsError):
        return f"{error.strerror or error}: {getattr(error, 'filename', '') or ''}".rstrip(": ")
    return str(error)
