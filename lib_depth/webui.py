"""WebUI-facing glue that needs no WebUI to test: every WebUI object arrives as an argument,
and WebUI modules are imported lazily inside the functions that read them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from .checkpoint import inspect_checkpoint
from .midas import offline_load_model

_depth_weights_by_file: dict[tuple[str, int, int], bool] = {}


def checkpoint_has_depth_weights(filename: str | os.PathLike) -> bool | None:
    """Whether a checkpoint file holds MiDaS weights (header read, cached per file version)."""
    try:
        stat = os.stat(filename)
    except OSError:
        return None
    key = (os.fspath(filename), stat.st_size, stat.st_mtime_ns)
    if key not in _depth_weights_by_file:
        report = inspect_checkpoint(Path(filename))
        _depth_weights_by_file[key] = report.has_depth_weights if report.readable or report.is_depth else None
    return _depth_weights_by_file[key]


def selected_checkpoint_has_depth_weights() -> bool | None:
    """For the checkpoint the WebUI is loading (sd_models.select_checkpoint); None if unknown."""
    try:
        from modules import sd_models

        info = sd_models.select_checkpoint()
    except Exception:  # no checkpoint selected yet, or a WebUI without that function
        return None
    filename = getattr(info, "filename", None)
    return checkpoint_has_depth_weights(filename) if filename else None


def install_offline_midas(midas_api: Any, has_depth_weights: Callable[[], bool | None]) -> Callable[[], None]:
    """Replace `midas_api.load_model` (ldm.modules.midas.api) so that building a depth model whose
    checkpoint holds the MiDaS weights reads no separate weights file and downloads nothing.

    Idempotent: installing again chains to the same function as the first install did, not to
    ourselves. Returns an undo that restores that function (if nobody replaced ours since).
    """
    current = midas_api.load_model
    previous = getattr(current, "depth2img_previous", current)
    # the WebUI keeps ldm's own loader as load_model_inner when it adds its downloader
    build_without_weights = getattr(midas_api, "load_model_inner", None) or previous
    replacement = offline_load_model(previous, build_without_weights, midas_api.ISL_PATHS, has_depth_weights)
    midas_api.load_model = replacement

    def undo() -> None:
        if midas_api.load_model is replacement:
            midas_api.load_model = previous

    return undo
