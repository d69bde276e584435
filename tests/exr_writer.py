"""A minimal OpenEXR writer for tests (single-part scanline, NONE or ZIP, half or float channels),
written from the OpenEXR file layout spec (openexr.com "OpenEXR File Layout"), so the reader's tests
run where the `openexr` package is not installed (the WebUI pins leg). test_depth_files checks the
reader against the `openexr` package too, where it is."""

from __future__ import annotations

import struct
import zlib

import numpy as np

_TYPES = {np.dtype("float16"): 1, np.dtype("float32"): 2}


def _attribute(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def exr_bytes(channels: dict[str, np.ndarray], compression: str = "ZIP") -> bytes:
    """The file's bytes; every channel [H, W] float16 or float32, all of one size."""
    names = sorted(channels)  # the file stores channels in alphabetical order
    arrays = [np.ascontiguousarray(channels[name]) for name in names]
    height, width = arrays[0].shape
    chlist = b"".join(
        name.encode() + b"\0" + struct.pack("<iB3xii", _TYPES[a.dtype], 0, 1, 1)
        for name, a in zip(names, arrays, strict=True)
    )
    window = struct.pack("<4i", 0, 0, width - 1, height - 1)
    header = b"".join(
        [
            b"\x76\x2f\x31\x01" + struct.pack("<I", 2),
            _attribute("channels", "chlist", chlist + b"\0"),
            _attribute("compression", "compression", bytes([{"NONE": 0, "ZIP": 3}[compression]])),
            _attribute("dataWindow", "box2i", window),
            _attribute("displayWindow", "box2i", window),
            _attribute("lineOrder", "lineOrder", b"\0"),
            _attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
            _attribute("screenWindowCenter", "v2f", struct.pack("<2f", 0.0, 0.0)),
            _attribute("screenWindowWidth", "float", struct.pack("<f", 1.0)),
            b"\0",
        ]
    )
    lines = 16 if compression == "ZIP" else 1
    chunks = []
    for first in range(0, height, lines):
        raw = b"".join(
            a[y].astype(a.dtype.newbyteorder("<")).tobytes()
            for y in range(first, min(first + lines, height))
            for a in arrays
        )
        data = _zip(raw) if compression == "ZIP" else raw
        chunks.append(struct.pack("<ii", first, len(data)) + data)
    offsets, position = [], len(header) + 8 * len(chunks)
    for chunk in chunks:
        offsets.append(position)
        position += len(chunk)
    return header + struct.pack(f"<{len(offsets)}Q", *offsets) + b"".join(chunks)


def _zip(raw: bytes) -> bytes:
    """Split even and odd bytes, store each byte as its difference to the previous + 128, deflate;
    kept raw when that is not smaller (as the library does)."""
    values = np.frombuffer(raw, dtype=np.uint8)
    shuffled = np.concatenate([values[0::2], values[1::2]]).astype(np.int16)
    shuffled[1:] = (np.diff(shuffled) + 128) & 0xFF
    packed = zlib.compress(shuffled.astype(np.uint8).tobytes())
    return packed if len(packed) < len(raw) else raw
