"""`doctor`: examine checkpoints and the configs beside depth checkpoints, optionally fix them."""

from __future__ import annotations

import os
import shlex
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable

from .checkpoint import CHECKPOINT_SUFFIXES, DEPTH_CONTEXT_DIM, CheckpointReport, inspect_checkpoint
from .model_config import check_depth_config, fix_depth_config
from .model_files import ModelFile, format_bytes, official_by_filename, official_by_sha256, official_by_size

WEBUI_MODELS = Path("models") / "Stable-diffusion"
_VAE_SUFFIXES = (".vae.ckpt", ".vae.safetensors")


@dataclass(frozen=True)
class DoctorRow:
    file: str
    kind: str
    precision: str
    config: str
    action: str
    ok: bool
    build: str = "-"  # official file or not (by size and SHA-256, see `identify`)
    sha256: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def find_checkpoints(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; folders searched recursively for .safetensors/.ckpt (VAEs skipped), as the
    WebUI lists models. Raises ValueError for a path that does not exist or cannot be listed."""
    files, unreadable = scan_checkpoints(paths)
    if unreadable:
        path, problem = unreadable[0]
        raise ValueError(f"{path}: {problem}")
    return files


def scan_checkpoints(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(checkpoint files, [(folder or file, why it cannot be read)]): like find_checkpoints, but a
    folder that cannot be listed is reported, not skipped, and does not stop the others.
    Raises ValueError only for a path that does not exist at all."""
    found: list[Path] = []
    unreadable: list[tuple[Path, str]] = []
    for item in map(Path, paths):
        if item.is_dir():
            files, problems = _walk(item)
            found.extend(sorted(files))
            unreadable.extend(problems)
        elif item.is_file():
            found.append(item)
        elif os.path.lexists(item):
            unreadable.append((item, "not a regular file or folder (a broken link?)"))
        else:
            raise ValueError(f"{item}: no such file or folder")
    return found, unreadable


def _walk(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Checkpoint files under `root`, following links but never the same folder twice."""
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    seen: set[tuple[int, int]] = set()
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            info = folder.stat()
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as entries:
                listed = list(entries)
        except OSError as error:
            problems.append((folder, f"cannot list this folder: {_reason(error)}"))
            continue
        for entry in listed:
            path = Path(entry.path)
            try:
                if entry.is_dir():
                    pending.append(path)
                elif (
                    entry.is_file()
                    and path.suffix.lower() in CHECKPOINT_SUFFIXES
                    and not path.name.lower().endswith(_VAE_SUFFIXES)
                ):
                    files.append(path)
            except OSError as error:
                problems.append((path, f"cannot read: {_reason(error)}"))
    return files, sorted(problems)


def _reason(error: OSError) -> str:
    return (error.strerror or error.__class__.__name__).lower()


def unreadable_row(path: Path, problem: str) -> DoctorRow:
    """The doctor's row for a folder or file it could not even look at."""
    kind = "unreadable folder" if path.is_dir() else "unreadable"
    return DoctorRow(str(path), kind, "-", "-", problem, False)


def default_paths(cwd: str | os.PathLike | None = None) -> list[Path]:
    """The WebUI's model folder, seen from the WebUI folder or from this extension's folder."""
    here = Path(cwd or os.getcwd()).resolve()
    roots = [here] + ([here.parent.parent] if here.parent.name == "extensions" else [])
    for root in roots:
        if (root / WEBUI_MODELS).is_dir():
            return [root / WEBUI_MODELS]
    raise ValueError(f"no {WEBUI_MODELS} here: run from the WebUI folder, or name checkpoint files or folders")


def examine(path: Path, *, fix: bool = False, report: CheckpointReport | None = None) -> DoctorRow:
    """One row of the doctor's table; `report` saves re-reading a file the caller already read."""
    report = report or inspect_checkpoint(path)
    name = str(path)
    if not report.readable and not report.is_depth:
        return DoctorRow(name, "unreadable", "-", "-", f"{report.problem}", False)
    kind = report.description
    if not report.is_depth:
        return DoctorRow(name, kind, report.precision, "-", "-", True)
    if report.problem:
        return DoctorRow(name, kind, report.precision, "-", f"not usable: {report.problem}", False)

    status = check_depth_config(path)
    if report.context_dim not in (None, DEPTH_CONTEXT_DIM) and status.context_dim != report.context_dim:
        # not SD 2's text encoder: only a config of its own describes it, ours would not load
        return DoctorRow(
            name,
            kind,
            report.precision,
            f"{status.state}: {status.message}",
            f"not usable: its text context is {report.context_dim}-wide, SD 2 depth uses "
            f"{DEPTH_CONTEXT_DIM}; it needs a config beside it declaring context_dim "
            f"{report.context_dim}",
            False,
        )
    if status.state == "ok":
        return DoctorRow(name, kind, report.precision, "ok", "-", True)
    if not fix:
        if status.state == "missing":
            return DoctorRow(
                name,
                kind,
                report.precision,
                "missing (fine)",
                f"optional: --fix writes {status.path.name} (for WebUIs that cannot detect it)",
                True,
            )
        return DoctorRow(
            name,
            kind,
            report.precision,
            f"{status.state}: {status.message}",
            f"run with --fix: moves {status.path.name} aside and writes a depth config",
            False,
        )
    try:
        result = fix_depth_config(path)
    except ValueError as error:
        return DoctorRow(
            name,
            kind,
            report.precision,
            f"{status.state}: {status.message}",
            f"fix failed: {error}",
            status.state == "missing",
        )
    moved = f"moved the old one to {result.backup.name}, " if result.backup else ""
    return DoctorRow(name, kind, report.precision, "ok (fixed)", f"{moved}wrote {result.written.name}", True)


def format_table(rows: list[DoctorRow]) -> str:
    headers = ("file", "kind", "build", "precision", "config", "action")
    cells = [headers] + [(r.file, r.kind, r.build, r.precision, r.config, r.action) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


# -- official files and unfinished downloads ------------------------------------------------------------

PARTIAL_SUFFIXES = (".part", ".part-bad")


def download_command(entry: ModelFile | None, folder: Path) -> str:
    if entry is None:  # a --url download: only its own command resumes it
        return f"run the same `python -m lib_depth download --url ... --sha256 ... --to {quote_path(folder)}` again"
    return f"python -m lib_depth download --variant {entry.variant} --to {quote_path(folder)}"


def quote_path(path: str | os.PathLike) -> str:
    """A path as it must be typed into the user's shell."""
    text = str(path)
    if os.name == "nt":
        return f'"{text}"' if " " in text else text
    return shlex.quote(text)


def identify(row: DoctorRow, path: Path, report: CheckpointReport, sha256: str | None) -> DoctorRow:
    """Add whether the file is an official build: certain by SHA-256, and by size alone when its size
    matches no official file (a hash is only needed to tell an official file from a damaged copy)."""
    try:
        size = path.stat().st_size
    except OSError:
        return row
    same_size = official_by_size(size)
    official = official_by_sha256(sha256) if sha256 else None
    if official:
        return replace(row, build=official.title, sha256=sha256)
    if sha256 and same_size:
        entry = same_size[0]
        return replace(
            row,
            build=f"damaged copy of the {entry.title}",
            sha256=sha256,
            ok=False,
            action=f"damaged: download again (move this file away, then {download_command(entry, path.parent)})",
        )
    if same_size:
        return replace(row, build=f"size of the {same_size[0].title}; --hash checks it")
    if report.is_depth:
        return replace(row, build="another depth model (fine-tune or conversion)", sha256=sha256)
    return replace(row, sha256=sha256)


def is_partial_download(path: Path) -> bool:
    return path.name.endswith(PARTIAL_SUFFIXES)


def find_partial_downloads(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """`<file>.part` (unfinished) and `<file>.part-bad` (failed verification) left by `download`."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found.extend(sorted(p for p in item.rglob("*") if p.is_file() and is_partial_download(p)))
        elif item.is_file() and is_partial_download(item):
            found.append(item)
    return found


def examine_partial(path: Path) -> DoctorRow:
    bad = path.name.endswith(".part-bad")
    filename = path.name.removesuffix(".part-bad" if bad else ".part")
    entries = official_by_filename(filename)
    entry = entries[0] if entries else None
    command = download_command(entry, path.parent)
    try:
        size = format_bytes(path.stat().st_size)
    except OSError:
        size = "?"
    if bad:
        return DoctorRow(
            str(path),
            "failed download",
            "-",
            "-",
            f"damaged (its SHA-256 did not match): delete it, then {command}",
            False,
        )
    of = f" of {entry.size_text()}" if entry and entry.size else ""
    return DoctorRow(
        str(path),
        f"unfinished download ({size}{of})",
        "-",
        "-",
        f"resume with `{command}`",
        False,
        build=entry.title if entry else "-",
    )
