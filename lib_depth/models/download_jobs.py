"""Downloads in background threads, for a UI that polls: one job per table entry in this process,
and what a UI needs to offer an entry (installed already, or a `.part` to resume).

Needs nothing from the WebUI; a job never holds a lock while downloading, so generation goes on.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from .download import download_model
from .download_errors import DownloadCancelled, DownloadError
from .model_files import ModelFile
from .transport import Progress


class DownloadJob:
    """One download in a background thread, for a UI that polls `snapshot()`."""

    def __init__(self, entry: ModelFile, folder: str | os.PathLike, **options: Any) -> None:
        self.entry = entry
        self.folder = Path(folder)
        self.options = options
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._state: dict[str, Any] = {
            "name": entry.name,
            "file": entry.filename,
            "path": str(self.folder / entry.filename),
            "status": "idle",  # idle | running | checking | done | failed | cancelled
            "bytes": 0,
            "total": entry.size,
            "speed": 0.0,
            "eta": None,
            "message": "",
            "error": None,
            "log": [],
            "notes": [],
            "next_steps": [],
        }

    def start(self) -> DownloadJob:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return self
            self._cancel.clear()
            self._state.update(status="running", error=None, message=f"downloading {self.entry.filename}")
            self._thread = threading.Thread(target=self._run, name=f"download {self.entry.name}", daemon=True)
            self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """True when the job has finished (or never started)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            state = dict(self._state)
            state["log"] = list(state["log"][-20:])
        total = state["total"]
        state["fraction"] = state["bytes"] / total if total else None
        return state

    def _update(self, **values: Any) -> None:
        with self._lock:
            self._state.update(values)

    def _progress(self, update: Progress) -> None:
        self._update(
            status="checking" if update.stage == "check" else "running",
            bytes=update.done,
            total=update.total,
            speed=update.speed,
            eta=update.eta,
        )

    def _log(self, message: str) -> None:
        with self._lock:
            self._state["log"].append(message)
            self._state["message"] = message

    def _run(self) -> None:
        try:
            result = download_model(
                self.entry, self.folder, progress=self._progress, log=self._log, cancel=self._cancel, **self.options
            )
        except DownloadCancelled as error:
            self._update(status="cancelled", message=str(error), speed=0.0, eta=None)
        except DownloadError as error:
            self._update(status="failed", error=str(error), message=str(error), speed=0.0, eta=None)
        except Exception as error:  # a thread must report, not die silently
            message = f"download failed: {error.__class__.__name__}: {error}"
            self._update(status="failed", error=message, message=message, speed=0.0, eta=None)
        else:
            self._update(
                status="done",
                path=str(result.path),
                message=f"{result.path.name} is installed and verified",
                notes=list(result.notes),
                next_steps=list(result.next_steps),
                speed=0.0,
                eta=0.0,
            )


def local_state(entry: ModelFile, folder: str | os.PathLike) -> dict[str, Any]:
    """What a UI needs to offer a table entry: installed already, or a .part to resume."""
    path = Path(folder) / entry.filename
    part = path.with_name(path.name + ".part")
    try:
        partial = part.stat().st_size
    except OSError:
        partial = 0
    return {
        "name": entry.name,
        "file": entry.filename,
        "variant": entry.variant,
        "title": entry.title,
        "size": entry.size,
        "size_text": entry.size_text(),
        "licence": entry.licence,
        "installed": path.exists(),
        "partial": partial,
    }


_JOBS: dict[str, DownloadJob] = {}
_JOBS_LOCK = threading.Lock()


def start_job(entry: ModelFile, folder: str | os.PathLike, **options: Any) -> DownloadJob:
    """The running job for this table entry, or a new one started (one per entry, so a second
    click or request joins the first). A finished, failed or cancelled job is replaced."""
    with _JOBS_LOCK:
        job = _JOBS.get(entry.name)
        if job is None or not job.running:
            job = _JOBS[entry.name] = DownloadJob(entry, folder, **options)
            job.start()
        return job


def current_job(name: str) -> DownloadJob | None:
    with _JOBS_LOCK:
        return _JOBS.get(name)


def job_snapshots() -> list[dict[str, Any]]:
    """Every job of this process, for a progress route."""
    with _JOBS_LOCK:
        jobs = list(_JOBS.values())
    return [job.snapshot() for job in jobs]
