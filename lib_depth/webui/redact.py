"""What a client may see of the server's folders: files named relative to the WebUI's folders
(`models/depth2img/depth_anything_v2_vits.pth`), never by their absolute path.

Every answer of the extension's routes, every script-argument error and the download offers pass
their text through `scrub`; the absolute paths stay in the server log, where an admin needs them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("sd-webui-depth2img")

EXTENSION_FOLDER = Path(__file__).resolve().parents[2]


def server_folders() -> list[tuple[str, str]]:
    """(absolute folder, how a client sees it), the longest first so the nearest folder names a file."""
    from modules import paths, shared

    named = [
        (getattr(paths, "models_path", None), "models"),
        (getattr(shared.cmd_opts, "ckpt_dir", None), "(--ckpt-dir)"),
        (str(EXTENSION_FOLDER), "(the extension's folder)"),
        (getattr(paths, "data_path", None), ""),  # relative to the WebUI's folder: outputs/..., extensions/...
        (getattr(paths, "script_path", None), ""),
    ]
    folders: dict[str, str] = {}
    for folder, shown in named:
        if not folder:
            continue
        for variant in (os.path.abspath(folder), os.path.realpath(folder)):
            if len(Path(variant).parts) > 1:  # never a file system root: it would match every path
                folders.setdefault(variant.rstrip(os.sep), shown)
    return sorted(folders.items(), key=lambda item: len(item[0]), reverse=True)


def scrub(text: str) -> str:
    """`text` with every WebUI folder replaced by its relative name."""
    for folder, shown in server_folders():
        if folder in text:
            text = text.replace(folder + os.sep, f"{shown}/" if shown else "")
            text = text.replace(folder, shown or "the WebUI folder")
    return text


def shown_path(path: str | os.PathLike) -> str:
    """A server path as a client sees it: relative to a WebUI folder, else only its name."""
    text = scrub(str(path))
    return Path(path).name if os.path.isabs(text) else text


def scrub_answer(value: Any) -> Any:
    """Every string in a JSON-like answer scrubbed (dicts, lists and tuples walked)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: scrub_answer(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_answer(item) for item in value]
    return value


def client_message(message: str) -> str:
    """An error message for a client; the original, with its paths, goes to the server log."""
    shown = scrub(message)
    if shown != message:
        log.info("depth2img: %s", message)
    return shown
