"""OpenEXR depth maps: one channel of a single-part file, read with numpy and zlib.

Why our own reader: the WebUI's OpenCV 4.11 decodes EXR only with OPENCV_IO_ENABLE_OPENEXR set,
a process-wide switch that is off by default for security (opencv issue 21326) and that we must
not flip for every other extension; the `openexr` package has no wheel for Python 3.10 from 3.5 on.
The codecs 3D tools write for depth are lossless and simple: NONE, RLE, ZIPS and ZIP (Blender's
default) are read here; PIZ, PXR24, B44, DWA and tiled files are handed to the `openexr` package when
it is installed (`pip install openexr`), after our own header check. Either way the header is
parsed here first and the file's cost is bounded before a byte of pixel data is decoded: the
pixel limit of images.py, every chunk's offset and size inside the file, every zlib stream
inflated to at most its known raw size.
"""

from __future__ import annotations

import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .images import COMMAND_LINE_HINT, check_pixels

MAGIC = b"\x76\x2f\x31\x01"
_TILED, _LONG_NAMES, _NON_IMAGE, _MULTIPART = 0x200, 0x400, 0x800, 0x1000
_COMPRESSIONS = ("NONE", "RLE", "ZIPS", "ZIP", "PIZ", "PXR24", "B44", "B44A", "DWAA", "DWAB", "HTJ2K256", "HTJ2K32")
_LINES_PER_CHUNK = {"NONE": 1, "RLE": 1, "ZIPS": 1, "ZIP": 16}
_PIXEL_TYPES = {0: ("uint", np.dtype("<u4")), 1: ("half", np.dtype("<f2")), 2: ("float", np.dtype("<f4"))}
PREFERRED_CHANNELS = ("Z", "Y", "R")  # depth, luminance, red: the order a multi-channel file is searched
_MAX_HEADER = 1 << 20  # attributes beyond a MiB are not a depth map's
_PACKAGE_HINT = "install the openexr package (pip install openexr) or save the EXR with ZIP compression"


@dataclass(frozen=True)
class ExrHeader:
    width: int
    height: int
    y_min: int
    channels: tuple[tuple[str, int, int, int], ...]  # (name, pixel type, x sampling, y sampling), file order
    compression: str
    tiled: bool
    end: int  # where the offset table starts


@dataclass(frozen=True)
class ExrMap:
    values: np.ndarray  # float32 [H, W] (uint channels as float64)
    description: str  # "OpenEXR ZIP, half, channel Z of R, G, B, Z"


def read_exr(
    data: bytes | memoryview, name: str, max_pixels: int | None = None, hint: str = COMMAND_LINE_HINT
) -> ExrMap:
    """One channel of an EXR file's bytes (see PREFERRED_CHANNELS); ValueError naming `name` for
    a damaged, unsupported or oversized file."""
    data = memoryview(data)
    header = read_header(data, name)
    check_pixels(header.width, header.height, name, max_pixels, hint)
    index = pick_channel(header, name)
    channel, pixel_type, _, _ = header.channels[index]
    kind, _ = _PIXEL_TYPES[pixel_type]
    if header.tiled or header.compression not in _LINES_PER_CHUNK:
        values = _read_with_package(bytes(data), name, channel, "tiled" if header.tiled else header.compression)
    else:
        values = _read_scanlines(data, header, index, name)
    names = ", ".join(c[0] for c in header.channels)
    used = f"channel {channel}" if len(header.channels) == 1 else f"channel {channel} of {names}"
    return ExrMap(values, f"OpenEXR {header.compression}, {kind}, {used}")


def read_header(data: memoryview, name: str) -> ExrHeader:
    """The attributes we need, checked; ValueError for anything we cannot read safely."""
    if bytes(data[:4]) != MAGIC:
        raise ValueError(f"{name}: not an OpenEXR file")
    if len(data) < 8:
        raise ValueError(f"{name}: truncated or damaged OpenEXR header (the file ends after {len(data)} bytes)")
    flags = struct.unpack_from("<I", data, 4)[0]
    if flags & 0xFF != 2:
        raise ValueError(f"{name}: OpenEXR version {flags & 0xFF} is not supported (2 is)")
    if flags & (_MULTIPART | _NON_IMAGE):
        raise ValueError(f"{name}: a multi-part or deep OpenEXR file; save the depth as a single-part scanline EXR")
    attributes: dict[str, tuple[str, memoryview]] = {}
    position = 8
    while True:
        attr_name, position = _string(data, position, name)
        if not attr_name:
            break
        attr_type, position = _string(data, position, name)
        if position + 4 > len(data):
            raise ValueError(f"{name}: truncated OpenEXR header")
        size = struct.unpack_from("<i", data, position)[0]
        position += 4
        if size < 0 or position + size > len(data) or position > _MAX_HEADER:
            raise ValueError(f"{name}: truncated or damaged OpenEXR header (attribute {attr_name!r})")
        attributes[attr_name] = (attr_type, data[position : position + size])
        position += size
    for required in ("channels", "compression", "dataWindow"):
        if required not in attributes:
            raise ValueError(f"{name}: OpenEXR header without {required!r}")
    window = attributes["dataWindow"][1]
    if len(window) != 16:
        raise ValueError(f"{name}: damaged OpenEXR dataWindow")
    x_min, y_min, x_max, y_max = struct.unpack("<4i", window)
    width, height = x_max - x_min + 1, y_max - y_min + 1
    if width <= 0 or height <= 0:
        raise ValueError(f"{name}: an empty OpenEXR image ({width}x{height})")
    code = attributes["compression"][1]
    if len(code) != 1 or code[0] >= len(_COMPRESSIONS):
        raise ValueError(f"{name}: unknown OpenEXR compression")
    return ExrHeader(
        width,
        height,
        y_min,
        _channel_list(attributes["channels"][1], name),
        _COMPRESSIONS[code[0]],
        bool(flags & _TILED),
        position,
    )


def pick_channel(header: ExrHeader, name: str) -> int:
    """The only channel, else Z, Y or R (also as the last part of a layer's name, "Depth.Z")."""
    names = [c[0] for c in header.channels]
    if len(names) == 1:
        found = 0
    else:
        found = next(
            (i for wanted in PREFERRED_CHANNELS for i, n in enumerate(names) if n == wanted),
            None,
        )
        if found is None:
            found = next(
                (i for wanted in PREFERRED_CHANNELS for i, n in enumerate(names) if n.rsplit(".", 1)[-1] == wanted),
                None,
            )
    if found is None:
        raise ValueError(
            f"{name}: OpenEXR channels {', '.join(names)}: none is Z, Y or R; save the depth in one of those, "
            "or as a single-channel file"
        )
    _, _, x_sampling, y_sampling = header.channels[found]
    if (x_sampling, y_sampling) != (1, 1):
        raise ValueError(f"{name}: OpenEXR channel {names[found]} is subsampled; save it at full resolution")
    return found


def _string(data: memoryview, position: int, name: str) -> tuple[str, int]:
    end = bytes(data[position : position + 256]).find(b"\x00")
    if end < 0:
        raise ValueError(f"{name}: truncated or damaged OpenEXR header")
    return bytes(data[position : position + end]).decode("latin-1"), position + end + 1


def _channel_list(raw: memoryview, name: str) -> tuple[tuple[str, int, int, int], ...]:
    channels = []
    position = 0
    while True:
        channel, position = _string(raw, position, name)
        if not channel:
            break
        if position + 16 > len(raw):
            raise ValueError(f"{name}: damaged OpenEXR channel list")
        pixel_type, _, x_sampling, y_sampling = struct.unpack_from("<iiii", raw, position)
        position += 16
        if pixel_type not in _PIXEL_TYPES or x_sampling < 1 or y_sampling < 1:
            raise ValueError(f"{name}: OpenEXR channel {channel!r} has an unknown pixel type or sampling")
        channels.append((channel, pixel_type, x_sampling, y_sampling))
    if not channels:
        raise ValueError(f"{name}: an OpenEXR file without channels")
    return tuple(channels)


def _read_scanlines(data: memoryview, header: ExrHeader, index: int, name: str) -> np.ndarray:
    if any((c[2], c[3]) != (1, 1) for c in header.channels):
        raise ValueError(f"{name}: OpenEXR channels are subsampled; {_PACKAGE_HINT}")
    width, height = header.width, header.height
    lines = _LINES_PER_CHUNK[header.compression]
    chunks = -(-height // lines)
    table_end = header.end + 8 * chunks
    if table_end > len(data):
        raise ValueError(f"{name}: truncated OpenEXR file (its offset table ends past the end of the file)")
    offsets = np.frombuffer(data[header.end : table_end], dtype="<u8")
    row_bytes = [width * _PIXEL_TYPES[c[1]][1].itemsize for c in header.channels]
    line_bytes = sum(row_bytes)
    start = sum(row_bytes[:index])
    dtype = _PIXEL_TYPES[header.channels[index][1]][1]
    out = np.empty((height, width), dtype=np.float64 if dtype.kind == "u" else np.float32)
    for chunk, offset in enumerate(offsets.tolist()):
        if offset + 8 > len(data):
            raise ValueError(f"{name}: truncated OpenEXR file (chunk {chunk + 1} of {chunks} is missing)")
        y, size = struct.unpack_from("<ii", data, offset)
        first = y - header.y_min
        rows = min(lines, height - first) if 0 <= first < height and first % lines == 0 else 0
        raw_size = rows * line_bytes
        if rows <= 0 or size < 0 or size > raw_size or offset + 8 + size > len(data):
            raise ValueError(f"{name}: truncated or damaged OpenEXR file (chunk {chunk + 1} of {chunks})")
        packed = data[offset + 8 : offset + 8 + size]
        raw = packed if size == raw_size else _decompress(packed, raw_size, header.compression, name, chunk)
        block = np.frombuffer(raw, dtype=np.uint8).reshape(rows, line_bytes)[:, start : start + row_bytes[index]]
        out[first : first + rows] = np.ascontiguousarray(block).view(dtype).reshape(rows, width)
    return out


def _decompress(packed: memoryview, raw_size: int, compression: str, name: str, chunk: int) -> bytes:
    if compression == "NONE":
        raise ValueError(f"{name}: damaged OpenEXR file (chunk {chunk + 1} has the wrong size)")
    if compression == "RLE":
        shuffled = _unrle(bytes(packed), raw_size, name)
    else:
        inflater = zlib.decompressobj()
        try:
            shuffled = inflater.decompress(packed, raw_size)  # never more than the chunk's raw size
        except zlib.error:
            raise ValueError(f"{name}: damaged OpenEXR file (chunk {chunk + 1} does not inflate)") from None
    if len(shuffled) != raw_size:
        raise ValueError(f"{name}: damaged OpenEXR file (chunk {chunk + 1} inflates to the wrong size)")
    # undo the predictor (each byte stored as a difference + 128) and the split into even/odd bytes
    values = np.frombuffer(shuffled, dtype=np.uint8).astype(np.int64)
    values[1:] -= 128
    values = (np.cumsum(values) & 0xFF).astype(np.uint8)
    half = (raw_size + 1) // 2
    out = np.empty(raw_size, dtype=np.uint8)
    out[0::2] = values[:half]
    out[1::2] = values[half:]
    return out.tobytes()


def _unrle(packed: bytes, raw_size: int, name: str) -> bytes:
    out = bytearray()
    position = 0
    while position < len(packed) and len(out) < raw_size:
        count = packed[position] - 256 if packed[position] > 127 else packed[position]
        if count < 0:
            out += packed[position + 1 : position + 1 - count]
            position += 1 - count
        else:
            if position + 1 >= len(packed):
                break
            out += packed[position + 1 : position + 2] * (count + 1)
            position += 2
    if len(out) != raw_size:
        raise ValueError(f"{name}: damaged OpenEXR file (an RLE chunk decodes to the wrong size)")
    return bytes(out)


def _read_with_package(data: bytes, name: str, channel: str, layout: str) -> np.ndarray:
    """PIZ, PXR24, B44, DWA and tiled files, through the openexr package (its own decoder, after our
    header check); a clear message when it is not installed."""
    try:
        import OpenEXR
    except ImportError:
        raise ValueError(
            f"{name}: OpenEXR {layout} files are read through the openexr package; {_PACKAGE_HINT}"
        ) from None
    with tempfile.TemporaryDirectory(prefix="depth2img-exr-") as folder:
        path = Path(folder) / "map.exr"
        path.write_bytes(data)
        try:
            with OpenEXR.File(str(path), separate_channels=True) as opened:
                pixels = opened.channels()[channel].pixels
        except Exception as error:  # the binding raises bare RuntimeErrors for damaged files
            raise ValueError(f"{name}: a damaged OpenEXR file ({str(error).splitlines()[0][:200]})") from None
    values = np.asarray(pixels)
    if values.ndim != 2:
        raise ValueError(f"{name}: OpenEXR channel {channel} is not a 2-D image")
    return values.astype(np.float64 if values.dtype.kind == "u" else np.float32)
