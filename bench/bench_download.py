"""Download throughput over loopback: what hashing while downloading and re-hashing a .part cost.

    python bench/bench_download.py [--megabytes N] [--chunk KIB]

Serves N MB of random bytes from the tests' loopback HTTP server and prints each row as it is
measured: SHA-256 alone in memory, hashing a file from disk (the doctor's --hash), a full
download (socket + write + SHA-256), and a resume at half way (re-hash the .part, then the rest).
Loopback has no network limit, so the download rows show the downloader's own ceiling.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fileserver import FileServer  # noqa: E402

from lib_depth.models.download import download  # noqa: E402
from lib_depth.models.hashes import sha256_file  # noqa: E402
from lib_depth.models.transport import Source  # noqa: E402


def row(name: str, seconds: float, megabytes: float) -> None:
    print(f"| {name:<46} | {seconds:7.2f} s | {megabytes / seconds:8.1f} MB/s |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=1024, help="read size in KiB (default 1024, the downloader's)")
    args = parser.parse_args()
    os.environ["no_proxy"] = "127.0.0.1,localhost"
    size = args.megabytes * 10**6
    data = os.urandom(size)
    sha256 = hashlib.sha256(data).hexdigest()
    server = FileServer()
    url = server.add("/file.bin", data)
    print(f"{args.megabytes} MB, read size {args.chunk} KiB\n")
    print("| step                                           |    time   |   throughput |")
    print("| --- | --- | --- |")
    try:
        start = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        row("SHA-256 in memory", time.perf_counter() - start, args.megabytes)

        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "file.bin"
            start = time.perf_counter()
            download([Source(url, "local")], target, sha256=sha256, size=size, chunk_size=args.chunk * 1024)
            row("download: socket + write + SHA-256", time.perf_counter() - start, args.megabytes)

            start = time.perf_counter()
            sha256_file(target)
            row("SHA-256 of the file from disk (doctor --hash)", time.perf_counter() - start, args.megabytes)

            target.rename(Path(folder) / "done.bin")
            (Path(folder) / "file.bin.part").write_bytes(data[: size // 2])
            start = time.perf_counter()
            download([Source(url, "local")], target, sha256=sha256, size=size, chunk_size=args.chunk * 1024)
            row("resume at 50%: re-hash the .part + the rest", time.perf_counter() - start, args.megabytes)
    finally:
        server.close()


if __name__ == "__main__":
    main()
