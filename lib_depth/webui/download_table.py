"""The depth model downloads the WebUI offers: the table of files (or a test table), the jobs
started from the accordion or the routes, and the routes POST/GET /depth2img/v1/download.

The work is lib_depth.models.download_jobs' DownloadJob, a background thread: nothing here holds the
WebUI's queue lock, so generation in other tabs goes on while a download runs. When a job finishes,
the checkpoint list is refreshed as the WebUI's refresh button does it (`sd_models.list_models()`).

A client only ever names an entry of the table (lib_depth.model_files), never a URL or a path. For
tests, the server-side environment variable DEPTH2IMG_TEST_DOWNLOAD_TABLE may name a JSON table
that replaces it, honoured only while HF_ENDPOINT points at the loopback address.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..models.download import check_online
from ..models.download_errors import OfflineMode
from ..models.download_jobs import DownloadJob, current_job, local_state, start_job
from ..models.model_files import (
    DEFAULT_MODEL,
    DEFAULT_VARIANT,
    MODEL_FILES,
    Mirror,
    ModelFile,
    hub_endpoint,
)
from ..validation import quote, quote_names
from .payload import PayloadError
from .redact import scrub_answer, shown_path

log = logging.getLogger("sd-webui-depth2img")

TEST_TABLE_ENV = "DEPTH2IMG_TEST_DOWNLOAD_TABLE"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
POST_FIELDS = ("name", "cancel")
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")


class TableError(Exception):
    """The test table is set but unusable; the message names the variable, the file and the field."""


# -- the table ----------------------------------------------------------------------------------------


def table() -> tuple[ModelFile, ...]:
    """The files the WebUI offers: the production table's depth model, or the test table."""
    path = os.environ.get(TEST_TABLE_ENV)
    if not path:
        return tuple(entry for entry in MODEL_FILES if entry.model == DEFAULT_MODEL)
    host = urlsplit(hub_endpoint()).hostname
    if host not in LOOPBACK_HOSTS:
        raise TableError(
            f"{TEST_TABLE_ENV} is set, but HF_ENDPOINT ({hub_endpoint()}) is not a loopback address; the test "
            f"table only serves downloads from {', '.join(LOOPBACK_HOSTS)}: unset {TEST_TABLE_ENV}"
        )
    return load_test_table(path)


def load_test_table(path: str | os.PathLike) -> tuple[ModelFile, ...]:
    """A JSON list of {name, variant, filename, size, sha256, mirrors: [{name, repo, path}]}; the
    mirrors are Hub repositories, resolved against HF_ENDPOINT like the production ones."""
    where = f"{TEST_TABLE_ENV}={path}"
    try:
        rows = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise TableError(f"{where}: cannot read it ({error.strerror or error})") from None
    except ValueError as error:
        raise TableError(f"{where}: not JSON ({error})") from None
    if not isinstance(rows, list) or not rows:
        raise TableError(f"{where}: expected a non-empty JSON list of files")
    entries = [_test_entry(row, f"{where}: entry {index}") for index, row in enumerate(rows)]
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        raise TableError(f"{where}: names must be unique, got {names}")
    return tuple(entries)


def _test_entry(row: Any, where: str) -> ModelFile:
    if not isinstance(row, dict):
        raise TableError(f"{where}: expected an object")

    def text(key: str) -> str:
        value = row.get(key)
        if not isinstance(value, str) or not value:
            raise TableError(f"{where}: {key}: expected a non-empty string, got {value!r}")
        return value

    filename = text("filename")
    if Path(filename).name != filename or filename in (".", "..") or not filename.endswith(CHECKPOINT_SUFFIXES):
        raise TableError(f"{where}: filename: expected a plain .safetensors or .ckpt file name, got {filename!r}")
    size = row.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise TableError(f"{where}: size: expected a positive integer (bytes), got {size!r}")
    sha256 = text("sha256").lower()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise TableError(f"{where}: sha256: expected 64 hex digits")
    mirrors = row.get("mirrors")
    if not isinstance(mirrors, list) or not mirrors or not all(isinstance(m, dict) for m in mirrors):
        raise TableError(f"{where}: mirrors: expected a non-empty list of {{name, repo, path}}")
    try:
        parsed = tuple(Mirror(str(m["name"]), str(m["repo"]), str(m["path"])) for m in mirrors)
    except KeyError as missing:
        raise TableError(f"{where}: mirrors: every mirror needs {missing}") from None
    variant = text("variant")
    return ModelFile(
        name=text("name"),
        model=Path(filename).stem,
        variant=variant,
        filename=filename,
        size=size,
        sha256=sha256,
        kind="checkpoint",
        description=f"{variant}, test table",
        licence="test table",
        mirrors=parsed,
    )


def entry_named(name: Any, entries: tuple[ModelFile, ...]) -> ModelFile:
    """The table entry a client names; PayloadError naming the field for anything else."""
    known = ", ".join(entry.name for entry in entries)
    if not isinstance(name, str):
        raise PayloadError(f"name: expected one of {known}, got {quote(name)}")
    if "/" in name or "\\" in name or ":" in name:
        raise PayloadError(f"name: {quote(name)} looks like a URL or a path; only names from the table: {known}")
    for entry in entries:
        if entry.name == name:
            return entry
    raise PayloadError(f"name: unknown file {quote(name)}; choose one of {known}")


def entry_for_variant(variant: Any, entries: tuple[ModelFile, ...]) -> ModelFile:
    return next((entry for entry in entries if entry.variant == variant), entries[0])


def default_variant(entries: tuple[ModelFile, ...]) -> str:
    variants = [entry.variant for entry in entries]
    return DEFAULT_VARIANT if DEFAULT_VARIANT in variants else variants[0]


def checkpoint_folder() -> Path:
    """Where the WebUI looks for checkpoints first: --ckpt-dir, else models/Stable-diffusion."""
    from modules import sd_models, shared

    return Path(getattr(shared.cmd_opts, "ckpt_dir", None) or sd_models.model_path)


# -- jobs ---------------------------------------------------------------------------------------------

# by the job itself, not its id(): a finished job may be dropped and its id() reused by a new one
_refreshed: dict[DownloadJob, int] = {}  # a job whose checkpoint list refresh has run -> its number
_watched: set[DownloadJob] = set()
_lock = threading.Lock()


def start(entry: ModelFile) -> DownloadJob:
    """Start (or join) the download of a table entry; the checkpoint list is refreshed when it is done."""
    job = start_job(entry, checkpoint_folder())
    with _lock:
        if job in _watched:
            return job
        _watched.add(job)
    threading.Thread(target=_refresh_when_done, args=(job,), name=f"refresh after {entry.name}", daemon=True).start()
    return job


def _refresh_when_done(job: DownloadJob) -> None:
    job.wait()
    if job.snapshot()["status"] == "done":
        refresh_checkpoints(job)


def refresh_checkpoints(job: DownloadJob) -> None:
    """The WebUI's checkpoint refresh (shared_items.refresh_checkpoints), once per finished job."""
    with _lock:
        if job in _refreshed:
            return
        _refreshed[job] = len(_refreshed) + 1
    try:
        from modules import sd_models

        sd_models.list_models()
    except Exception:  # noqa: BLE001 - the file is in place; the user's refresh button still works
        log.exception("Depth2img: refreshing the checkpoint list after the download failed")


def table_job(entries: tuple[ModelFile, ...], variant: Any = None) -> DownloadJob | None:
    """The job to show: a running one of the table, else the selected variant's last one."""
    jobs = [job for job in (current_job(entry.name) for entry in entries) if job is not None]
    running = [job for job in jobs if job.running]
    if running:
        return running[0]
    if variant is not None:
        return current_job(entry_for_variant(variant, entries).name)
    return None


def refresh_number(job: DownloadJob) -> int:
    """The number of a finished job's checkpoint list refresh (0 while it has not run), so that the
    browser refreshes its dropdown once per finished download."""
    with _lock:
        return _refreshed.get(job, 0)


def snapshot(job: DownloadJob) -> dict[str, Any]:
    """The job's progress as a client or the page may see it: files named relative to the WebUI's
    folders (`path`: models/Stable-diffusion/...), in its messages too."""
    raw = job.snapshot()
    state = scrub_answer(raw)
    state["path"] = shown_path(raw["path"])
    with _lock:
        state["checkpoints_refreshed"] = job in _refreshed
    return state


def offline_refusal(entry: ModelFile, folder: Path) -> str | None:
    """The message that stops a download before it starts when huggingface_hub's offline mode is
    on (HF_HUB_OFFLINE=1), folders named as a client sees them; None when downloads may connect."""
    try:
        check_online(entry, shown_path(folder))
    except OfflineMode as error:
        return str(error)
    return None


# -- routes -------------------------------------------------------------------------------------------


def _route_table() -> tuple[ModelFile, ...]:
    from fastapi import HTTPException

    try:
        return table()
    except TableError as error:
        log.error("Depth2img: %s", error)
        raise HTTPException(
            status_code=503, detail="depth2img: downloads are unavailable; see the server log"
        ) from None


def post_route(payload: dict[str, Any]) -> dict[str, Any]:
    """POST /download {"name": ...}: start or join that download; {"name": ..., "cancel": true} cancels it."""
    from fastapi import HTTPException

    unknown = sorted(map(str, set(payload) - set(POST_FIELDS)))
    if unknown:
        raise PayloadError(f"unknown field(s) {quote_names(unknown)}; known: {', '.join(POST_FIELDS)}")
    cancel = payload.get("cancel", False)
    if not isinstance(cancel, bool):
        raise PayloadError(f"cancel: expected true or false, got {quote(cancel)}")
    entry = entry_named(payload.get("name"), _route_table())
    if cancel:
        job = current_job(entry.name)
        if job is None:
            return {"name": entry.name, "file": entry.filename, "status": "idle", "message": "no download to cancel"}
        job.cancel()
        job.wait(10)
        return snapshot(job)
    job = current_job(entry.name)
    if not (job and job.running):
        if local_state(entry, checkpoint_folder())["installed"]:
            raise HTTPException(
                status_code=409, detail=f"name: {entry.filename} is already installed in the WebUI's checkpoint folder"
            )
        offline = offline_refusal(entry, checkpoint_folder())
        if offline is not None:
            raise HTTPException(status_code=409, detail=f"depth2img: {offline}")
    return snapshot(start(entry))


def get_route() -> dict[str, Any]:
    """GET /download: every file of the table, whether installed, its .part, and its job's progress."""
    entries = _route_table()
    folder = checkpoint_folder()
    files = []
    for entry in entries:
        job = current_job(entry.name)
        files.append({**local_state(entry, folder), "job": snapshot(job) if job else None})
    return {"files": files, "default": entry_for_variant(default_variant(entries), entries).name}
