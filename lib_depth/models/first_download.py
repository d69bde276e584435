"""The SHA-256 a first download measured, for files the table has no published hash for (trust on
first use): later downloads of the same entry are checked against it. Kept apart from hashes.py so
the download table can read it without importing the hash caches."""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from pathlib import Path

_lock = threading.Lock()


def default_cache_file() -> Path:
    base = (
        os.environ.get("XDG_CACHE_HOME")
        or (os.environ.get("LOCALAPPDATA") if os.name == "nt" else None)
        or Path.home() / ".cache"
    )
    return Path(base) / "sd-webui-depth2img" / "hashes.json"


def first_download_file() -> Path:
    """Where the SHA-256 of a first download of a file with no published hash is recorded."""
    return default_cache_file().with_name("first-download-sha256.json")


def recorded_first_sha256(name: str, record_file: str | os.PathLike | None = None) -> str | None:
    """The SHA-256 the first download of table entry `name` measured, if one was recorded."""
    try:
        data = json.loads(Path(record_file or first_download_file()).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get(name) if isinstance(data, dict) else None
    return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) else None


def record_first_sha256(name: str, sha256: str, record_file: str | os.PathLike | None = None) -> None:
    """Record it once (trust on first use): later downloads of `name` are checked against it."""
    target = Path(record_file or first_download_file())
    with _lock:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        data = data if isinstance(data, dict) else {}
        data.setdefault(name, sha256.lower())
        descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        with os.fdopen(descriptor, "w", encoding="utf8") as file:
            json.dump(data, file, indent=1)
        os.replace(temporary, target)
