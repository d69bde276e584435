"""`doctor`: examine checkpoints and the configs beside depth checkpoints, optionally fix them."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from .checkpoint import CHECKPOINT_SUFFIXES, DEPTH_CONTEXT_DIM, CheckpointReport, inspect_checkpoint
from .model_config import check_depth_config, fix_depth_config

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

    def to_dict(self) -> dict:
        return asdict(self)


def find_checkpoints(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given; folders searched recursively for .safetensors/.ckpt (VAEs skipped), as the
    WebUI lists models. Raises ValueError for a path that does not exist."""
    found: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            found.extend(
                sorted(
                    p
                    for p in item.rglob("*")
                    if p.is_file()
                    and p.suffix.lower() in CHECKPOINT_SUFFIXES
                    and not p.name.lower().endswith(_VAE_SUFFIXES)
                )
            )
        elif item.is_file():
            found.append(item)
        else:
            raise ValueError(f"{item}: no such file or folder")
    return found


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
    headers = ("file", "kind", "precision", "config", "action")
    cells = [headers] + [(r.file, r.kind, r.precision, r.config, r.action) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
