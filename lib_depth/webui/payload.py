"""Images that arrive over the API or from the UI: base64 or uploaded data only, bounded in size.

A string is decoded as base64 image data and nothing else: never opened as a server path and
never fetched as a URL. Sizes are checked before the pixels are decoded, against the one pixel
limit of lib_depth.images (configured, capped by Pillow's own hard limit; the message states the
number that applied). Decoded images get the WebUI's EXIF orientation and transparency fixes.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

from PIL import Image

from ..io.images import DEFAULT_MAX_MEGAPIXELS, check_pixels, fix_image, open_limited

DEFAULT_MAX_PIXELS = int(DEFAULT_MAX_MEGAPIXELS * 1e6)  # the engine's default: the WebUI's img_max_size_mp
_API_HINT = "the Depth2img maximum megapixels setting, else the WebUI's Maximum image size, sets it"
DEFAULT_MAX_BASE64_CHARS = 64 * 2**20  # 64 MiB of base64 text, about 48 MiB of file
_DATA_URL = re.compile(r"^data:image/[a-zA-Z0-9.+-]+;base64,", re.ASCII)
_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/=\s]*$", re.ASCII)
_PATH_LIKE = re.compile(r"^(~|\.{0,2}/|[A-Za-z]:[\\/])|\.(png|jpe?g|webp|bmp|gif|tiff?|exr)$", re.ASCII | re.IGNORECASE)
_NOT_BASE64 = "expected base64 image data (plain or a data:image/... URL); file paths and URLs are not accepted"


class PayloadError(ValueError):
    """Bad input from a client; the message names the field and is safe to show."""


def decode_image(
    value: object,
    field: str,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_base64_chars: int = DEFAULT_MAX_BASE64_CHARS,
) -> Image.Image:
    """A loaded PIL image from a PIL image or base64 text (optionally a data URL)."""
    if isinstance(value, Image.Image):
        image = value
    elif isinstance(value, str):
        image = _open_base64(value, field, max_pixels=max_pixels, max_base64_chars=max_base64_chars)
    else:
        raise PayloadError(f"{field}: expected base64 image data, got {type(value).__name__}")
    try:
        check_pixels(image.width, image.height, field, max_pixels, hint=_API_HINT)
    except ValueError as error:
        raise PayloadError(str(error)) from None
    return image


def check_requested_size(width: int, height: int, field: str, max_pixels: int | None = None) -> None:
    """A size a client asks for obeys the pixel limit of the images it may upload (PayloadError
    stating the limit and the setting that sets it)."""
    try:
        check_pixels(width, height, field, max_pixels or DEFAULT_MAX_PIXELS, hint=_API_HINT)
    except ValueError as error:
        raise PayloadError(str(error)) from None


def _open_base64(text: str, field: str, *, max_pixels: int, max_base64_chars: int) -> Image.Image:
    if len(text) > max_base64_chars:
        raise PayloadError(f"{field}: {len(text):,} characters of base64 is over the limit of {max_base64_chars:,}")
    text = _DATA_URL.sub("", text.strip(), count=1)
    if not text or not _BASE64_CHARS.match(text):
        raise PayloadError(
            f"{field}: expected base64 image data (plain or a data:image/... URL); file paths and URLs are not accepted"
        )
    try:
        data = base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        raise PayloadError(f"{field}: {_NOT_BASE64 if _PATH_LIKE.search(text) else 'not valid base64'}") from None
    try:
        try:
            image = open_limited(io.BytesIO(data), field, max_pixels, hint=_API_HINT)  # header only
        except ValueError as error:
            raise PayloadError(str(error)) from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our limit decided, above
            image.load()
        image = fix_image(image)  # EXIF orientation, transparency key: as the WebUI's own decoding
    except PayloadError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        if _PATH_LIKE.search(text):  # "/etc/passwd" is valid base64 text, but meant as a path
            raise PayloadError(f"{field}: {_NOT_BASE64}") from None
        kind = "truncated or damaged" if "truncated" in str(error).lower() else "not a readable image"
        raise PayloadError(f"{field}: {kind}") from None
    return image


def limits_from_options(max_megapixels: float = 0, webui_max_megapixels: float = 0, max_upload_mb: float = 0) -> dict:
    """decode_image's limits from settings: ours if set, else the WebUI's image size limit, else
    the engine's default (200 megapixels, the WebUI's default); the base64 text limit in MiB
    (0 = default). Pillow's decompression-bomb limit caps whichever applies."""
    megapixels = max_megapixels or webui_max_megapixels or DEFAULT_MAX_PIXELS / 1e6
    limits = {"max_pixels": int(megapixels * 1e6)}
    if max_upload_mb:
        limits["max_base64_chars"] = int(max_upload_mb * 2**20)
    return limits


def encode_png(image: Image.Image) -> str:
    """PNG bytes as base64 text (keeps 16-bit depth maps 16-bit)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
