"""The downloader against a real HTTP server on 127.0.0.1: resume, retries, mirrors, verification,
atomic placement, disk space, cancel, tokens and redirects, proxies, the job and the CLI."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import namedtuple
from pathlib import Path

import pytest
from checkpoints import state_dict, write_safetensors
from fileserver import Fault, FileServer

from lib_depth.cli.terminal_progress import TerminalProgress
from lib_depth.models.download import download, download_model
from lib_depth.models.download_errors import (
    AlreadyExists,
    ChecksumMismatch,
    DownloadCancelled,
    DownloadError,
    NotEnoughSpace,
    Unreachable,
)
from lib_depth.models.download_jobs import DownloadJob, current_job, job_snapshots, start_job
from lib_depth.models.hashes import our_cached_sha256
from lib_depth.models.model_config import config_path_for
from lib_depth.models.model_files import Mirror, ModelFile
from lib_depth.models.transport import Progress, RetryPolicy, Source

ROOT = Path(__file__).resolve().parents[1]
DATA = bytes((i * 7 + i // 251) % 256 for i in range(300_000))
SHA = hashlib.sha256(DATA).hexdigest()
FAST = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05, timeout=2.0)
Usage = namedtuple("Usage", "total used free")
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_no_token(monkeypatch, tmp_path):
    """Loopback requests must never go through a proxy from the environment; no ambient token."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def server():
    running = FileServer()
    yield running
    running.close()


def fetch(server: FileServer, tmp_path: Path, *faults: Fault, **options) -> Path:
    url = server.add("/file.bin", DATA, *faults)
    options.setdefault("policy", FAST)
    options.setdefault("sleep", lambda seconds: None)
    options.setdefault("chunk_size", 8192)
    return download([Source(url, "local")], tmp_path / "file.bin", sha256=SHA, size=len(DATA), **options)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_downloads_verifies_and_reports_progress(server, tmp_path):
    updates: list[Progress] = []
    path = fetch(server, tmp_path, progress=updates.append)
    assert path.read_bytes() == DATA
    assert leftovers(tmp_path) == ["file.bin"]  # no .part, no state file
    assert server.sent("/file.bin") == len(DATA)
    assert updates[-1].done == updates[-1].total == len(DATA)
    assert [u.done for u in updates] == sorted(u.done for u in updates)


def test_dropped_connection_resumes_from_the_byte_it_stopped_at(server, tmp_path):
    log: list[str] = []
    fetch(server, tmp_path, Fault(drop_after=100_000), log=log.append)
    first, second = server.requests("/file.bin")
    assert first.sent == 100_000 and "range" not in first.headers
    assert second.headers["range"] == "bytes=100000-" and second.status == 206
    assert server.sent("/file.bin") == len(DATA)  # no byte fetched twice
    assert (tmp_path / "file.bin").read_bytes() == DATA
    assert any("connection" in line and "retrying" in line for line in log)


def test_a_second_run_resumes_the_part_of_the_first(server, tmp_path):
    with pytest.raises(DownloadError, match=r"kept in file.bin.part"):
        fetch(server, tmp_path, Fault(drop_after=123_456), policy=RetryPolicy(attempts=1, timeout=2.0))
    part = tmp_path / "file.bin.part"
    assert part.stat().st_size == 123_456 and not (tmp_path / "file.bin").exists()

    updates: list[Progress] = []
    download(
        [Source(server.url("/file.bin"), "local")],
        tmp_path / "file.bin",
        sha256=SHA,
        size=len(DATA),
        progress=updates.append,
        chunk_size=8192,
    )
    assert server.requests("/file.bin")[-1].headers["range"] == "bytes=123456-"
    assert server.sent("/file.bin") == len(DATA)
    assert (tmp_path / "file.bin").read_bytes() == DATA
    assert updates[0].stage == "check"  # the part was hashed once to seed the running SHA-256


def test_server_that_ignores_range_restarts_from_zero(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(b"\0" * 5000)  # wrong bytes: only a restart can succeed
    log: list[str] = []
    fetch(server, tmp_path, Fault(ignore_range=True), log=log.append)
    (request,) = server.requests("/file.bin")
    assert request.headers["range"] == "bytes=5000-" and request.status == 200
    assert (tmp_path / "file.bin").read_bytes() == DATA
    assert any("starting over" in line for line in log)


def test_5xx_is_retried_with_growing_pauses(server, tmp_path):
    pauses: list[float] = []
    policy = RetryPolicy(attempts=4, backoff=0.5, max_backoff=0.75, timeout=2.0)
    fetch(server, tmp_path, Fault(status=500), Fault(status=503), Fault(status=502), sleep=pauses.append, policy=policy)
    assert pauses == [0.5, 0.75, 0.75]
    assert [r.status for r in server.requests("/file.bin")] == [500, 503, 502, 200]


def test_retries_are_bounded(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 500") as caught:
        fetch(server, tmp_path, *[Fault(status=500)] * 5)
    assert len(server.requests("/file.bin")) == FAST.attempts
    assert "could not download file.bin from any mirror (local: HTTP 500" in str(caught.value)
    assert leftovers(tmp_path) == []  # nothing arrived, nothing left behind


def test_404_moves_to_the_next_mirror_and_says_so(server, tmp_path):
    server.add("/good.bin", DATA)
    log: list[str] = []
    sources = [Source(server.url("/missing.bin"), "first"), Source(server.url("/good.bin"), "second")]
    download(sources, tmp_path / "file.bin", sha256=SHA, size=len(DATA), log=log.append, policy=FAST)
    assert (tmp_path / "file.bin").read_bytes() == DATA
    assert any(line.startswith("first: HTTP 404") and "next mirror" in line for line in log)
    assert len(server.requests("/missing.bin")) == 1  # a 404 is not retried


def test_a_mirror_serving_another_size_is_skipped(server, tmp_path):
    server.add("/short.bin", DATA[:1000])
    server.add("/good.bin", DATA)
    log: list[str] = []
    sources = [Source(server.url("/short.bin"), "short"), Source(server.url("/good.bin"), "good")]
    download(sources, tmp_path / "file.bin", sha256=SHA, size=len(DATA), log=log.append, policy=FAST)
    assert any(line.startswith("short: it serves 1.00 kB (1000 bytes), 300000 expected") for line in log)
    assert (tmp_path / "file.bin").read_bytes() == DATA


def test_a_wrong_byte_never_lands(server, tmp_path):
    with pytest.raises(ChecksumMismatch, match="arrived damaged") as caught:
        fetch(server, tmp_path, Fault(corrupt_at=200_000))
    assert "file.bin.part-bad" in str(caught.value)
    assert leftovers(tmp_path) == ["file.bin.part-bad"]
    assert (tmp_path / "file.bin.part-bad").stat().st_size == len(DATA)
    # the next run starts over and succeeds
    fetch(server, tmp_path)
    assert (tmp_path / "file.bin").read_bytes() == DATA


def test_an_existing_file_is_never_overwritten(server, tmp_path):
    (tmp_path / "file.bin").write_bytes(b"the user's own file")
    with pytest.raises(AlreadyExists, match="never overwritten"):
        fetch(server, tmp_path)
    assert server.log == [] and (tmp_path / "file.bin").read_bytes() == b"the user's own file"


def test_a_file_appearing_during_the_download_is_not_replaced(server, tmp_path):
    target = tmp_path / "file.bin"

    def meanwhile(update: Progress) -> None:
        if update.done == len(DATA):
            target.write_bytes(b"written by someone else meanwhile")

    with pytest.raises(AlreadyExists, match="appeared while downloading"):
        fetch(server, tmp_path, progress=meanwhile)
    assert target.read_bytes() == b"written by someone else meanwhile"
    assert (tmp_path / "file.bin.part").read_bytes() == DATA  # the verified download is kept


def test_not_enough_space_is_refused_before_the_first_byte(server, tmp_path):
    asked: list[str] = []

    def tiny_disk(path: str) -> Usage:
        asked.append(path)
        return Usage(10**9, 10**9 - 1000, 1000)

    with pytest.raises(NotEnoughSpace, match=r"needs 300.00 kB more, 1.00 kB is free") as caught:
        fetch(server, tmp_path, disk_usage=tiny_disk)
    assert str(tmp_path) in str(caught.value) and asked == [str(tmp_path)]
    assert server.log == [] and leftovers(tmp_path) == []


def test_unknown_size_checks_space_from_the_answer_before_writing(server, tmp_path):
    url = server.add("/file.bin", DATA, Fault(slow=0.05, chunk=4096))
    with pytest.raises(NotEnoughSpace):
        download([Source(url, "local")], tmp_path / "file.bin", sha256=SHA, disk_usage=lambda p: Usage(1, 1, 1))
    assert leftovers(tmp_path) == []


def test_resume_only_asks_space_for_the_rest(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(DATA[:250_000])
    fetch(server, tmp_path, disk_usage=lambda p: Usage(10**9, 0, 50_000))
    assert server.requests("/file.bin")[0].headers["range"] == "bytes=250000-"


def test_cancel_leaves_a_part_that_the_next_run_resumes(server, tmp_path):
    cancel = threading.Event()

    def stop_early(update: Progress) -> None:
        if update.done >= 40_000:
            cancel.set()

    with pytest.raises(DownloadCancelled, match="file.bin.part is kept"):
        fetch(server, tmp_path, Fault(slow=0.01, chunk=8192), progress=stop_early, cancel=cancel)
    kept = (tmp_path / "file.bin.part").stat().st_size
    assert 40_000 <= kept < len(DATA) and not (tmp_path / "file.bin").exists()
    assert (tmp_path / "file.bin.part").read_bytes() == DATA[:kept]

    fetch(server, tmp_path)
    assert server.requests("/file.bin")[-1].headers["range"] == f"bytes={kept}-"
    assert (tmp_path / "file.bin").read_bytes() == DATA


def test_a_stall_times_out_and_resumes(server, tmp_path):
    log: list[str] = []
    policy = RetryPolicy(attempts=3, backoff=0.01, timeout=0.3)
    fetch(server, tmp_path, Fault(stall_after=65_536, stall=3.0), log=log.append, policy=policy)
    assert server.requests("/file.bin")[1].headers["range"] == "bytes=65536-"
    assert any("no data for 0.3 s" in line for line in log)
    assert (tmp_path / "file.bin").read_bytes() == DATA


def test_a_part_of_another_file_is_not_continued(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(DATA[:1000])
    (tmp_path / "file.bin.part.json").write_text('{"sha256": "' + "0" * 64 + '"}')
    fetch(server, tmp_path)
    assert "range" not in server.requests("/file.bin")[0].headers


def test_a_complete_part_is_verified_without_the_network(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(DATA)
    fetch(server, tmp_path)
    assert server.log == [] and (tmp_path / "file.bin").read_bytes() == DATA


def test_token_goes_to_the_hub_only_never_to_another_host(server, tmp_path):
    cdn = FileServer()
    try:
        cdn.add("/blob", DATA)
        server.redirects["/org/repo/resolve/main/file.bin"] = cdn.url("/blob")
        url = server.url("/org/repo/resolve/main/file.bin")
        download(
            [Source(url, "hub")],
            tmp_path / "file.bin",
            sha256=SHA,
            size=len(DATA),
            token="secret-token",
            token_origin=server.origin,
            policy=FAST,
        )
        assert server.log[0].headers["authorization"] == "Bearer secret-token"
        assert "authorization" not in cdn.log[0].headers
        assert (tmp_path / "file.bin").read_bytes() == DATA
    finally:
        cdn.close()


def test_range_survives_a_redirect_and_the_token_a_same_host_one(server, tmp_path):
    server.add("/real.bin", DATA)
    server.redirects["/old.bin"] = server.url("/real.bin")
    (tmp_path / "file.bin.part").write_bytes(DATA[:70_000])
    download(
        [Source(server.url("/old.bin"), "hub")],
        tmp_path / "file.bin",
        sha256=SHA,
        size=len(DATA),
        token="tok",
        token_origin=server.origin,
        policy=FAST,
    )
    (final,) = server.requests("/real.bin")
    assert final.headers["range"] == "bytes=70000-" and final.headers["authorization"] == "Bearer tok"


def test_token_is_not_sent_to_a_url_off_the_hub(server, tmp_path):
    fetch(server, tmp_path, token="tok", token_origin="https://huggingface.co")
    assert "authorization" not in server.log[0].headers


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/file.bin"


def test_offline_names_the_hosts_tried_and_the_manual_steps(tmp_path):
    sources = [Source(closed_port_url(), "mirror-a (127.0.0.1)"), Source(closed_port_url(), "mirror-b (127.0.0.1)")]
    with pytest.raises(Unreachable) as caught:
        download(
            sources,
            tmp_path / "file.bin",
            sha256=SHA,
            size=len(DATA),
            policy=FAST,
            sleep=lambda s: None,
            manual="download file.bin by hand from https://example.org/file.bin into /models",
        )
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("cannot reach mirror-a (127.0.0.1), mirror-b (127.0.0.1) (cannot connect (")
    assert message.endswith("Or download file.bin by hand from https://example.org/file.bin into /models.")
    assert leftovers(tmp_path) == []


def test_proxy_from_the_environment_is_used(server, tmp_path, monkeypatch):
    server.add("/file.bin", DATA)
    monkeypatch.setenv("http_proxy", server.origin)
    monkeypatch.setenv("no_proxy", "")
    url = "http://files.example.invalid/file.bin"  # only reachable through the proxy
    download([Source(url, "x")], tmp_path / "file.bin", sha256=SHA, size=len(DATA), policy=FAST)
    assert server.log[0].path == url  # the proxy got the absolute URL
    assert (tmp_path / "file.bin").read_bytes() == DATA


def test_bad_sha256_argument_is_refused(tmp_path):
    with pytest.raises(DownloadError, match="not a SHA-256"):
        download([Source("http://127.0.0.1:1/x", "x")], tmp_path / "x", sha256="abc")


# -- a table entry: HF_ENDPOINT, config beside a depth checkpoint, hash cache, the job -----------------


@pytest.fixture
def depth_file(tmp_path) -> tuple[bytes, str]:
    path = write_safetensors(tmp_path / "source.safetensors", state_dict("depth"))
    data = path.read_bytes()
    path.unlink()
    return data, hashlib.sha256(data).hexdigest()


def entry_for(data: bytes, sha256: str, size: int | None = None) -> ModelFile:
    return ModelFile(
        name="tiny-depth-fp32",
        model="tiny-depth",
        variant="fp32",
        filename="tiny-depth.safetensors",
        size=len(data) if size is None else size,
        sha256=sha256,
        kind="checkpoint",
        description="fp32 safetensors",
        licence="test",
        mirrors=(
            Mirror("gone", "org/gone", "tiny-depth.safetensors"),
            Mirror("copy", "org/copy", "tiny-depth.safetensors"),
        ),
    )


def test_download_model_honours_hf_endpoint_and_prepares_the_checkpoint(server, tmp_path, monkeypatch, depth_file):
    data, sha256 = depth_file
    server.add("/org/copy/resolve/main/tiny-depth.safetensors", data)
    monkeypatch.setenv("HF_ENDPOINT", server.origin + "/")
    models = tmp_path / "models"
    models.mkdir()
    cache = tmp_path / "hashes.json"
    result = download_model(entry_for(data, sha256), models, policy=FAST, hash_cache=cache)
    assert [r.path for r in server.log] == [
        "/org/gone/resolve/main/tiny-depth.safetensors",
        "/org/copy/resolve/main/tiny-depth.safetensors",
    ]
    assert result.path.read_bytes() == data
    assert config_path_for(result.path).is_file()
    assert any("wrote tiny-depth.yaml" in note for note in result.notes)
    assert our_cached_sha256(result.path, cache) == sha256
    assert f"select tiny-depth.safetensors [{sha256[:10]}] there" in result.next_steps


def test_download_model_mirror_choice_and_manual_steps(server, tmp_path, monkeypatch, depth_file):
    data, sha256 = depth_file
    monkeypatch.setenv("HF_ENDPOINT", server.origin)
    with pytest.raises(DownloadError) as caught:
        download_model(entry_for(data, sha256), tmp_path, mirror="gone", policy=FAST)
    assert [r.path for r in server.log] == ["/org/gone/resolve/main/tiny-depth.safetensors"]
    assert "https://huggingface.co/org/gone/blob/main/tiny-depth.safetensors" in str(caught.value)
    assert f"into {tmp_path}" in str(caught.value)
    with pytest.raises(ValueError, match="no mirror 'nope'; its mirrors: gone, copy"):
        download_model(entry_for(data, sha256), tmp_path, mirror="nope")


def wait_for(job: DownloadJob, status: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = job.snapshot()
        if state["status"] == status:
            return state
        time.sleep(0.02)
    raise AssertionError(f"job never reached {status}: {job.snapshot()}")


def test_job_runs_in_the_background_and_reports(server, tmp_path, monkeypatch, depth_file):
    data, sha256 = depth_file
    server.add("/org/gone/resolve/main/tiny-depth.safetensors", data, Fault(slow=0.005, chunk=8192))
    monkeypatch.setenv("HF_ENDPOINT", server.origin)
    job = DownloadJob(
        entry_for(data, sha256), tmp_path, policy=FAST, chunk_size=8192, hash_cache=tmp_path / "h.json"
    ).start()
    seen = wait_for(job, "running")
    assert seen["name"] == "tiny-depth-fp32" and seen["total"] == len(data)
    assert job.wait(20)
    state = job.snapshot()
    assert state["status"] == "done", state
    assert state["bytes"] == state["total"] == len(data) and state["fraction"] == 1.0
    assert state["error"] is None and state["next_steps"] and (tmp_path / "tiny-depth.safetensors").is_file()


def test_job_cancel_keeps_the_part_and_a_restart_resumes(server, tmp_path, monkeypatch, depth_file):
    data, sha256 = depth_file
    path = "/org/gone/resolve/main/tiny-depth.safetensors"
    server.add(path, data, Fault(slow=0.05, chunk=4096))
    monkeypatch.setenv("HF_ENDPOINT", server.origin)
    job = DownloadJob(
        entry_for(data, sha256), tmp_path, policy=FAST, chunk_size=4096, hash_cache=tmp_path / "h.json"
    ).start()
    deadline = time.monotonic() + 20
    while job.snapshot()["bytes"] < 8192 and time.monotonic() < deadline:
        time.sleep(0.01)
    job.cancel()
    assert job.wait(20)
    state = job.snapshot()
    assert state["status"] == "cancelled" and "resumes it" in state["message"]
    kept = (tmp_path / "tiny-depth.safetensors.part").stat().st_size
    assert kept >= 8192

    job.start()
    assert job.wait(20) and job.snapshot()["status"] == "done"
    assert server.requests(path)[-1].headers["range"] == f"bytes={kept}-"
    assert (tmp_path / "tiny-depth.safetensors").read_bytes() == data


def test_job_failure_is_a_message_not_a_dead_thread(tmp_path, monkeypatch, depth_file):
    data, sha256 = depth_file
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url().rsplit("/", 1)[0])
    job = DownloadJob(entry_for(data, sha256), tmp_path, policy=FAST, sleep=lambda s: None).start()
    assert job.wait(20)
    state = job.snapshot()
    assert state["status"] == "failed" and state["error"].startswith("cannot reach gone (127.0.0.1:")
    assert "by hand" in state["error"]


# -- the terminal progress and the CLI ----------------------------------------------------------------


def test_terminal_progress_lines_when_not_a_terminal():
    stream = io.StringIO()
    now = [0.0]
    bar = TerminalProgress(stream, clock=lambda: now[0])
    for second, done in ((0, 1_000_000), (5, 2_000_000), (10, 3_000_000), (12, 4_000_000)):
        now[0] = second
        bar(Progress(done, 4_000_000, 250_000.0, (4_000_000 - done) / 250_000))
    lines = stream.getvalue().splitlines()
    assert lines == [
        " 25.0%  1.00 MB / 4.00 MB  250.00 kB/s  12s left",
        " 75.0%  3.00 MB / 4.00 MB  250.00 kB/s  4s left",
        "100.0%  4.00 MB / 4.00 MB  250.00 kB/s  0s left",
    ]


def test_terminal_progress_redraws_in_place_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    now = [0.0]
    bar = TerminalProgress(stream, clock=lambda: now[0], width=10)
    bar(Progress(500, 1000, 100.0, 5.0))
    bar.log("a message")
    now[0] = 1
    bar(Progress(1000, 1000, 100.0, 0.0))
    text = stream.getvalue()
    assert text.startswith("\r[#####-----]  50.0%  500 B / 1.00 kB  100 B/s  5s left")
    assert "\na message\n\r[##########] 100.0%  1.00 kB / 1.00 kB" in text and text.endswith("\n")


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    environment.update(PYTHONPATH=str(ROOT), no_proxy="127.0.0.1,localhost", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "lib_depth", "download", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )


def test_cli_downloads_a_url_into_the_webui_models_folder(server, tmp_path, depth_file):
    data, sha256 = depth_file
    url = server.add("/files/my-depth.safetensors", data)
    models = tmp_path / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    result = run_cli(
        "--url", url, "--sha256", sha256.upper(), cwd=tmp_path, env={"XDG_CACHE_HOME": str(tmp_path / "cache")}
    )
    assert result.returncode == 0, result.stderr
    assert (models / "my-depth.safetensors").read_bytes() == data
    assert (models / "my-depth.yaml").is_file()
    assert "100.0%" in result.stderr  # plain progress lines, not a TTY
    assert "refresh" in result.stdout and f"my-depth.safetensors [{sha256[:10]}]" in result.stdout

    again = run_cli("--url", url, "--sha256", sha256, cwd=tmp_path)
    assert again.returncode == 2 and "already exists and is never overwritten" in again.stderr
    assert "Traceback" not in again.stderr


def test_cli_refuses_a_damaged_download(server, tmp_path):
    url = server.add("/f.safetensors", DATA, Fault(corrupt_at=10))
    result = run_cli("--url", url, "--sha256", SHA, "--to", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "arrived damaged" in result.stderr and "Traceback" not in result.stderr
    assert leftovers(tmp_path) == ["f.safetensors.part-bad"]


def test_cli_without_a_webui_folder_asks_for_to(tmp_path):
    result = run_cli(cwd=tmp_path)
    assert result.returncode == 2 and "--to" in result.stderr and "Traceback" not in result.stderr


def test_cli_argument_errors(tmp_path):
    no_hash = run_cli("--url", "http://127.0.0.1:1/x.safetensors", "--to", str(tmp_path), cwd=tmp_path)
    assert no_hash.returncode == 2 and "--url needs --sha256" in no_hash.stderr
    both = run_cli(
        "--url",
        "http://127.0.0.1:1/x.safetensors",
        "--sha256",
        SHA,
        "--mirror",
        "webui",
        "--to",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert both.returncode == 2 and "not both" in both.stderr
    not_a_folder = run_cli("--to", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert not_a_folder.returncode == 2 and "nowhere: no such folder" in not_a_folder.stderr


@pytest.mark.skipif(
    shutil.disk_usage(tempfile.gettempdir()).free < 3e9, reason="the fp16 file needs 2.85 GB free to be tried"
)
def test_cli_offline_one_line_with_manual_steps(tmp_path):
    result = run_cli(
        "--to", str(tmp_path), "--retries", "1", cwd=tmp_path, env={"HF_ENDPOINT": closed_port_url().rsplit("/", 1)[0]}
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot reach webui (127.0.0.1:")
    assert "512-depth-ema-fp16.safetensors (2.85 GB) by hand from " in last
    assert "https://huggingface.co/webui/stable-diffusion-2-depth/blob/main/512-depth-ema-fp16.safetensors" in last


def test_cancel_while_checking_a_part_keeps_it(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(DATA[:200_000])
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadCancelled):
        fetch(server, tmp_path, cancel=cancel)
    assert (tmp_path / "file.bin.part").read_bytes() == DATA[:200_000] and server.log == []


def test_one_download_per_file_in_a_process(server, tmp_path):
    url = server.add("/file.bin", DATA, Fault(slow=0.02, chunk=4096))
    started = threading.Event()
    first = threading.Thread(
        target=download,
        args=([Source(url, "local")], tmp_path / "file.bin"),
        kwargs={"sha256": SHA, "size": len(DATA), "progress": lambda update: started.set()},
    )
    first.start()
    try:
        assert started.wait(10)
        with pytest.raises(DownloadError, match="already being downloaded"):
            download([Source(url, "local")], tmp_path / "file.bin", sha256=SHA, size=len(DATA))
    finally:
        first.join(30)
    assert (tmp_path / "file.bin").read_bytes() == DATA


@pytest.mark.skipif(os.name == "nt", reason="the lock between processes is POSIX flock")
def test_a_part_locked_by_another_process_is_left_alone(server, tmp_path):
    part = tmp_path / "file.bin.part"
    part.write_bytes(DATA[:1000])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'ab'); "
            "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(30)",
            str(part),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DownloadError, match="in use by another download"):
            fetch(server, tmp_path)
        assert part.read_bytes() == DATA[:1000] and server.log == []
    finally:
        holder.kill()
        holder.wait()
    fetch(server, tmp_path)  # the lock went with the process
    assert (tmp_path / "file.bin").read_bytes() == DATA


def test_start_job_joins_a_running_job_and_replaces_a_finished_one(server, tmp_path, monkeypatch, depth_file):
    data, sha256 = depth_file
    path = "/org/gone/resolve/main/tiny-depth.safetensors"
    server.add(path, data, Fault(slow=0.02, chunk=8192))
    monkeypatch.setenv("HF_ENDPOINT", server.origin)
    entry = entry_for(data, sha256)
    first = start_job(entry, tmp_path, policy=FAST, hash_cache=tmp_path / "h.json")
    assert start_job(entry, tmp_path) is first and current_job(entry.name) is first
    assert first.wait(30) and first.snapshot()["status"] == "done"
    assert len(server.requests(path)) == 1
    assert any(s["name"] == entry.name and s["status"] == "done" for s in job_snapshots())
    again = start_job(entry, tmp_path, policy=FAST)
    assert again is not first and again.wait(30)
    assert again.snapshot()["status"] == "failed" and "already exists" in again.snapshot()["error"]


def test_a_name_that_does_not_resolve_is_not_retried(tmp_path, monkeypatch):
    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        if host == "hub.example":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    pauses: list[float] = []
    with pytest.raises(Unreachable) as caught:
        download(
            [Source("http://hub.example/f.bin", "hub (hub.example)")],
            tmp_path / "f.bin",
            sha256=SHA,
            sleep=pauses.append,
            manual="get f.bin by hand",
        )
    assert str(caught.value).startswith("cannot reach hub (hub.example) (cannot resolve hub.example (")
    assert pauses == [] and leftovers(tmp_path) == []


def test_the_table_lookups_and_urls(monkeypatch):
    from lib_depth.models.model_files import MODEL_FILES, model_file, model_file_named, official_by_sha256, variants

    default = model_file()
    assert (default.name, default.filename, default.size) == (
        "512-depth-ema-fp16",
        "512-depth-ema-fp16.safetensors",
        2_853_737_366,
    )
    assert variants() == ["fp16", "fp32", "ckpt"]
    assert len({e.name for e in MODEL_FILES}) == len(MODEL_FILES)
    assert all(e.kind == "checkpoint" and len(e.sha256) == 64 for e in MODEL_FILES if e.kind != "estimator")
    assert all(e.sha256 is None or len(e.sha256) == 64 for e in MODEL_FILES)
    assert [e.name for e in MODEL_FILES if e.kind == "estimator"] == [
        "depth-anything-v2-small",
        "depth-anything-v2-base",
        "depth-anything-v2-large",  # no published hash: its first download records one
    ]
    assert official_by_sha256(model_file(variant="ckpt").sha256.upper()).filename == "512-depth-ema.ckpt"
    for hostile in ("../../etc/passwd", "https://evil.example/x.safetensors", "512-depth-ema-fp16.safetensors"):
        with pytest.raises(ValueError, match="unknown model file"):
            model_file_named(hostile)
    with pytest.raises(ValueError, match="no downloadable file for 512-depth-ema fp8"):
        model_file(variant="fp8")
    mirror = default.mirrors[0]
    assert (
        mirror.url()
        == "https://huggingface.co/webui/stable-diffusion-2-depth/resolve/main/512-depth-ema-fp16.safetensors"
    )
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example/")
    assert (
        mirror.url()
        == "https://hf-mirror.example/webui/stable-diffusion-2-depth/resolve/main/512-depth-ema-fp16.safetensors"
    )
    assert mirror.page().startswith("https://huggingface.co/webui/")


def test_local_state_for_a_download_offer(tmp_path):
    from lib_depth.models.download_jobs import local_state
    from lib_depth.models.model_files import model_file

    entry = model_file()
    state = local_state(entry, tmp_path)
    assert state["installed"] is False and state["partial"] == 0 and state["size_text"] == "2.85 GB"
    (tmp_path / "512-depth-ema-fp16.safetensors.part").write_bytes(b"\0" * 1234)
    assert local_state(entry, tmp_path)["partial"] == 1234
    (tmp_path / "512-depth-ema-fp16.safetensors").write_bytes(b"")
    assert local_state(entry, tmp_path)["installed"] is True


def test_estimator_weights_come_from_the_registry_into_models_depth2img(tmp_path, monkeypatch):
    """`download --estimator NAME` picks the registry's weights file and the models/depth2img folder."""
    from lib_depth.cli import main as cli
    from lib_depth.depth.estimators import get_estimator
    from lib_depth.models.model_files import estimator_file

    entry = estimator_file("depth-anything-v2-small")
    weights = get_estimator("depth-anything-v2-small").weights[0]
    assert (entry.filename, entry.sha256, entry.size) == (weights.file_name, weights.sha256, weights.size)
    assert "Apache-2.0" in entry.licence and "non-commercial" in estimator_file("depth-anything-v2-base").licence
    with pytest.raises(ValueError, match="no downloadable weights for 'dpt-hybrid'"):
        estimator_file("dpt-hybrid")
    (tmp_path / "models" / "Stable-diffusion").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    seen = {}

    def fake_download(entry, folder, **options):  # the machinery itself is tested above
        seen.update(entry=entry, folder=folder)
        raise ValueError("stop here")

    monkeypatch.setattr("lib_depth.models.download.download_model", fake_download)
    assert cli.main(["download", "--estimator", "depth-anything-v2-small"]) == 2
    assert seen["entry"] is entry and Path(seen["folder"]).resolve() == (tmp_path / "models" / "depth2img").resolve()


def test_a_file_without_a_published_hash_records_its_first_download_and_checks_the_next(server, tmp_path, monkeypatch):
    """Trust on first use: the large Depth Anything V2 has no published SHA-256. The first download is
    placed and its hash recorded; a later download that serves other bytes is refused."""
    from lib_depth.models import model_files
    from lib_depth.models.first_download import recorded_first_sha256

    entry = model_files.ModelFile(
        name="depth-anything-v2-large",
        model="depth-anything-v2-large",
        variant="weights",
        filename="depth_anything_v2_vitl.pth",
        size=None,
        sha256=None,
        kind="estimator",
        description="test weights",
        licence="CC-BY-NC-4.0",
        mirrors=(model_files.Mirror("hub", "org/large", "depth_anything_v2_vitl.pth"),),
    )
    monkeypatch.setattr(model_files, "MODEL_FILES", (entry,))
    monkeypatch.setenv("HF_ENDPOINT", server.origin)
    server.add("/org/large/resolve/main/depth_anything_v2_vitl.pth", DATA)
    first = download_model(entry, tmp_path, policy=RetryPolicy(attempts=1), sleep=lambda s: None)
    assert first.path.read_bytes() == DATA and first.sha256 == hashlib.sha256(DATA).hexdigest()
    assert any("no SHA-256 is published" in note for note in first.notes)
    assert recorded_first_sha256("depth-anything-v2-large") == first.sha256
    assert model_files.estimator_file("depth-anything-v2-large").sha256 == first.sha256  # checked from now on

    first.path.rename(tmp_path / "kept.pth")
    server.add("/org/large/resolve/main/depth_anything_v2_vitl.pth", DATA[:-1] + b"X")  # a changed file
    with pytest.raises(ChecksumMismatch):
        download_model(
            model_files.estimator_file("depth-anything-v2-large"),
            tmp_path,
            policy=RetryPolicy(attempts=1),
            sleep=lambda s: None,
        )
    assert not (tmp_path / "depth_anything_v2_vitl.pth").exists()
