"""Bounded cache of estimated depth, so a repeated init image runs no depth model."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch


def image_digest(image: torch.Tensor) -> str:
    """Content hash of one image tensor in [-1, 1]: its 8-bit pixel values and shape.

    Hashing the 8-bit values (what the image was before the WebUI made it a tensor) makes a
    float16 generation and a float32 preview of the same picture share one estimate, and hashes
    4x fewer bytes than float32. SHA-1 for speed on an identity check, not for security.
    """
    pixels = ((image.detach().float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8).contiguous().cpu()
    hasher = hashlib.sha1(str(tuple(pixels.shape)).encode(), usedforsecurity=False)
    if pixels.numel():
        hasher.update(pixels.numpy())
    return hasher.hexdigest()


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int
    hits: int
    misses: int


class DepthCache:
    """Least-recently-used map from a key to a CPU float32 depth tensor, bounded by count and bytes.

    Entries live on the CPU so a cache never holds GPU memory between generations.
    """

    def __init__(self, max_entries: int = 16, max_bytes: int = 256 * 2**20) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("cache limits must not be negative")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> torch.Tensor | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return value

    def put(self, key: tuple, depth: torch.Tensor) -> None:
        value = depth.detach().to(device="cpu", dtype=torch.float32).clone()
        size = value.numel() * value.element_size()
        with self._lock:
            self._remove(key)
            if size > self.max_bytes or self.max_entries == 0:
                return
            self._entries[key] = value
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._remove(next(iter(self._entries)))

    def resize(self, max_entries: int, max_bytes: int) -> None:
        """Change the bounds (the WebUI setting), evicting the oldest entries that no longer fit."""
        with self._lock:
            self.max_entries, self.max_bytes = max_entries, max_bytes
            while self._entries and (len(self._entries) > max_entries or self._bytes > max_bytes):
                self._remove(next(iter(self._entries)))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(len(self._entries), self._bytes, self._hits, self._misses)

    def __contains__(self, key: tuple) -> bool:
        with self._lock:
            return key in self._entries

    def _remove(self, key: tuple) -> None:
        value = self._entries.pop(key, None)
        if value is not None:
            self._bytes -= value.numel() * value.element_size()
