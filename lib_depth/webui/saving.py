"""Depth maps saved beside the outputs of a run with "Save depth map": `<output>-depth.png`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..io.depthmap import conditioning_to_png16
from ..io.files import create_new_file

log = logging.getLogger("sd-webui-depth2img")


def depth_map_path_for(saved_image: str | os.PathLike) -> Path:
    """`00012-1234.png` -> `00012-1234-depth.png`, beside the output, as the WebUI names files."""
    path = Path(saved_image)
    return path.with_name(f"{path.stem}-depth.png")


def depth_map_for_saved_image(p: Any, filename: str, size: tuple[int, int]) -> tuple[Path, Any] | None:
    """(path, 16-bit image) of the depth map to save beside an output the WebUI just saved, or
    None: the run did not ask for it, or the file is not one of its outputs (a grid, an image
    saved before hires fix). `size` is the output's (width, height)."""
    run = getattr(p, "depth2img", None)
    if run is None or not run.settings.save_depth or not run.used or not filename:
        return None
    folder = getattr(p, "outpath_samples", None)
    if not folder or "-before-highres-fix" in Path(filename).name:
        return None
    if not os.path.abspath(filename).startswith(os.path.abspath(folder) + os.sep):
        return None
    conditioning = run.used[-1]  # the last pass of this iteration: what the final image got
    index = min(int(getattr(p, "batch_index", 0) or 0), conditioning.shape[0] - 1)
    width, height = size
    return depth_map_path_for(filename), conditioning_to_png16(conditioning[index : index + 1], (height, width))[0]


def on_image_saved(params: Any) -> None:
    """script_callbacks.on_image_saved: write the depth map beside the output (16-bit)."""
    found = depth_map_for_saved_image(params.p, params.filename, params.image.size)
    if not found:
        return
    path, image = found
    try:
        written = create_new_file(path, lambda file: image.save(file, format="PNG"))  # never over a file
    except (OSError, ValueError) as error:
        log.warning("Depth2img: depth map not saved beside %s: %s", params.filename, error)
        return
    log.info("Depth2img: saved %s", written)
