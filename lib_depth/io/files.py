"""Writing files for the user: never over an existing file, with the permissions they expect.

Every writer of the project goes through here, so the rules hold for every command:
- a new file never replaces an existing one: it gets the next free name (`map.png`, `map-1.png`,
  `map-2.png` ...), claimed with an exclusive create so two runs cannot take the same name;
- a file the user asked us to replace (doctor --fix moving a wrong yaml aside) is replaced
  atomically and keeps the old file's mode;
- new files get the mode the umask gives (0644 with the usual 022), not a temporary file's 0600,
  so a WebUI running as another user can read them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

_MAX_NUMBERED = 100_000


def numbered(path: Path, counter: int) -> Path:
    """`name.png` -> `name-<counter>.png` (the name itself for 0)."""
    return path if counter == 0 else path.with_name(f"{path.stem}-{counter}{path.suffix}")


def unused_path(path: str | os.PathLike) -> Path:
    """`path`, or `name-1.png`, `name-2.png` ... the first name no file has."""
    path = Path(path)
    for counter in range(_MAX_NUMBERED):
        candidate = numbered(path, counter)
        if not os.path.lexists(candidate):
            return candidate
    raise ValueError(f"{path}: {_MAX_NUMBERED} numbered files of this name exist already; choose another name")


def same_file(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    """Whether two paths name one existing file (links and relative paths included)."""
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def create_new_file(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write a new file at `path` or the next free numbered name; returns where it went.

    The content is written to a hidden temporary file first and given its name only when complete
    (a hard link, which fails rather than replace a file that appeared meanwhile), so the named file
    is complete or absent even if the process is killed mid-write. Where the file system has no hard
    links, the name is claimed with O_EXCL and written in place. A failed write leaves nothing behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
        os.chmod(temporary, new_file_mode())
        for counter in range(_MAX_NUMBERED):
            candidate = numbered(path, counter)
            try:
                os.link(temporary, candidate)
            except FileExistsError:
                continue
            except OSError:  # no hard links here (some network and FAT file systems)
                return _create_in_place(path, Path(temporary))
            return candidate
    finally:
        Path(temporary).unlink(missing_ok=True)
    raise ValueError(f"{path}: {_MAX_NUMBERED} numbered files of this name exist already; choose another name")


def _create_in_place(path: Path, written: Path) -> Path:
    for counter in range(_MAX_NUMBERED):
        candidate = numbered(path, counter)
        try:
            file = candidate.open("xb")  # mode 0666 & ~umask, like any program's new file
        except FileExistsError:
            continue
        try:
            with file, written.open("rb") as source:
                while chunk := source.read(1 << 20):
                    file.write(chunk)
        except BaseException:
            candidate.unlink(missing_ok=True)
            raise
        return candidate
    raise ValueError(f"{path}: {_MAX_NUMBERED} numbered files of this name exist already; choose another name")


def new_file_mode() -> int:
    """The mode a new regular file gets here: 0666 minus the process umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomically(target: str | os.PathLike, data: bytes, *, mode: int | None = None) -> Path:
    """Write `target` through a temporary file and a rename, so it is never half-written.

    `mode` is the permission bits to give it (the replaced file's, to keep them); by default the
    umask's, as for any new file (a temporary file alone would be 0600).
    """
    target = Path(target)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.chmod(temporary, new_file_mode() if mode is None else mode & 0o7777)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def check_writable_folder(folder: str | os.PathLike, what: str) -> Path:
    """Create `folder` if needed and prove a file can be made in it; ValueError naming it if not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise ValueError(f"{what}: cannot write to {folder} ({error.strerror or error.__class__.__name__})") from None
    return folder
