"""Depth map files of any kind a user brings: PNG/JPEG/WebP (8 and 16-bit), TIFF (16-bit, 32-bit
float), OpenEXR (half, float) and .npy, told apart by their first bytes, never by their name.

Every reader checks the pixel limit of images.py from the file's header before it decodes a pixel,
and every failure is a ValueError that names the file: a truncated, empty, 3-D or oversized file is
one line for the user, never a traceback.
"""

from __future__ import annotations

import io
import mmap
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..validation import check_min_size
from .exr import MAGIC as EXR_MAGIC
from .exr import pick_channel, read_exr, read_header
from .images import COMMAND_LINE_HINT, check_pixels, fix_image, is_wide_colour, open_limited

NPY_MAGIC = b"\x93NUMPY"
DEPTH_FILE_EXTENSIONS = (".exr", ".npy")  # beyond the image formats Pillow opens
# what the accordion's file picker offers (the bytes decide the format; this only filters the dialog)
DEPTH_MAP_FILE_TYPES = (".png", ".tif", ".tiff", ".exr", ".npy", ".jpg", ".jpeg", ".webp")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as PIL's convert("L")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_MODE_NAMES = {"L": "8-bit grey", "I": "32-bit integer", "F": "32-bit float", "1": "1-bit"}
_MAX_NPY_HEADER = 1 << 16
_MAX_PROBE = 1 << 20  # header bytes read to check a map while pairing
_EXPECTED = "expected a depth map: PNG, TIFF, OpenEXR, .npy, or another image"

FileSource = Union[bytes, bytearray, memoryview, str, os.PathLike]


@dataclass(frozen=True)
class DepthMap:
    """A decoded depth map file: its values as stored (floats as they are, 8/16-bit scaled to 0..1)
    and what was read ("OpenEXR ZIP, float, channel Z"), for the status line."""

    values: np.ndarray  # float32 (or float64) [H, W]
    description: str

    @property
    def width(self) -> int:
        return int(self.values.shape[1])

    @property
    def height(self) -> int:
        return int(self.values.shape[0])


def is_depth_file_bytes(data: bytes | memoryview) -> bool:
    """Whether these bytes are a format only this module reads (OpenEXR, .npy), not an image."""
    head = bytes(data[:8])
    return head.startswith(EXR_MAGIC) or head.startswith(NPY_MAGIC)


def read_depth_file(
    source: FileSource, name: str = "depth map", max_pixels: int | None = None, hint: str = COMMAND_LINE_HINT
) -> DepthMap:
    """Read a depth map from a path or from a file's bytes; ValueError naming `name` on failure.
    `hint` says where the pixel limit is set (the command line's flag, or the WebUI's setting)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = f"{name} {path.name}" if path.name not in name else name
        if not path.is_file():
            raise ValueError(f"{name}: file not found: {path}")
        failure = None
        try:
            with open(path, "rb") as file:
                if os.fstat(file.fileno()).st_size == 0:
                    raise ValueError(f"{name}: the file is empty ({_EXPECTED})")
                with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:  # pages read as needed
                    if not is_depth_file_bytes(mapped[:8]):
                        return _read_image(path, name, max_pixels, hint)
                    view = memoryview(mapped)
                    try:
                        return _read_raw(view, name, max_pixels, hint)
                    except ValueError as error:
                        failure = str(error)  # raised below, once no view of the mapping is left
                    finally:
                        view.release()
        except OSError as error:
            raise ValueError(f"{name}: cannot be read ({error.strerror or error})") from None
        raise ValueError(failure)
    data = memoryview(source)
    if not len(data):
        raise ValueError(f"{name}: the file is empty ({_EXPECTED})")
    if is_depth_file_bytes(data):
        return _read_raw(data, name, max_pixels, hint)
    return _read_image(io.BytesIO(bytes(data)), name, max_pixels, hint)


def probe_depth_file(path: Path) -> None:
    """Check a depth map file's header only (pairing a folder of maps); ValueError says why it is
    unusable. The pixels are decoded later, when the map is used."""
    name = path.name
    try:
        with open(path, "rb") as file:
            head = file.read(_MAX_PROBE)
    except OSError as error:
        raise ValueError(f"{name}: cannot be read ({error.strerror or error})") from None
    if not head:
        raise ValueError(f"{name}: the file is empty")
    if head.startswith(EXR_MAGIC):
        pick_channel(read_header(memoryview(head), name), name)
    elif head.startswith(NPY_MAGIC):
        _npy_header(memoryview(head), name)
    else:
        try:
            with open_limited(path, name) as image:
                image.size  # noqa: B018 - the header is parsed on open; size proves it
        except (UnidentifiedImageError, OSError, SyntaxError, EOFError) as error:
            raise ValueError(f"{name}: not a readable image ({type(error).__name__}: {error})") from None


def _read_raw(data: memoryview, name: str, max_pixels: int | None, hint: str) -> DepthMap:
    if bytes(data[:4]) == EXR_MAGIC:
        exr = read_exr(data, name, max_pixels, hint)
        values, description = exr.values, exr.description
    else:
        values, description = _read_npy(data, name, max_pixels, hint)
    check_min_size(values.shape[0], values.shape[1], name)
    return DepthMap(np.array(values, copy=True), description)  # owned and writable, whatever backed it


def _read_npy(data: memoryview, name: str, max_pixels: int | None, hint: str) -> tuple[np.ndarray, str]:
    """A 2-D numeric .npy array (or one with a single channel); no pickles, header checked first."""
    (height, width), fortran_order, dtype, start = _npy_header(data, name)
    check_pixels(width, height, name, max_pixels, hint)
    size = height * width * dtype.itemsize
    if start + size > len(data):
        raise ValueError(f"{name}: a truncated .npy file ({len(data) - start:,} of {size:,} bytes of data)")
    array = np.frombuffer(data[start : start + size], dtype=dtype).reshape(
        (height, width) if not fortran_order else (width, height)
    )
    array = array.T if fortran_order else array
    values = array.astype(np.float64 if dtype.kind in "ui" and dtype.itemsize > 2 else np.float32)
    return values, f".npy {dtype.name}"


def _npy_header(data: memoryview, name: str) -> tuple[tuple[int, int], bool, np.dtype, int]:
    """((height, width), Fortran order, dtype, where the data starts) of a .npy depth map."""
    stream = io.BytesIO(bytes(data[: _MAX_NPY_HEADER + 16]))
    try:
        version = np.lib.format.read_magic(stream)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = reader(stream)
    except (ValueError, SyntaxError, EOFError, TypeError, KeyError) as error:
        raise ValueError(f"{name}: a damaged .npy header ({str(error).splitlines()[0][:120]})") from None
    if dtype.hasobject or dtype.kind not in "uif":
        raise ValueError(f"{name}: a .npy array of {dtype}; a depth map holds integers or floats")
    squeezed = tuple(side for side in shape if side != 1) if len(shape) == 3 else shape
    if len(shape) == 3 and len(squeezed) == 2 and 1 in (shape[0], shape[2]):
        pass  # [1, H, W] or [H, W, 1]: one channel
    elif len(shape) != 2:
        raise ValueError(f"{name}: a .npy array of shape {shape}; a depth map is 2-D [height, width]")
    else:
        squeezed = shape
    height, width = squeezed
    if not height or not width:
        raise ValueError(f"{name}: an empty .npy array (shape {shape})")
    return (height, width), fortran_order, dtype, stream.tell()


def _read_image(file: Path | io.BytesIO, name: str, max_pixels: int | None, hint: str) -> DepthMap:
    """Formats Pillow opens (PNG, TIFF, JPEG, WebP ...), oriented as the WebUI orients uploads."""
    try:
        with open_limited(file, name, max_pixels, hint) as opened, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our limit decided in open_limited
            kind = f"{opened.format or 'image'} {describe_mode(opened.mode, opened.format)}"
            if is_wide_colour(opened):
                kind += " (16-bit colour read at 8 bits)"
            opened.load()
            image = fix_image(opened)
            image = image.copy() if image is opened else image
    except UnidentifiedImageError:
        raise ValueError(f"{name}: {_where(file)}not a readable image ({_EXPECTED})") from None
    except (OSError, SyntaxError, EOFError) as error:
        detail = "truncated or damaged" if "truncat" in str(error).lower() else str(error)
        raise ValueError(f"{name}: {_where(file)}not a readable image ({detail})") from None
    check_min_size(image.height, image.width, name)
    return DepthMap(image_to_depth_values(image, name), kind)


def describe_mode(mode: str, file_format: str | None = None) -> str:
    """"16-bit grey", "32-bit float" ... for the status line (older Pillow opens 16-bit PNGs as "I")."""
    if mode in _SIXTEEN_BIT_MODES or (mode == "I" and file_format == "PNG"):
        return "16-bit grey"
    return _MODE_NAMES.get(mode, mode)


def _where(file: Path | io.BytesIO) -> str:
    return f"{file} is " if isinstance(file, Path) else ""


def image_to_depth_values(image: Image.Image, name: str) -> np.ndarray:
    """A PIL image's depth values: 8/16-bit scaled to 0..1, float as stored, colour by luma."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        return np.asarray(image, dtype=np.float32) / 65535.0
    if mode == "I":  # 16-bit PNGs open as "I" in older Pillow; other 32-bit data is scaled by its max
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if values.min() >= 0 and values.max() <= 65535 else float(np.abs(values).max() or 1.0)
        return (values / peak).astype(np.float32)
    if mode == "F":
        return np.array(image, dtype=np.float32)  # a copy: torch warns about Pillow's read-only buffer
    if mode in ("L", "1"):
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    if mode not in ("RGB", "RGBA", "LA", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "La", "PA"):
        raise ValueError(f"{name}: unsupported image mode {mode!r}")
    if mode in ("LA", "La"):
        return np.asarray(image.getchannel(0), dtype=np.float32) / 255.0
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return rgb @ _LUMA


def array_to_depth_values(array: np.ndarray, name: str) -> np.ndarray:
    """A numpy map's values: uint8/uint16 scaled to 0..1, float as given, colour by luma."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(f"{name}: expected an array [H, W] or [H, W, 1|3|4], got shape {array.shape}")
    if array.ndim == 3:
        array = array[..., 0] if array.shape[2] == 1 else array[..., :3]
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        values = array.astype(np.float32) / 65535.0
    elif np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
    else:
        raise ValueError(f"{name}: unsupported array dtype {array.dtype}; use uint8, uint16 or float")
    if values.ndim == 3:
        values = values @ _LUMA
    check_min_size(values.shape[0], values.shape[1], name)
    return values
