"""Resumable, verified downloads with the standard library only (urllib): the orchestration.

A file is written to `<target>.part` and hashed while it arrives (models.transport); only a file
whose SHA-256 matches is moved into place, and never over an existing file (models.placement). A
failed or cancelled run leaves the `.part`, and the next run continues from its size with an HTTP
Range request. `download_model` does the same for an entry of the table and then makes the file
ready for the WebUI.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

from .download_errors import AlreadyExists, DownloadError, OfflineMode, Unreachable
from .first_download import record_first_sha256
from .hashes import remember_sha256
from .model_files import ModelFile, format_bytes, hub_endpoint, hub_offline
from .placement import check_space, claimed, lock_part, next_steps, prepare_checkpoint, verify_and_place
from .transport import (
    CHUNK_SIZE,
    DownloadRun,
    Progress,
    RetryPolicy,
    Source,
    SpeedMeter,
    from_source,
    hash_existing,
    is_foreign,
    origin,
)


def sources_for(entry: ModelFile, mirror: str | None = None, endpoint: str | None = None) -> list[Source]:
    """The entry's mirrors in table order, or only the one named (ValueError if it has none such)."""
    mirrors = [m for m in entry.mirrors if mirror in (None, m.name)]
    if not mirrors:
        names = ", ".join(m.name for m in entry.mirrors)
        raise ValueError(f"{entry.filename} has no mirror {mirror!r}; its mirrors: {names}")
    endpoint = endpoint or hub_endpoint()
    return [Source(m.url(endpoint), f"{m.name} ({urlsplit(endpoint).netloc})") for m in mirrors]


def manual_steps(entry: ModelFile, folder: str | os.PathLike) -> str:
    pages = " or ".join(m.page() for m in entry.mirrors)
    check = f", then check it with `python -m lib_depth doctor --hash` (SHA-256 {entry.sha256})" if entry.sha256 else ""
    return f"download {entry.filename} ({entry.size_text()}) by hand from {pages} into {folder}{check}"


def check_online(entry: ModelFile, folder: str | os.PathLike) -> None:
    """OfflineMode, before any connection, when huggingface_hub's offline mode is on: the user
    turned downloads off for every Hub client, this one included."""
    setting = hub_offline()
    if setting is None:
        return
    hand = f"; or {manual_steps(entry, folder)}" if entry.mirrors else ""
    raise OfflineMode(
        f"offline mode is on ({setting}): {entry.filename} is not downloaded and no connection is opened. "
        f"Unset {setting.split('=')[0]} to download it{hand}"
    )


def download(
    sources: Sequence[Source],
    target: str | os.PathLike,
    *,
    sha256: str | None,
    size: int | None = None,
    token: str | None = None,
    token_origin: str | None = None,
    manual: str | None = None,
    progress: Callable[[Progress], None] | None = None,
    log: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
    disk_usage: Callable[[str], Any] = shutil.disk_usage,
    chunk_size: int = CHUNK_SIZE,
    clock: Callable[[], float] = time.monotonic,
    on_digest: Callable[[str], None] | None = None,
) -> Path:
    """Download `target` from the first source that serves it, verify its SHA-256, move it into place.

    `sha256` None: nothing was published to check against; the file is placed and `on_digest`
    gets the SHA-256 measured while downloading (to be recorded for the next time).

    `token` is sent as a Bearer token only to `token_origin` (scheme://host:port, default the Hub
    endpoint), also after a redirect back to it, never to another host. `manual` is appended to
    the message when every source fails (how to get the file by hand). Raises DownloadError
    subclasses with a message for the user; the `.part` stays for the next run to resume.
    """
    target = Path(target)
    sha256 = sha256.strip().lower() if sha256 is not None else None
    if sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise DownloadError(f"--sha256: {sha256!r} is not a SHA-256 (64 hex digits)")
    if not sources:
        raise DownloadError(f"no source to download {target.name} from")
    if not target.parent.is_dir():
        raise DownloadError(f"{target.parent}: no such folder; create it or choose another with --to")
    if target.exists():
        raise AlreadyExists(
            f"{target} already exists and is never overwritten; `python -m lib_depth doctor --hash {target}` "
            "checks it, or move it away to download again"
        )
    policy = policy or RetryPolicy()
    cancel = cancel or threading.Event()
    wait = sleep or cancel.wait
    say = log or (lambda message: None)
    report = progress or (lambda update: None)
    token_origin = token_origin or origin(hub_endpoint())
    part = target.with_name(target.name + ".part")
    state = target.with_name(target.name + ".part.json")

    with claimed(target), open(part, "ab") as file:
        lock_part(file, part)
        run = DownloadRun(part, file, hashlib.sha256(), 0, size)
        try:
            if is_foreign(part, state, sha256, size, say):
                file.truncate(0)
            run.done = hash_existing(part, run.hasher, size, report, cancel, chunk_size)
            if size is not None:
                run.space_checked = True
                check_space(target, size - run.done, disk_usage)
            if run.done:
                say(f"resuming {target.name} at {format_bytes(run.done)}")
            state.write_text(json.dumps({"sha256": sha256, "size": size}), encoding="utf-8")
            for source in sources:
                if size is not None and run.done == size:
                    break
                if from_source(
                    source,
                    run,
                    token=token,
                    token_origin=token_origin,
                    policy=policy,
                    cancel=cancel,
                    wait=wait,
                    say=say,
                    report=report,
                    meter=SpeedMeter(clock),
                    disk_usage=disk_usage,
                    target=target,
                    chunk_size=chunk_size,
                ):
                    break
            else:
                raise _all_failed(run, target, manual)
            digest = run.hasher.hexdigest()
            verify_and_place(run.file, part, digest, target, state, sha256)
            if on_digest is not None:
                on_digest(digest)
            return target
        finally:
            if not file.closed:
                file.flush()
            if part.exists() and part.stat().st_size == 0:  # nothing worth resuming: leave no traces
                file.close()
                part.unlink()
                state.unlink(missing_ok=True)


def _all_failed(run: DownloadRun, target: Path, manual: str | None) -> DownloadError:
    kept = f" {format_bytes(run.done)} kept in {run.part.name} for the next run." if run.done else ""
    hand = f" Or {manual}." if manual else ""
    if run.failures and all(connection for _, _, connection in run.failures):
        hosts = ", ".join(dict.fromkeys(label for label, _, _ in run.failures))
        reasons = "; ".join(dict.fromkeys(reason for _, reason, _ in run.failures))
        return Unreachable(
            f"cannot reach {hosts} ({reasons}): offline, or blocked by a firewall or proxy (HTTPS_PROXY, "
            f"HF_ENDPOINT).{kept}{hand}"
        )
    tried = "; ".join(f"{label}: {reason}" for label, reason, _ in run.failures)
    return DownloadError(f"could not download {target.name} from any mirror ({tried}).{kept}{hand}")


# -- a model from the table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    sha256: str
    notes: tuple[str, ...]  # what was done after the download (config written, hash cached)
    next_steps: tuple[str, ...]


def env_token() -> str | None:
    return os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or None


def download_model(
    entry: ModelFile,
    folder: str | os.PathLike,
    *,
    mirror: str | None = None,
    sources: Sequence[Source] | None = None,
    token: str | None = None,
    write_config: bool = True,
    hash_cache: str | os.PathLike | None = None,
    **options: Any,
) -> DownloadResult:
    """Download a table entry into `folder`, then make it ready for the WebUI.

    `sources` replaces the entry's mirrors (the CLI's --url); `token` defaults to HF_TOKEN. For a
    checkpoint, the doctor's check decides whether a depth config is written beside it (a wrong
    one is moved aside, never overwritten). The verified hash goes into our hash cache, so the
    doctor knows the file without hashing it again. `options` go to `download`. With huggingface_hub's
    offline mode on (HF_HUB_OFFLINE=1), OfflineMode at once: nothing connects.
    """
    folder = Path(folder)
    check_online(entry, folder)
    endpoint = hub_endpoint()
    sources = list(sources) if sources is not None else sources_for(entry, mirror, endpoint)
    measured: list[str] = []
    path = download(
        sources,
        folder / entry.filename,
        sha256=entry.sha256,
        size=entry.size,
        token=token if token is not None else env_token(),
        token_origin=origin(endpoint),
        manual=manual_steps(entry, folder) if entry.mirrors else None,
        on_digest=measured.append,
        **options,
    )
    notes: list[str] = []
    sha256 = entry.sha256 or measured[0]
    try:
        remember_sha256(path, sha256, cache_file=hash_cache)
        if entry.sha256 is None:  # trust on first use: the next download is checked against this one
            record_first_sha256(entry.name, sha256)
            notes.append(
                f"no SHA-256 is published for {entry.filename}: this download's ({sha256}) is recorded, and later "
                "downloads of it are checked against it"
            )
    except OSError as error:
        notes.append(f"could not record its hash ({error.strerror or error})")
    if entry.kind == "checkpoint" and write_config:
        notes.extend(prepare_checkpoint(path))
    return DownloadResult(path, sha256, tuple(notes), tuple(next_steps(entry, path, sha256)))
