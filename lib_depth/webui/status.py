"""The accordion's status line and the doctor's verdict on installed checkpoints.

Both look at every installed checkpoint often, so each file version (path, size, mtime) is read
once and remembered.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..models.doctor import DoctorRow, examine
from .checkpoints import cached_report, checkpoint_has_depth_weights
from .compat import unsupported_reason, uses_forge_backend
from .depth_model import is_depth_model, loaded_model, loaded_name


def doctor_rows(filenames: list[str]) -> list[DoctorRow]:
    """The doctor's rows for installed checkpoints, reading each file version once."""
    return [examine(Path(name), report=cached_report(name)) for name in filenames]


def installed_rows() -> list[DoctorRow]:
    """Doctor rows of every checkpoint in the WebUI's list."""
    from modules import sd_models

    return doctor_rows([info.filename for info in list(sd_models.checkpoints_list.values())])


def status_line(loaded_depth_model: str | None, rows: list[Any]) -> tuple[str, str]:
    """(css class, text): the loaded depth model, or which installed depth checkpoints to select
    and which need the doctor (`rows` from doctor_rows)."""
    if loaded_depth_model:
        return "depth2img-ok", f"Depth model loaded: {loaded_depth_model}"
    depth = [row for row in rows if row.kind.startswith("SD 2 depth")]
    text = "The loaded model is not a depth model: select a depth checkpoint (512-depth-ema) for Depth2img."
    usable = [Path(row.file).name for row in depth if row.ok]
    broken = [f"{Path(row.file).name}: {row.action}" for row in depth if not row.ok]
    if usable:
        text += f" Installed: {', '.join(usable)}."
    if broken:
        text += f" Needs attention: {'; '.join(broken)} (python -m lib_depth doctor)."
    if not depth:
        text += " None is installed: download it below, or put 512-depth-ema into the WebUI's checkpoint folder."
    return "depth2img-warn", text


def as_html(css: str, text: str) -> str:
    return f"<span class='{css}'>{html.escape(text)}</span>"


def model_pending_line(sd_model: Any) -> tuple[str, str] | None:
    """(css class, text) while Forge has loaded no model yet (it loads the selected checkpoint with
    the first generation, not at start-up) and the selected one is a depth checkpoint; else None."""
    if not uses_forge_backend():
        return None
    from .forge import pending_checkpoint

    filename = pending_checkpoint(sd_model)
    if not filename or not checkpoint_has_depth_weights(filename):
        return None
    return "depth2img-ok", f"Depth model selected: {Path(filename).name} (Forge loads it with the first generation)"


def status_html() -> str:
    """The accordion's line for the model the WebUI has loaded now."""
    reason = unsupported_reason()
    if reason:
        return as_html("depth2img-warn", reason)
    sd_model = loaded_model()
    if pending := model_pending_line(sd_model):
        return as_html(*pending)
    if is_depth_model(sd_model):
        return as_html(*status_line(loaded_name(sd_model) or "depth model", []))
    return as_html(*status_line(None, installed_rows()))
