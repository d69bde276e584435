"""Resumable, verified downloads with the standard library only (urllib).

A file is written to `<target>.part` and hashed while it arrives; only a file whose SHA-256
matches is moved into place, and never over an existing file. A failed or cancelled run leaves
the `.part`, and the next run continues from its size with an HTTP Range request. Python's
hashlib state cannot be saved, so a resumed run first hashes the bytes already in the `.part`
once (a read at disk speed) instead of trusting a stored digest; a small `<target>.part.json`
beside it records which file (SHA-256) the `.part` belongs to, so a `.part` of another file is
restarted, not continued.

Moving into place uses `os.link(part, target)`, which fails when `target` exists, so a file that
appears meanwhile (another download, the user's copy) is never replaced; on file systems without
hard links it falls back to `os.rename` on Windows (which refuses an existing target) and, on
POSIX, to claiming the name with an `O_EXCL` placeholder and `os.replace`-ing it: a racer can
then only ever have opened our empty placeholder, never lose a file of its own.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TextIO
from urllib.parse import urlsplit

from .model_files import ModelFile, format_bytes, hub_endpoint

CHUNK_SIZE = 1 << 20
USER_AGENT = "sd-webui-depth2img (urllib)"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


class DownloadError(ValueError):
    """A download that did not produce a verified file; the message says what to do."""


class DownloadCancelled(DownloadError):
    pass


class ChecksumMismatch(DownloadError):
    pass


class NotEnoughSpace(DownloadError):
    pass


class AlreadyExists(DownloadError):
    pass


class Unreachable(DownloadError):
    """No mirror answered at all: offline, blocked by a firewall, or DNS fails."""


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
class _Run:
    """State of one download across retries and mirrors."""

    part: Path
    file: Any
    hasher: Any
    done: int
    total: int | None
    space_checked: bool = False
    failures: list[tuple[str, str, bool]] = field(default_factory=list)  # label, reason, connection-level


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

    with _claimed(target), open(part, "ab") as file:
        _lock(file, part)
        run = _Run(part, file, hashlib.sha256(), 0, size)
        try:
            if _is_foreign(part, state, sha256, size, say):
                file.truncate(0)
            run.done = _hash_existing(part, run.hasher, size, report, cancel, chunk_size)
            if size is not None:
                run.space_checked = True
                _check_space(target, size - run.done, disk_usage)
            if run.done:
                say(f"resuming {target.name} at {format_bytes(run.done)}")
            state.write_text(json.dumps({"sha256": sha256, "size": size}), encoding="utf-8")
            for source in sources:
                if size is not None and run.done == size:
                    break
                if _from_source(
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
            return _verify_and_place(run, target, state, sha256, on_digest)
        finally:
            if not file.closed:
                file.flush()
            if part.exists() and part.stat().st_size == 0:  # nothing worth resuming: leave no traces
                file.close()
                part.unlink()
                state.unlink(missing_ok=True)


_ACTIVE: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


@contextlib.contextmanager
def _claimed(target: Path) -> Iterator[None]:
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


def _lock(file: Any, part: Path) -> None:
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


def _is_foreign(part: Path, state: Path, sha256: str | None, size: int | None, say: Callable[[str], None]) -> bool:
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


def _hash_existing(
    part: Path,
    hasher: Any,
    size: int | None,
    report: Callable[[Progress], None],
    cancel: threading.Event,
    chunk_size: int,
) -> int:
    done = 0
    with open(part, "rb") as file:
        while chunk := file.read(max(chunk_size, CHUNK_SIZE)):
            if cancel.is_set():
                raise DownloadCancelled(f"cancelled; {part.name} is kept and the next run resumes it")
            hasher.update(chunk)
            done += len(chunk)
            report(Progress(done, size, 0.0, None, "check"))
    return done


def _check_space(target: Path, needed: int, disk_usage: Callable[[str], Any]) -> None:
    free = disk_usage(str(target.parent)).free
    if free < needed:
        raise NotEnoughSpace(
            f"not enough disk space for {target.name} in {target.parent}: it needs {format_bytes(needed)} more, "
            f"{format_bytes(free)} is free; free some space or choose another folder with --to"
        )


def _from_source(
    source: Source,
    run: _Run,
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
    run: _Run,
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
            _check_space(target, run.total - run.done, disk_usage)
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


def _start_position(response: Any, run: _Run, say: Callable[[str], None]) -> int | None:
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


def _restart(run: _Run) -> None:
    run.file.flush()
    run.file.truncate(0)
    run.hasher = hashlib.sha256()
    run.done = 0


def _http_error(error: urllib.error.HTTPError, run: _Run, token: str | None) -> None:
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


def _cancelled(run: _Run) -> DownloadCancelled:
    run.file.flush()
    return DownloadCancelled(
        f"cancelled at {format_bytes(run.done)}; {run.part.name} is kept and the next download resumes it"
    )


def _disk_error(error: OSError, run: _Run) -> DownloadError:
    if error.errno == errno.ENOSPC:
        return NotEnoughSpace(f"the disk is full at {format_bytes(run.done)}; free some space and run again to resume")
    return DownloadError(f"cannot write {run.part} ({error.strerror or error})")


def _all_failed(run: _Run, target: Path, manual: str | None) -> DownloadError:
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


def _verify_and_place(
    run: _Run, target: Path, state: Path, sha256: str | None, on_digest: Callable[[str], None] | None = None
) -> Path:
    """Runs with the .part still open and locked (POSIX), so no other download can touch it meanwhile;
    Windows cannot rename an open file, so there it is closed first."""
    run.file.flush()
    os.fsync(run.file.fileno())
    if os.name == "nt":
        run.file.close()
    digest = run.hasher.hexdigest()
    if sha256 is not None and digest != sha256:
        bad = run.part.with_name(run.part.name + "-bad")
        os.replace(run.part, bad)
        state.unlink(missing_ok=True)
        raise ChecksumMismatch(
            f"{target.name} arrived damaged: its SHA-256 is {digest}, {sha256} expected; it was not installed and "
            f"is kept as {bad.name} (delete it); download again, or from another --mirror"
        )
    _move_into_place(run.part, target)
    state.unlink(missing_ok=True)
    if on_digest is not None:
        on_digest(digest)
    return target


def _move_into_place(part: Path, target: Path) -> None:
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
    doctor knows the file without hashing it again. `options` go to `download`.
    """
    folder = Path(folder)
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
    from .first_download import record_first_sha256
    from .hashes import remember_sha256

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
        notes.extend(_prepare_checkpoint(path))
    return DownloadResult(path, sha256, tuple(notes), tuple(next_steps(entry, path, sha256)))


def _prepare_checkpoint(path: Path) -> list[str]:
    from .checkpoint import inspect_checkpoint
    from .model_config import check_depth_config, fix_depth_config

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


# -- a job for the WebUI ------------------------------------------------------------------------------


class DownloadJob:
    """One download in a background thread, for a UI that polls `snapshot()`.

    Needs nothing from the WebUI; never holds a lock while downloading, so generation goes on.
    """

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


# -- the terminal -------------------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds}s"


class TerminalProgress:
    """A progress bar redrawn in place on a terminal; plain periodic lines in logs and pipes."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        width: int = 28,
    ) -> None:
        self.stream = stream or sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.interval = interval if interval is not None else (0.2 if self.tty else 10.0)
        self.clock = clock
        self.width = width
        self.last = None  # time of the last line drawn
        self.drawn = False  # a bar is on the current terminal line

    def line(self, update: Progress) -> str:
        total = update.total
        if update.stage == "check":
            done = f"{format_bytes(update.done)}" + (f" / {format_bytes(total)}" if total else "")
            return f"checking the part already downloaded: {done}"
        parts = []
        if total:
            fraction = min(update.done / total, 1.0)
            filled = int(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            parts.append(f"[{bar}] {fraction * 100:5.1f}%" if self.tty else f"{fraction * 100:5.1f}%")
            parts.append(f"{format_bytes(update.done)} / {format_bytes(total)}")
        else:
            parts.append(format_bytes(update.done))
        parts.append(f"{format_bytes(update.speed)}/s")
        if update.eta is not None:
            parts.append(f"{format_duration(update.eta)} left")
        return "  ".join(parts)

    def __call__(self, update: Progress) -> None:
        now = self.clock()
        finished = update.total is not None and update.done >= update.total
        if not finished and self.last is not None and now - self.last < self.interval:
            return
        self.last = now
        text = self.line(update)
        if self.tty:
            self.stream.write("\r" + text.ljust(79) + ("\n" if finished else ""))
            self.drawn = not finished
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def log(self, message: str) -> None:
        """A message on its own line, without tearing the bar."""
        if self.drawn:
            self.stream.write("\n")
            self.drawn = False
        self.stream.write(message + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False
