"""The script's arguments: positional from the UI and the API, or by name as one dict (API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from PIL import Image

from ..fields import ARG_NAMES, BY_NAME, FIELDS
from ..io.images import fix_image
from ..settings import DepthSettings
from ..validation import quote_names
from .payload import PayloadError, decode_image


@dataclass
class ScriptRequest:
    settings: DepthSettings
    # the uploaded depth map or the reference photo (txt2img); over the API also a list, one per init image
    image: Image.Image | list[Image.Image] | None = None


MAX_MAPS = 256  # depth maps in one request
BATCH_TAB_FIELDS = tuple(f for f in FIELDS if not f.api)  # the Batch tab's own: server folders, and what to do in them


def refuse_batch_tab_fields(values: Mapping[str, Any], prefix: str, *, even_default: bool = False) -> None:
    """Over the API no field names a server folder, nor says what to do in one. The script's slots
    come filled with the UI's defaults, so there only another value counts; a request body naming
    the field at all is refused (`even_default`)."""
    for f in BATCH_TAB_FIELDS:
        if f.name in values and (even_default or values[f.name] != f.default):
            if f.kind == "text":
                why = "only the WebUI's Batch tab reads a server folder"
            else:
                why = "an option of the WebUI's Batch tab's depth maps folder, which means nothing over the API"
            raise PayloadError(
                f"{prefix}{f.name}: {why}; over the API send the depth maps as base64 in image (a list: one per "
                "init image), or none to estimate them"
            )


def parse_script_args(args: Sequence[Any], *, is_api: bool = False, **limits: int) -> ScriptRequest:
    """Read the script's slots. A dict in the first slot means arguments by name.

    Raises PayloadError naming the field for anything invalid. `limits` go to decode_image.
    `is_api`: a field of the Batch tab (fields.py `api=False`: a server folder) is refused.
    """
    if args and isinstance(args[0], dict):
        values = dict(args[0])
        unknown = sorted(set(values) - set(ARG_NAMES))
        if unknown:
            raise PayloadError(f"depth2img: unknown argument(s) {quote_names(unknown)}; known: {', '.join(ARG_NAMES)}")
    else:
        if len(args) > len(ARG_NAMES):
            raise PayloadError(f"depth2img: expected at most {len(ARG_NAMES)} arguments, got {len(args)}")
        values = dict(zip(ARG_NAMES, args, strict=False))  # fewer slots: the rest take defaults
    image = values.pop("image", None)  # the one field that is not a setting (fields.py)
    # a value in words ("auto (the estimator's size)") or typed into a dropdown of numbers: the setting
    values = {name: BY_NAME[name].from_ui(value) for name, value in values.items() if value is not None}
    if is_api:
        refuse_batch_tab_fields(values, "depth2img: ")
    try:
        settings = DepthSettings(**values)
    except ValueError as error:
        raise PayloadError(f"depth2img: {error}") from None
    decoded: Image.Image | list[Image.Image] | None = None
    if isinstance(image, (list, tuple)):
        if len(image) > MAX_MAPS:
            raise PayloadError(f"depth2img image: {len(image)} images is over the limit of {MAX_MAPS}")
        decoded = [decode_image(item, f"depth2img image {n + 1}", **limits) for n, item in enumerate(image)]
    elif isinstance(image, Image.Image):  # the accordion's upload: oriented as the WebUI orients init images
        decoded = decode_image(fix_image(image), "depth2img image", **limits)
    elif image is not None and image != "":
        decoded = decode_image(image, "depth2img image", **limits)
    return ScriptRequest(settings, decoded or None)


def read_script_args(
    args: Sequence[Any], *, is_api: bool = False, **limits: int
) -> tuple[ScriptRequest | None, str | None]:
    """Like parse_script_args, but for the script's process(): (request, None) when valid;
    (None, message) when invalid and enabled, so the generation can stop with that message;
    (None, None) when the script is not enabled at all."""
    try:
        request = parse_script_args(args, is_api=is_api, **limits)
    except PayloadError as error:
        by_name = bool(args) and isinstance(args[0], dict)
        enabled = args[0].get("enabled", True) if by_name else bool(args and args[0])
        return None, (str(error) if enabled is not False else None)
    return (request, None) if request.settings.enabled else (None, None)
