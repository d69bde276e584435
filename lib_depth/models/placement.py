"""The file on disk: one download per target, the `.part`'s lock, enough free space, the SHA-256
check, moving the verified file into place without ever replacing one, and what follows
(a depth config beside a checkpoint, the next steps for the user).

Moving into place uses `os.link(part, target)`, which fails when `target` exists, so a file that
appears meanwhile (another download, the user's copy) is never replaced; on file systems without
hard links it falls back to `os.rename` on Windows (which refuses an existing target) and, on
POSIX, to claiming the name with an `O_EXCL` placeholder and `os.replace`-ing it: a racer can
then only ever have opened our empty placeholder, never lose a file of its own.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from .checkpoint import inspect_checkpoint
from .download_errors import AlreadyExists, ChecksumMismatch, DownloadError, NotEnoughSpace
from .model_config import check_depth_config, fix_depth_config
from .model_files import ModelFile, format_bytes

_ACTIVE: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


@contextlib.contextmanager
def claimed(target: Path) -> Iterator[None]:
    """One download per target in this process (two clicks in the WebUI start one download)."""
    key = os.path.normcase(os.path.abspath(target))
    with _ACTIVE_LOCK:
        if key in _ACTIVE:
            raise DownloadError(f"{target.name} is already being downloaded; wait for that download or cancel it")
        _ACTIVE.add(key)
    try:
        yield
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.discard(key)


def lock_part(file: Any, part: Path) -> None:
    """Between processes (the CLI and the WebUI): an advisory lock on the .part, released by the
    system when the process ends, so no stale lock survives a crash. POSIX only; elsewhere the
    in-process claim and the final SHA-256 check still keep a mixed-up .part from being installed."""
    try:
        import fcntl
    except ImportError:
        return
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise DownloadError(
            f"{part.name} is in use by another download (another terminal or the WebUI); wait for it or stop it"
        ) from None
    except OSError:  # no locks on this file system (some network shares): go on without
        pass


def check_space(target: Path, needed: int, disk_usage: Callable[[str], Any]) -> None:
    free = disk_usage(str(target.parent)).free
    if free < needed:
        raise NotEnoughSpace(
            f"not enough disk space for {target.name} in {target.parent}: it needs {format_bytes(needed)} more, "
            f"{format_bytes(free)} is free; free some space or choose another folder with --to"
        )


def verify_and_place(file: Any, part: Path, digest: str, target: Path, state: Path, sha256: str | None) -> None:
    """Runs with the .part still open and locked (POSIX), so no other download can touch it meanwhile;
    Windows cannot rename an open file, so there it is closed first. `digest` is the SHA-256 of
    everything written to it."""
    file.flush()
    os.fsync(file.fileno())
    if os.name == "nt":
        file.close()
    if sha256 is not None and digest != sha256:
        bad = part.with_name(part.name + "-bad")
        os.replace(part, bad)
        state.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"{target.name} arrived damaged: its SHA-256 is {digest}, {sha256} expected; it was not installed and "
            f"is kept as {bad.name} (delete it); download again, or from another --mirror"
        )
    move_into_place(part, target)
    state.unlink(missing_ok=True)


def move_into_place(part: Path, target: Path) -> None:
    try:
        os.link(part, target)
    except FileExistsError:
        raise AlreadyExists(
            f"{target} appeared while downloading and is not overwritten; the verified download is kept as "
            f"{part.name}: rename it yourself if you want it"
        ) from None
    except OSError:  # no hard links on this file system (FAT, exFAT, some network shares)
        if os.name == "nt":
            try:
                os.rename(part, target)  # refuses an existing target on Windows
            except FileExistsError:
                raise AlreadyExists(f"{target} appeared while downloading; kept {part.name}") from None
            return
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            raise AlreadyExists(f"{target} appeared while downloading; kept {part.name}") from None
        os.replace(part, target)
        return
    part.unlink()


# -- after the download ---------------------------------------------------------------------------------


def prepare_checkpoint(path: Path) -> list[str]:
    """The doctor's check decides whether a depth config is written beside a downloaded checkpoint
    (a wrong one is moved aside, never overwritten); returns what was done, for the user."""
    report = inspect_checkpoint(path)
    if not report.is_depth:
        return [f"{path.name} is not a depth model ({report.description}); no depth config written"]
    if report.problem:
        return [f"{path.name}: {report.problem}"]
    status = check_depth_config(path)
    if status.state == "ok":
        return [f"{status.path.name} beside it already describes a depth model"]
    try:
        result = fix_depth_config(path)
    except ValueError as error:
        return [str(error)]
    moved = f" (the old one is kept as {result.backup.name})" if result.backup else ""
    return [f"wrote {result.written.name} beside it, so any WebUI version loads it as a depth model{moved}"]


def next_steps(entry: ModelFile, path: Path, sha256: str | None = None) -> list[str]:
    if entry.kind != "checkpoint":
        return [f"{path.name} is ready; the extension finds it in {path.parent}"]
    return [
        "In the WebUI: click the refresh button beside 'Stable Diffusion checkpoint' (top left)",
        f"select {path.name} [{(sha256 or entry.sha256 or '')[:10]}] there",
        "open img2img and the Depth2img accordion: its status line names the loaded depth model",
    ]
