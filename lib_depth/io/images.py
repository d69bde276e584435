"""Opening user images (PIL, numpy or a file) with errors that name the input.

Files are opened the way the WebUI v1.10.1 opens init images and uploads (`modules/images.py`
`read` -> `fix_image`): EXIF orientation applied (a phone photo stands upright), a PNG's
transparency key turned into alpha; a failure of either keeps the image as it is, as there.
In-memory PIL images are taken as given, like the WebUI's processing does.

One pixel limit everywhere (command line, Python API, UI, API): checked from the file's header
before any pixel is decoded. It is `max_pixels` where a caller passes one, else the
DEPTH2IMG_MAX_MEGAPIXELS environment variable, else 200 megapixels (the WebUI's "Maximum image
size" default), and never above Pillow's own decompression-bomb limit, which no Pillow caller
can pass (a WebUI has it too). Images between Pillow's warning threshold and the limit open
without the warning.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..validation import check_min_size

ImageSource = Union[Image.Image, np.ndarray, str, os.PathLike]

DEFAULT_MAX_MEGAPIXELS = 200.0  # the WebUI's img_max_size_mp default
MAX_MEGAPIXELS_VARIABLE = "DEPTH2IMG_MAX_MEGAPIXELS"
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def pillow_max_pixels() -> int | None:
    """Pillow's hard limit (its DecompressionBombError threshold), None when disabled."""
    return None if Image.MAX_IMAGE_PIXELS is None else 2 * int(Image.MAX_IMAGE_PIXELS)


def configured_max_pixels(max_pixels: int | None = None) -> int:
    """The limit asked for: the one given, else the environment's, else the default (uncapped).
    ValueError for a bad environment value."""
    if max_pixels is None:
        text = os.environ.get(MAX_MEGAPIXELS_VARIABLE, "").strip()
        try:
            megapixels = float(text) if text else DEFAULT_MAX_MEGAPIXELS
        except ValueError:
            raise ValueError(f"{MAX_MEGAPIXELS_VARIABLE}: expected a number of megapixels, got {text!r}") from None
        if not np.isfinite(megapixels) or megapixels <= 0:
            raise ValueError(f"{MAX_MEGAPIXELS_VARIABLE}: expected a positive number of megapixels, got {text!r}")
        max_pixels = int(megapixels * 1e6)
    if max_pixels < 1:
        raise ValueError(f"max_pixels: expected a positive number of pixels, got {max_pixels}")
    return max_pixels


def max_pixels_limit(max_pixels: int | None = None) -> int:
    """The pixel limit that applies: the configured one, capped at Pillow's hard limit."""
    configured, hard = configured_max_pixels(max_pixels), pillow_max_pixels()
    return configured if hard is None else min(configured, hard)


COMMAND_LINE_HINT = f"set {MAX_MEGAPIXELS_VARIABLE} or --max-megapixels to change it"


def limit_message(width: int, height: int, max_pixels: int | None = None, hint: str = COMMAND_LINE_HINT) -> str:
    """Why a size is refused, with the number that applied and where it comes from."""
    pixels = f"{width}x{height} ({width * height:,} pixels)"
    configured, limit = configured_max_pixels(max_pixels), max_pixels_limit(max_pixels)
    if limit < configured:
        return (
            f"{pixels} is over Pillow's decompression-bomb limit of {limit:,} pixels, which caps the configured "
            f"{configured:,} (Pillow's Image.MAX_IMAGE_PIXELS sets it)"
        )
    return f"{pixels} is over the image size limit of {limit:,} pixels ({hint})"


def check_pixels(
    width: int, height: int, name: str, max_pixels: int | None = None, hint: str = COMMAND_LINE_HINT
) -> None:
    if width * height > max_pixels_limit(max_pixels):
        raise ValueError(f"{name}: {limit_message(width, height, max_pixels, hint)}")


def open_limited(
    file: str | os.PathLike | BinaryIO, name: str, max_pixels: int | None = None, hint: str = COMMAND_LINE_HINT
) -> Image.Image:
    """Image.open with our limit checked from the header before decoding; ValueError if over.

    Pillow's warning between its two thresholds is silenced (our limit decides); its error above
    the hard limit becomes our message.
    """
    limit = max_pixels_limit(max_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(file)
        except Image.DecompressionBombError as error:
            raise ValueError(f"{name}: {_over_pillows_limit(str(error), max_pixels, hint)}") from None
    if image.width * image.height > limit:
        image.close()
        raise ValueError(f"{name}: {limit_message(image.width, image.height, max_pixels, hint)}")
    return image


WIDE_COLOUR_READ_AT_8_BITS = "depth2img: 16-bit colour read at 8 bits"


def is_wide_colour(image: Image.Image) -> bool:
    """A 16-bit-per-channel colour file, which Pillow can only decode to 8 bits per channel."""
    try:
        rawmode = image.tile[0][3]
    except (IndexError, TypeError):
        return False
    rawmode = rawmode[0] if isinstance(rawmode, tuple) else rawmode
    return isinstance(rawmode, str) and rawmode.startswith(("RGB;16", "RGBA;16", "RGBX;16", "CMYK;16"))


def _over_pillows_limit(pillow_message: str, max_pixels: int | None, hint: str) -> str:
    """Our message for Pillow's DecompressionBombError, with the limit that really applied."""
    found = re.search(r"\((\d+) pixels\)", pillow_message)
    size = f"{int(found.group(1)):,} pixels" if found else "the image"
    configured, hard = configured_max_pixels(max_pixels), pillow_max_pixels() or 0
    if configured <= hard:
        return f"{size} is over the image size limit of {configured:,} pixels ({hint})"
    return (
        f"{size} is over Pillow's decompression-bomb limit of {hard:,} pixels, which caps the configured "
        f"{configured:,} (Pillow's Image.MAX_IMAGE_PIXELS sets it)"
    )


def fix_image(image: Image.Image) -> Image.Image:
    """What the WebUI does to every image it reads: EXIF orientation, PNG transparency key.
    Either step failing leaves the image as it was (as `modules/images.py` fix_image does)."""
    try:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGB", "P") and isinstance(image.info.get("transparency"), bytes):
            image = image.convert("RGBA")
    except Exception:  # a broken EXIF block must not lose the image; the WebUI ignores it too
        pass
    return image


def open_image(source: ImageSource, name: str = "image", *, max_pixels: int | None = None) -> Image.Image:
    """Return a loaded PIL image from a PIL image or a path; ValueError if it is not an image or
    is over the pixel limit (checked before decoding)."""
    if isinstance(source, Image.Image):
        image = source
        check_pixels(image.width, image.height, name, max_pixels)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"{name}: file not found: {path}")
        try:
            with open_limited(path, f"{name} {path.name}", max_pixels) as opened, warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                wide_colour = is_wide_colour(opened)
                opened.load()
                image = fix_image(opened)
                image = image.copy() if image is opened else image
                if image.mode == "P":
                    image = image.convert("RGBA")
                if wide_colour:
                    image.info[WIDE_COLOUR_READ_AT_8_BITS] = True
        except (UnidentifiedImageError, OSError, SyntaxError, EOFError) as error:
            raise ValueError(f"{name}: {path} is not a readable image ({error})") from None
        name = f"{name} {path.name}"
    else:
        raise ValueError(f"{name}: expected a PIL image, numpy array or file path, got {type(source).__name__}")
    check_min_size(image.height, image.width, name)
    return image


def image_to_tensor(source: ImageSource | list, name: str = "image", *, max_pixels: int | None = None) -> torch.Tensor:
    """One image or a list of same-size images -> float32 [B, 3, H, W] in [-1, 1].

    Images: PIL (8-bit, 16-bit grey, 32-bit int, float), file paths, numpy arrays (uint8, uint16,
    or float in 0..1). 16-bit and float photos keep their full range (not clipped to 8 bits).
    """
    if isinstance(source, (list, tuple)) and not source:
        raise ValueError(f"{name}: expected an image or a non-empty list of images, got an empty list")
    sources = list(source) if isinstance(source, (list, tuple)) else [source]
    arrays = []
    for index, item in enumerate(sources):
        label = name if len(sources) == 1 else f"{name} {index + 1}"
        if isinstance(item, np.ndarray):
            array = _array_to_rgb255(item, label)
            check_min_size(array.shape[0], array.shape[1], label)
            check_pixels(array.shape[1], array.shape[0], label, max_pixels)
        else:
            array = photo_to_rgb255(open_image(item, label, max_pixels=max_pixels), label)
        arrays.append(array)
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) != 1:
        found = ", ".join(f"{w}x{h}" for h, w in sorted(sizes))
        raise ValueError(f"{name}: images in one batch must have the same size, got {found}")
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return batch / 127.5 - 1.0


def photo_to_rgb255(image: Image.Image, name: str = "image") -> np.ndarray:
    """A PIL photo -> float32 [H, W, 3] in 0..255, at the image's own bit depth.

    Pillow's convert("RGB") clips 16-bit grey to 255 (a 16-bit photo would be nearly all white),
    so wide modes are scaled here: I;16 by 65535, 32-bit "I" (older Pillow's 16-bit PNGs) by
    65535 when it fits, float "F" as 0..1 when it fits, else each by its own maximum.
    """
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
        low, high = float(values.min()), float(values.max())
        if mode == "F" and low >= 0 and high <= 1:
            unit = values
        elif low >= 0 and high <= 65535:
            unit = values / 65535.0
        else:
            unit = (values - low) / ((high - low) or 1.0)
        return np.repeat((unit * 255.0).astype(np.float32)[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def _array_to_rgb255(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(f"{name}: expected an array of shape [H, W] or [H, W, 1|3|4], got {array.shape}")
    if array.ndim == 2:
        array = array[..., None]
    array = array[..., :3] if array.shape[2] != 1 else np.repeat(array, 3, axis=2)
    if array.dtype == np.uint8:
        return array.astype(np.float32)
    if array.dtype == np.uint16:
        return (array.astype(np.float64) * (255.0 / 65535.0)).astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(f"{name}: contains NaN or infinite values")
        if array.size and (array.min() < 0 or array.max() > 1):
            raise ValueError(f"{name}: a float array must hold values in 0..1, got {array.min():g}..{array.max():g}")
        return (array.astype(np.float64) * 255.0).astype(np.float32)
    raise ValueError(f"{name}: expected a uint8, uint16 or float (0..1) array, got {array.dtype}")
