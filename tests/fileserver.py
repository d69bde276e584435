"""A real HTTP file server on 127.0.0.1 for download tests: Range requests, redirects, and faults
scripted per request (drop the connection, 5xx, a wrong byte, a stall), with a log of every
request and of the bytes actually sent."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Fault:
    """What to do to one request instead of (or while) serving it normally."""

    status: int | None = None  # answer with this error status
    drop_after: int | None = None  # send this many body bytes, then close the connection
    stall_after: int | None = None  # send this many body bytes, then go silent for `stall`
    stall: float = 0.0
    corrupt_at: int | None = None  # flip this byte (absolute offset in the file)
    ignore_range: bool = False  # answer 200 with the whole file
    redirect: str | None = None  # answer 302 to this URL
    slow: float = 0.0  # pause between chunks of `chunk` bytes
    chunk: int = 16384


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    status: int = 0
    sent: int = 0  # body bytes written to the socket
    first: int | None = None  # file offset of the first body byte


@dataclass
class FileServer:
    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, deque] = field(default_factory=dict)  # path -> faults for its next requests
    redirects: dict[str, str] = field(default_factory=dict)  # path -> URL, for every request
    log: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.origin + path

    def add(self, path: str, data: bytes, *faults: Fault) -> str:
        self.files[path] = data
        self.faults[path] = deque(faults)
        return self.url(path)

    def requests(self, path: str) -> list[Request]:
        return [r for r in self.log if r.path == path]

    def sent(self, path: str) -> int:
        return sum(r.sent for r in self.requests(path))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?")[0]
        if path.startswith("http://"):  # a proxy request carries the absolute URL
            path = "/" + path.split("/", 3)[3]
        record = Request(handler.path, {k.lower(): v for k, v in handler.headers.items()})
        self.log.append(record)
        queue = self.faults.get(path)
        fault = queue.popleft() if queue else Fault()
        redirect = fault.redirect or self.redirects.get(path)
        if redirect:
            record.status = 302
            handler.send_response(302)
            handler.send_header("Location", redirect)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        data = self.files.get(path)
        if data is None or fault.status:
            record.status = fault.status or 404
            handler.send_error(record.status)
            return
        if fault.corrupt_at is not None:
            data = data[: fault.corrupt_at] + bytes([data[fault.corrupt_at] ^ 0xFF]) + data[fault.corrupt_at + 1 :]
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", record.headers.get("range", ""))
        if match and not fault.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                record.status = 416
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(data)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            record.status = 206
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            record.status = 200
            handler.send_response(200)
        handler.send_header("Content-Length", str(len(data) - start))
        handler.end_headers()
        record.first = start
        body = data[start:]
        limit = len(body)
        if fault.drop_after is not None:
            limit = min(limit, fault.drop_after)
        if fault.stall_after is not None:
            limit = min(limit, fault.stall_after)
        for offset in range(0, limit, fault.chunk):
            piece = body[offset : min(offset + fault.chunk, limit)]
            try:
                handler.wfile.write(piece)
                handler.wfile.flush()
            except OSError:  # the client went away (cancelled, timed out)
                return
            record.sent += len(piece)
            if fault.slow:
                time.sleep(fault.slow)
        if fault.stall_after is not None:
            time.sleep(fault.stall)
        handler.close_connection = True
