"""Command-line progress: a status line on a terminal, nothing in logs.

On a terminal (stderr is a TTY) each slow step (loading a model, estimating, writing) shows as
one status line, rewritten in place; result lines are printed only after that line is erased,
so they never run into it. Redirected to a file or a pipe, no status is written at all: a log
holds only the result lines and errors, one per line.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = _is_terminal(self.stream) if enabled is None else enabled
        self._shown = False
        self._started = time.monotonic()

    def step(self, text: str) -> None:
        """Show what is being done now (replaces the previous status)."""
        if not self.enabled:
            return
        elapsed = time.monotonic() - self._started
        self.stream.write(f"\r\x1b[K{text} [{elapsed:.0f}s]")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    def print(self, line: str, *, file: TextIO | None = None) -> None:
        """A result or error line, on its own line whatever the status showed."""
        self.clear()
        print(line, file=file or sys.stdout, flush=True)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
