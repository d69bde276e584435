"""Bytes from one mirror into an open `.part`: HTTP with urllib, redirects that keep Range and the
token's host, retries with growing pauses, resuming where the `.part` ends, and a speed meter.

A resumed run first hashes the bytes already in the `.part` (Python's hashlib state cannot be
saved), and `<target>.part.json` beside it tells whether that `.part` belongs to this file at all.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import re
import socket
import threading
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from .download_errors import DownloadCancelled, DownloadError, NotEnoughSpace
from .model_files import format_bytes
from .placement import check_space

CHUNK_SIZE = 1 << 20
USER_AGENT = "sd-webui-depth2img (urllib)"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


@dataclass(frozen=True)
class Progress:
    done: int  # bytes in the .part (including those from earlier runs)
    total: int | None
    speed: float  # bytes per second over the last seconds
    eta: float | None  # seconds left, None while unknown
    stage: str = "download"  # download | check (hashing a .part before resuming)


@dataclass(frozen=True)
class Source:
    url: str
    label: str  # for messages: "webui (huggingface.co)"


@dataclass(frozen=True)
class RetryPolicy:
    """Retries per mirror count failures in a row without new bytes, so a long download over a
    flaky line keeps going while a dead one stops; waits double from `backoff` up to `max_backoff`."""

    attempts: int = 6
    backoff: float = 2.0
    max_backoff: float = 60.0
    timeout: float = 60.0  # seconds without a byte (connect or read) before the connection is retried


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class _Retry(Exception):
    """A failure worth retrying on the same mirror after a pause."""

    def __init__(self, reason: str, *, connection: bool = False) -> None:
        super().__init__(reason)
        self.connection = connection  # no HTTP answer at all


class _NextMirror(Exception):
    """This mirror cannot serve the file (404, 403, wrong size): try the next one."""

    def __init__(self, reason: str, *, connection: bool = False) -> None:
        super().__init__(reason)
        self.connection = connection


class _Complete(Exception):
    """The .part already holds the whole file (the server answered 416 to a resume at its end)."""


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects (the Hub sends files to a CDN) keeping Range, and re-adds the token only
    for the host it was meant for: urllib never forwards an unredirected header."""

    def __init__(self, authorization: str | None, token_origin: str | None) -> None:
        super().__init__()
        self.authorization = authorization
        self.token_origin = token_origin

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and self.authorization and origin(newurl) == self.token_origin:
            new.add_unredirected_header("Authorization", self.authorization)
        return new


class SpeedMeter:
    """Speed over a sliding window, so a stall shows at once and an old burst does not linger."""

    def __init__(self, clock: Callable[[], float], window: float = 5.0) -> None:
        self.clock = clock
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def reset(self) -> None:
        self.samples.clear()

    def update(self, done: int, total: int | None) -> tuple[float, float | None]:
        now = self.clock()
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window:
            self.samples.popleft()
        (start, first) = self.samples[0]
        elapsed = now - start
        speed = (done - first) / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / speed if total is not None and speed > 0 else None
        return speed, eta


@dataclass
class DownloadRun:
    """State of one download across retries and mirrors."""

    part: Path
    file: Any
    hasher: Any
    done: int
    total: int | None
    space_checked: bool = False
    failures: list[tuple[str, str, bool]] = field(default_factory=list)  # label, reason, connection-level


# -- resuming a .part -----------------------------------------------------------------------------------


def is_foreign(part: Path, state: Path, sha256: str | None, size: int | None, say: Callable[[str], None]) -> bool:
    """True when the .part belongs to another file or is longer than the file can be: start over."""
    current = part.stat().st_size
    if not current:
        return False
    reason = None
    try:
        recorded = json.loads(state.read_text(encoding="utf-8")) if state.exists() else {}
    except (OSError, ValueError):
        recorded = {}
    if isinstance(recorded, dict) and recorded.get("sha256") not in (None, sha256):
        reason = "it belongs to another file"
    elif size is not None and current > size:
        reason = "it is longer than the file"
    if reason:
        say(f"starting {part.name} over: {reason}")
    return reason is not None


def hash_existing(
    part: Path,
    hasher: Any,
    size: int | None,
    report: Callable[[Progress], None],
    cancel: threading.Event,
    chunk_size: int,
) -> int:
    """Feed the bytes already in the .part to the running SHA-256; returns their count."""
    done = 0
    with open(part, "rb") as file:
        while chunk := file.read(max(chunk_size, CHUNK_SIZE)):
            if cancel.is_set():
                raise DownloadCancelled(f"cancelled; {part.name} is kept and the next run resumes it")
            hasher.update(chunk)
            done += len(chunk)
            report(Progress(done, size, 0.0, None, "check"))
    return done


# -- one mirror -----------------------------------------------------------------------------------------


def from_source(
    source: Source,
    run: DownloadRun,
    *,
    policy: RetryPolicy,
    cancel: threading.Event,
    wait: Callable[[float], Any],
    say: Callable[[str], None],
    **options: Any,
) -> bool:
    """True once the whole file is in the .part; False when this source is given up."""
    failures = 0
    while True:
        if cancel.is_set():
            raise _cancelled(run)
        before = run.done
        try:
            _attempt(source, run, policy=policy, cancel=cancel, say=say, **options)
            return True
        except _Complete:
            return True
        except _NextMirror as error:
            run.failures.append((source.label, str(error), error.connection))
            say(f"{source.label}: {error}; trying the next mirror")
            return False
        except _Retry as error:
            failures = 1 if run.done > before else failures + 1
            if failures >= policy.attempts:
                run.failures.append((source.label, str(error), error.connection))
                say(f"{source.label}: {error}; giving up on this mirror after {failures} tries")
                return False
            delay = min(policy.backoff * 2 ** (failures - 1), policy.max_backoff)
            say(f"{source.label}: {error}; retrying in {delay:g} s")
            wait(delay)


def _attempt(
    source: Source,
    run: DownloadRun,
    *,
    token: str | None,
    token_origin: str,
    policy: RetryPolicy,
    cancel: threading.Event,
    say: Callable[[str], None],
    report: Callable[[Progress], None],
    meter: SpeedMeter,
    disk_usage: Callable[[str], Any],
    target: Path,
    chunk_size: int,
) -> None:
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if run.done:
        headers["Range"] = f"bytes={run.done}-"
    request = urllib.request.Request(source.url, headers=headers)
    authorization = f"Bearer {token}" if token else None
    if authorization and origin(source.url) == token_origin:
        request.add_unredirected_header("Authorization", authorization)
    opener = urllib.request.build_opener(_RedirectHandler(authorization, token_origin))
    try:
        response = opener.open(request, timeout=policy.timeout)
    except urllib.error.HTTPError as error:
        try:
            _http_error(error, run, token)
        finally:
            error.close()
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, socket.gaierror):
            raise _NextMirror(f"cannot resolve {urlsplit(source.url).hostname} ({reason})", connection=True) from None
        raise _Retry(f"cannot connect ({_describe(reason)})", connection=True) from None
    except (OSError, http.client.HTTPException) as error:
        raise _Retry(f"connection failed ({_describe(error)})", connection=True) from None

    with response:
        total = _start_position(response, run, say)
        if run.total is not None and total is not None and total != run.total:
            raise _NextMirror(f"it serves {format_bytes(total)} ({total} bytes), {run.total} expected")
        if run.total is None:
            run.total = total
        if not run.space_checked and run.total is not None:
            run.space_checked = True
            check_space(target, run.total - run.done, disk_usage)
        meter.reset()
        meter.update(run.done, run.total)
        try:
            while chunk := response.read(chunk_size):
                if cancel.is_set():
                    raise _cancelled(run)
                try:
                    run.file.write(chunk)
                except OSError as error:
                    raise _disk_error(error, run) from None
                run.hasher.update(chunk)
                run.done += len(chunk)
                speed, eta = meter.update(run.done, run.total)
                report(Progress(run.done, run.total, speed, eta))
        except (OSError, http.client.HTTPException) as error:
            run.file.flush()
            stalled = isinstance(error, (socket.timeout, TimeoutError))
            raise _Retry(
                f"no data for {policy.timeout:g} s at {format_bytes(run.done)}"
                if stalled
                else f"connection lost at {format_bytes(run.done)} ({_describe(error)})"
            ) from None
        run.file.flush()
        if run.total is not None and run.done < run.total:
            raise _Retry(f"connection closed at {format_bytes(run.done)} of {format_bytes(run.total)}")
        if run.total is None:
            run.total = run.done


def _start_position(response: Any, run: DownloadRun, say: Callable[[str], None]) -> int | None:
    """Align the .part with what the server sends; returns the full file size if the server says it."""
    length = response.headers.get("Content-Length")
    if response.status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == run.done:
            return None if match.group(3) == "*" else int(match.group(3))
        say("the server sent another part than asked for; starting over")
        _restart(run)
        raise _Retry("unexpected Content-Range")
    if run.done:
        say("the server does not resume downloads; starting over from the first byte")
        _restart(run)
    return int(length) if length and length.isdigit() else None


def _restart(run: DownloadRun) -> None:
    run.file.flush()
    run.file.truncate(0)
    run.hasher = hashlib.sha256()
    run.done = 0


def _http_error(error: urllib.error.HTTPError, run: DownloadRun, token: str | None) -> None:
    code = error.code
    if code == 416 and run.done:
        match = re.search(r"\*/(\d+)", error.headers.get("Content-Range", "") or "")
        if match and int(match.group(1)) == run.done:
            raise _Complete()
        _restart(run)
        raise _Retry("the server refused to resume here (HTTP 416)")
    if code in (401, 403):
        hint = "" if token else "; if the repository needs a login, pass --token or set HF_TOKEN"
        raise _NextMirror(f"HTTP {code} {error.reason}{hint}")
    if code in (404, 410):
        raise _NextMirror(f"HTTP {code}: the file is not there")
    if code in (408, 429) or code >= 500:
        raise _Retry(f"HTTP {code} {error.reason}")
    raise _NextMirror(f"HTTP {code} {error.reason}")


def _describe(error: object) -> str:
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or error.__class__.__name__


def _cancelled(run: DownloadRun) -> DownloadCancelled:
    run.file.flush()
    if not run.done:  # an empty .part is removed on the way out: nothing is kept
        return DownloadCancelled("cancelled before any byte arrived; nothing is kept, the next download starts anew")
    return DownloadCancelled(
        f"cancelled at {format_bytes(run.done)}; {run.part.name} is kept and the next download resumes it"
    )


def _disk_error(error: OSError, run: DownloadRun) -> DownloadError:
    if error.errno == errno.ENOSPC:
        return NotEnoughSpace(f"the disk is full at {format_bytes(run.done)}; free some space and run again to resume")
    return DownloadError(f"cannot write {run.part} ({error.strerror or error})")
