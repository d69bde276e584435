"""A download's or a hash's progress on the command line: a bar redrawn in place on a terminal,
plain periodic lines in logs and pipes."""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

from ..models.model_files import format_bytes
from ..models.transport import Progress


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
