"""SHA-256 of model files, with the WebUI's hash cache reused and a cache of our own.

Hashing a 5.7 GB checkpoint takes a minute, so a known hash is looked up first, in order:
1. the WebUI's cache (v1.10.1 `modules/cache.py`): a diskcache SQLite store per section under
   `<data dir>/cache/` (`SD_WEBUI_CACHE_DIR`), section `hashes`, key `checkpoint/<name>` with
   `<name>` the path relative to `models/Stable-diffusion`, value `{"mtime", "sha256"}`; before
   v1.8, and until converted, the same sections in `<data dir>/cache.json` (`SD_WEBUI_CACHE_FILE`).
   An entry counts only while the file's mtime is not newer than the cached one, the WebUI's rule
   (`modules/hashes.py` `sha256_from_cache`). It is only read, never written: the WebUI owns it.
2. our own JSON cache, keyed by the file's absolute path, valid for the same mtime and size.
Hashing happens only when a caller asks (the doctor's `--hash`), never on the WebUI's start-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .first_download import default_cache_file
from .model_files import KIND_FOLDERS

WEBUI_SECTION = "hashes"
_CHUNK = 1 << 20
_lock = threading.Lock()


def sha256_file(
    path: str | os.PathLike,
    *,
    progress: Callable[[int, int], None] | None = None,
    chunk_size: int = _CHUNK,
) -> str:
    """The file's SHA-256; `progress(done, total)` after every chunk."""
    digest = hashlib.sha256()
    total = os.path.getsize(path)
    done = 0
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return digest.hexdigest()


def webui_root_of(path: str | os.PathLike) -> Path | None:
    """The WebUI data folder a checkpoint lies in (`<root>/models/Stable-diffusion/...`), if any."""
    path = Path(os.path.abspath(path))
    folder = KIND_FOLDERS["checkpoint"]
    for parent in path.parents:
        if parent.name == folder.name and parent.parent.name == folder.parent.name:
            return parent.parent.parent
    return None


def webui_title(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """The WebUI's cache key for a checkpoint (`CheckpointInfo`: name relative to its model folder)."""
    absolute = os.path.abspath(path)
    model_path = os.path.abspath(os.path.join(root, KIND_FOLDERS["checkpoint"]))
    name = absolute.replace(model_path, "") if absolute.startswith(model_path) else os.path.basename(absolute)
    if name.startswith(("\\", "/")):
        name = name[1:]
    return f"checkpoint/{name}"


class _NoGlobals(pickle.Unpickler):
    """Hash entries are plain dicts of str and float: anything that names a class is refused."""

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a hash cache entry")


def _diskcache_entry(database: Path, key: str) -> object:
    """Read one value of a diskcache store with sqlite3 only (no diskcache import), read-only."""
    if not database.is_file():
        return None
    try:
        connection = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error:
        return None
    try:
        row = connection.execute(
            "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1 "
            "AND (expire_time IS NULL OR expire_time > ?)",
            (key, time.time()),
        ).fetchone()
    except sqlite3.Error:
        return None
    finally:
        connection.close()
    if row is None:
        return None
    mode, filename, value = row
    if mode != 4:  # diskcache MODE_PICKLE; a dict is always stored pickled
        return None
    try:
        # values over the store's size limit live in a file beside the database
        data = (database.parent / filename).read_bytes() if value is None else bytes(value)
        return _NoGlobals(io.BytesIO(data)).load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError):
        return None


def _json_entry(cache_json: Path, section: str, key: str) -> object:
    try:
        with cache_json.open("r", encoding="utf8") as file:
            data = json.load(file)
    except (OSError, ValueError):
        return None
    entries = data.get(section) if isinstance(data, dict) else None
    return entries.get(key) if isinstance(entries, dict) else None


def _valid(entry: object, mtime: float) -> str | None:
    """The WebUI's rule: a cached hash counts unless the file is newer than the entry."""
    if not isinstance(entry, dict):
        return None
    sha256 = entry.get("sha256")
    cached_mtime = entry.get("mtime", 0)
    if not isinstance(sha256, str) or not isinstance(cached_mtime, (int, float)) or mtime > cached_mtime:
        return None
    return sha256.lower()


def webui_cached_sha256(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str | None:
    """The hash the WebUI has cached for this checkpoint, if it is still valid."""
    root = Path(root) if root is not None else webui_root_of(path)
    if root is None:
        return None
    try:
        mtime = os.path.getmtime(path)
    except OSError:
        return None
    title = webui_title(path, root)
    cache_dir = Path(os.environ.get("SD_WEBUI_CACHE_DIR") or root / "cache")
    cache_json = Path(os.environ.get("SD_WEBUI_CACHE_FILE") or root / "cache.json")
    found = _valid(_diskcache_entry(cache_dir / WEBUI_SECTION / "cache.db", title), mtime)
    return found or _valid(_json_entry(cache_json, WEBUI_SECTION, title), mtime)


def _our_key(path: str | os.PathLike) -> str:
    return os.path.abspath(path)


def _read_ours(cache_file: Path) -> dict:
    try:
        with cache_file.open("r", encoding="utf8") as file:
            data = json.load(file)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def our_cached_sha256(path: str | os.PathLike, cache_file: str | os.PathLike | None = None) -> str | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    entry = _read_ours(Path(cache_file or default_cache_file())).get(_our_key(path))
    if not isinstance(entry, dict) or entry.get("size") != stat.st_size:
        return None
    return _valid(entry, stat.st_mtime)


def remember_sha256(path: str | os.PathLike, sha256: str, cache_file: str | os.PathLike | None = None) -> None:
    """Record a hash in our cache (atomically replaced; a damaged cache is started afresh)."""
    cache_file = Path(cache_file or default_cache_file())
    stat = os.stat(path)
    with _lock:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        data = _read_ours(cache_file)
        data[_our_key(path)] = {"mtime": stat.st_mtime, "size": stat.st_size, "sha256": sha256.lower()}
        descriptor, temporary = tempfile.mkstemp(prefix=f".{cache_file.name}.", dir=cache_file.parent)
        try:
            with os.fdopen(descriptor, "w", encoding="utf8") as file:
                json.dump(data, file, indent=1)
            os.replace(temporary, cache_file)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


@dataclass(frozen=True)
class FileHash:
    sha256: str | None
    source: str  # "WebUI cache" | "our cache" | "computed" | "unknown"


def known_sha256(
    path: str | os.PathLike, *, cache_file: str | os.PathLike | None = None, webui_root: str | os.PathLike | None = None
) -> FileHash:
    """A cached hash, without reading the file."""
    found = webui_cached_sha256(path, webui_root)
    if found:
        return FileHash(found, "WebUI cache")
    found = our_cached_sha256(path, cache_file)
    if found:
        return FileHash(found, "our cache")
    return FileHash(None, "unknown")


def file_sha256(
    path: str | os.PathLike,
    *,
    cache_file: str | os.PathLike | None = None,
    webui_root: str | os.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FileHash:
    """A cached hash, else computed now and remembered in our cache."""
    known = known_sha256(path, cache_file=cache_file, webui_root=webui_root)
    if known.sha256:
        return known
    sha256 = sha256_file(path, progress=progress)
    with contextlib.suppress(OSError):  # a read-only home only costs hashing again next time
        remember_sha256(path, sha256, cache_file)
    return FileHash(sha256, "computed")
