"""Make the command line work inside a WebUI install without PYTHONPATH.

The extension lives in `<webui>/extensions/<name>/`; the WebUI's copy of Stability's `ldm` lives
in `<webui>/repositories/stable-diffusion-stability-ai/`, which only the WebUI's own start-up puts
on sys.path. The command line (run as `depth2img-cli.py` or `python -m lib_depth`) puts it there
too, first, as the WebUI does, so `depth` and `convert` use the WebUI's ldm. Imports nothing heavy.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

WEBUI_LDM_FOLDER = Path("repositories") / "stable-diffusion-stability-ai"


def webui_root_of(extension_folder: str | os.PathLike) -> Path | None:
    """The WebUI folder when `extension_folder` is `<webui>/extensions/<name>`, else None."""
    folder = Path(extension_folder).resolve()
    if folder.parent.name == "extensions" and (folder.parent.parent / WEBUI_LDM_FOLDER / "ldm").is_dir():
        return folder.parent.parent
    return None


def add_import_paths(extension_folder: str | os.PathLike) -> list[str]:
    """Put the extension (for lib_depth) and, inside a WebUI, its ldm repository on sys.path;
    returns what was added."""
    added = []
    folder = str(Path(extension_folder).resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
        added.append(folder)
    root = webui_root_of(folder)
    if root is not None:
        repository = str(root / WEBUI_LDM_FOLDER)
        if repository not in sys.path:
            sys.path.insert(1, repository)
            added.append(repository)
    return added
