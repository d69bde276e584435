"""Raw depth estimates kept on disk for the length of one sequence, so that normalising thousands of
frames together holds none of them in memory.

A sequence normalised as one (`shared`) needs every frame's range before the first frame is written
or generated, then each frame's depth again. Keeping the estimates in memory grows with the number
of frames; estimating again costs a forward per frame. The store writes each estimate once, exactly
(its own dtype, float32 as the estimators give it: float16 would move 16-bit maps by many levels),
at the network's resolution, into one file in a temporary folder that is removed when the store is
closed (or collected). Before each write it checks the free disk space: a frame that would leave
less than `reserve` bytes free is not stored, and the caller estimates it again instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import BinaryIO, Hashable

import numpy as np
import torch

DEFAULT_RESERVE = 1 << 30  # leave 1 GiB free for everything else
_DTYPES = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}


class DepthStore:
    """An append-only map from a key (a frame's number) to a CPU depth tensor, on disk."""

    def __init__(self, folder: str | os.PathLike | None = None, *, reserve: int | None = None) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="depth2img-sequence-", dir=folder)
        self.path = Path(self._folder.name) / "depths.bin"
        self.reserve = DEFAULT_RESERVE if reserve is None else reserve
        self._file = self.path.open("w+b")
        self._index: dict[Hashable, tuple[int, tuple[int, ...], torch.dtype]] = {}
        self._end = 0
        self.refused = 0  # frames not stored for want of disk space
        # removed when closed, or when the store is collected (a Batch-tab sequence released with its batch)
        self._remove = weakref.finalize(self, _remove, self._file, self._folder)

    @property
    def folder(self) -> Path:
        return Path(self._folder.name)

    @property
    def bytes(self) -> int:
        """Bytes on disk so far."""
        return self._end

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._index

    def put(self, key: Hashable, depth: torch.Tensor) -> bool:
        """Store `depth` under `key` (once: a key is never rewritten); False when the disk is too full."""
        if key in self._index:
            return True
        if depth.dtype not in _DTYPES:
            raise ValueError(f"depth store: cannot keep {depth.dtype} depth")
        data = depth.detach().to("cpu").contiguous().numpy().tobytes()
        if shutil.disk_usage(self.folder).free - len(data) < self.reserve:
            self.refused += 1
            return False
        self._file.seek(self._end)
        self._file.write(data)
        self._index[key] = (self._end, tuple(depth.shape), depth.dtype)
        self._end += len(data)
        return True

    def get(self, key: Hashable) -> torch.Tensor | None:
        """The stored depth (a new CPU tensor), or None if it was never stored."""
        entry = self._index.get(key)
        if entry is None:
            return None
        offset, shape, dtype = entry
        count = int(np.prod(shape, dtype=np.int64))
        self._file.flush()
        self._file.seek(offset)
        raw = self._file.read(count * np.dtype(_DTYPES[dtype]).itemsize)
        return torch.from_numpy(np.frombuffer(raw, dtype=_DTYPES[dtype]).copy().reshape(shape))

    def close(self) -> None:
        """Remove the folder and everything in it."""
        self._index.clear()
        self._remove()

    def __enter__(self) -> DepthStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _remove(file: BinaryIO, folder: tempfile.TemporaryDirectory) -> None:
    file.close()  # first: Windows removes no open file
    folder.cleanup()
