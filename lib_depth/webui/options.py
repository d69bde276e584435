"""The extension's WebUI options (Settings -> Depth2img): one table, registered and read from it.

`read(key)` accepts only keys of the table, so an option that is read is always one the user can
set (tests/test_webui_options.py checks every `read(...)` in the glue against the table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

SECTION = ("depth2img", "Depth2img")


@dataclass(frozen=True)
class Option:
    key: str
    default: Any
    label: str
    widget: str | None = None  # "slider", "radio", "number" or None (the WebUI picks from the default)
    widget_args: dict[str, Any] = field(default_factory=dict)
    help: str = ""


OPTIONS: tuple[Option, ...] = (
    Option(
        "depth2img_cache_entries",
        16,
        "Depth cache size (images kept, 0 = off)",
        "slider",
        {"minimum": 0, "maximum": 256, "step": 1},
        "estimated depth maps kept in memory, so a preview and the generation after it estimate once",
    ),
    Option(
        "depth2img_device",
        "auto",
        "Depth estimation device",
        "radio",
        {"choices": ["auto", "cpu"]},
        "auto: where the WebUI runs models; cpu: saves GPU memory, slower (ignored under --lowvram/--medvram)",
    ),
    Option("depth2img_offload", False, "Move the depth model to the CPU after each estimate", help="frees GPU memory"),
    Option("depth2img_save_default", False, "Save depth maps next to outputs by default"),
    Option(
        "depth2img_max_megapixels",
        0.0,
        "Largest image accepted from uploads and the API, in megapixels (0 = the WebUI's Maximum image size, else 200)",
        "number",
        {"minimum": 0, "maximum": 1000, "step": 1},
        "images over it are refused from their header, before their pixels are decoded",
    ),
    Option(
        "depth2img_max_upload_mb",
        0.0,
        "Largest API upload, in MiB of base64 text (0 = 64)",
        "number",
        {"minimum": 0, "maximum": 4096, "step": 1},
        "requests over it are refused before decoding",
    ),
)

BY_KEY: dict[str, Option] = {option.key: option for option in OPTIONS}


def read(key: str) -> Any:
    """The option's current value (its default before the settings are loaded)."""
    from modules import shared

    return getattr(shared.opts, key, BY_KEY[key].default)


def register(onchange: Mapping[str, Callable[[], None]] | None = None) -> None:
    """on_ui_settings: add every option of the table to the Depth2img section. `onchange` {key: function}:
    what applies an option the moment it is set (the WebUI calls it from `opts.set`, modules/options.py)."""
    import gradio as gr
    from modules import shared

    onchange = onchange or {}
    widgets = {"slider": gr.Slider, "radio": gr.Radio, "number": gr.Number, None: None}
    for option in OPTIONS:
        info = shared.OptionInfo(
            option.default,
            option.label,
            widgets[option.widget],
            dict(option.widget_args) or None,
            onchange=onchange.get(option.key),
            section=SECTION,
        )
        shared.opts.add_option(option.key, info.info(option.help) if option.help else info)


def webui(key: str, default: Any) -> Any:
    """One of the WebUI's own options (not ours), with a default for versions that lack it."""
    from modules import shared

    return getattr(shared.opts, key, default)


def image_limits() -> dict[str, int]:
    """decode_image's limits from the settings."""
    from .payload import limits_from_options

    return limits_from_options(
        read("depth2img_max_megapixels"), webui("img_max_size_mp", 0), read("depth2img_max_upload_mb")
    )
