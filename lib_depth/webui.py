"""WebUI-facing glue that needs no WebUI to test: every WebUI object arrives as an argument,
and WebUI modules are imported lazily inside the functions that read them."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from .checkpoint import CheckpointReport, inspect_checkpoint
from .conditioning import depth_to_conditioning
from .midas import offline_load_model

_reports: dict[tuple[str, int, int], CheckpointReport] = {}


def cached_report(filename: str | os.PathLike) -> CheckpointReport | None:
    """inspect_checkpoint, remembered per file version (path, size, mtime): the accordion's status
    line and the status route look at every installed checkpoint, often."""
    try:
        stat = os.stat(filename)
    except OSError:
        return None
    key = (os.fspath(filename), stat.st_size, stat.st_mtime_ns)
    if key not in _reports:
        _reports[key] = inspect_checkpoint(Path(filename))
    return _reports[key]


def checkpoint_has_depth_weights(filename: str | os.PathLike) -> bool | None:
    """Whether a checkpoint file holds MiDaS weights (header read, cached per file version)."""
    report = cached_report(filename)
    if report is None or not (report.readable or report.is_depth):
        return None
    return report.has_depth_weights


def doctor_rows(filenames: list[str]) -> list[Any]:
    """The doctor's rows for installed checkpoints, reading each file version once."""
    from .doctor import examine

    return [examine(Path(name), report=cached_report(name)) for name in filenames]


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


# --- generation glue ---------------------------------------------------------------------------

DEPTH_MODEL_CLASS = "LatentDepth2ImageDiffusion"


def is_depth_model(sd_model: Any) -> bool:
    return type(sd_model).__name__ == DEPTH_MODEL_CLASS and getattr(sd_model, "depth_model", None) is not None


def checkpoint_key(sd_model: Any) -> str:
    info = getattr(sd_model, "sd_checkpoint_info", None)
    return str(getattr(info, "sha256", None) or getattr(info, "filename", None) or id(sd_model))


@contextlib.contextmanager
def placed(module: Any, *, device: Any, offload: bool, managed: bool) -> Iterator[None]:
    """Put the depth model on `device` for a forward, and back on the CPU after it if asked.

    `managed` (--lowvram/--medvram) leaves placement to the WebUI's own hooks.
    """
    if not managed:
        module.to(device)
    try:
        yield
    finally:
        if offload and not managed:
            module.to("cpu")


def prepare_init_image(image: Any, p: Any) -> Any:
    """An init image as StableDiffusionProcessingImg2Img.init prepares it, before any fill, for a
    processing object whose "only masked" crop is already chosen (p.paste_to)."""
    paste_to = getattr(p, "paste_to", None)
    region = None
    if paste_to:
        x, y, w, h = paste_to
        region = (x, y, x + w, y + h)
    return prepare_request_image(image, width=p.width, height=p.height, resize_mode=p.resize_mode, region=region)


def depth_map_path_for(saved_image: str | os.PathLike) -> Path:
    """`00012-1234.png` -> `00012-1234-depth.png`, beside the output, as the WebUI names files."""
    path = Path(saved_image)
    return path.with_name(f"{path.stem}-depth.png")


IMG2IMG_TABS = ("img2img", "sketch", "inpaint", "inpaint sketch", "inpaint upload", "batch")


def tab_image_and_mask(tab: int, values: dict[str, Any]) -> tuple[Any, Any]:
    """The init image and mask an img2img sub-tab sends, as modules/img2img.py picks them
    (v1.10.1: 0 img2img, 1 sketch, 2 inpaint, 3 inpaint sketch, 4 inpaint upload). The inpaint
    sketch's mask is drawn strokes, which the preview cannot see: it previews the whole picture."""
    if tab == 1:
        return values.get("sketch"), None
    if tab == 2 and isinstance(values.get("inpaint"), dict):
        from modules import processing

        mask = values["inpaint"].get("mask")
        return values["inpaint"].get("image"), processing.create_binary_mask(mask) if mask is not None else None
    if tab == 3:
        return values.get("inpaint_sketch"), None
    if tab == 4:
        return values.get("inpaint_base"), values.get("inpaint_mask")
    return values.get("init"), None


def prepare_request_image(
    image: Any,
    *,
    width: int,
    height: int,
    resize_mode: int = 0,
    mask: Any = None,
    only_masked: bool = False,
    padding: int = 32,
    mask_blur: int = 0,
    invert_mask: bool = False,
    fill: bool = False,
    region: tuple[int, int, int, int] | None = None,
) -> Any:
    """An init image as StableDiffusionProcessingImg2Img.init prepares it (modules/processing.py,
    v1.10.1): flatten; with "Inpaint area: Only masked" the crop around the (inverted, blurred)
    mask resized with "resize and fill", else the resize mode; `fill` smears the masked area
    like "Masked content: fill" (masking.fill). `region` (x1, y1, x2, y2) is a crop the WebUI
    already chose; otherwise it is found from the mask as the WebUI finds it."""
    import cv2
    import numpy as np
    from modules import images, masking
    from modules.shared import opts
    from PIL import Image, ImageOps

    image = images.flatten(image, opts.img2img_background_color)
    if mask is not None:
        mask = mask.convert("L")
        if invert_mask:
            mask = ImageOps.invert(mask)
        if mask_blur > 0:
            kernel = 2 * int(2.5 * mask_blur + 0.5) + 1
            mask = Image.fromarray(cv2.GaussianBlur(np.array(mask), (kernel, kernel), mask_blur))
    if region is None and mask is not None and only_masked:
        find_region = getattr(masking, "get_crop_region_v2", None) or masking.get_crop_region
        region = find_region(mask, padding)
        if region:
            region = masking.expand_crop_region(region, width, height, mask.width, mask.height)
    if region:
        image = images.resize_image(2, image.crop(region), width, height)
        if mask is not None:
            mask = images.resize_image(2, mask.crop(region), width, height)
    elif resize_mode != 3:
        image = images.resize_image(resize_mode, image, width, height)
        if mask is not None:
            mask = images.resize_image(resize_mode, mask, width, height)
    if fill and mask is not None:
        image = masking.fill(image, mask).convert("RGB")
    return image


def conditioning_for_request(
    run: Any,
    *,
    init_image: Any = None,
    width: int,
    height: int,
    resize_mode: int = 0,
    **inpaint: Any,
) -> Any:
    """The conditioning a generation of `width` x `height` would get, for preview and the API:
    estimated from `init_image` prepared as the WebUI prepares it (`inpaint`: mask, only_masked,
    padding, mask_blur, invert_mask, fill; see prepare_request_image), or from the run's user
    image. Uses the run's estimator, so its cache serves the generation that follows."""
    import types

    from .images import image_to_tensor

    if width % 8 or height % 8 or width < 64 or height < 64:
        raise ValueError(f"width/height: {width}x{height} must be multiples of 8, at least 64")
    latent = (height // 8, width // 8)
    if run.settings.source == "estimate":
        if init_image is None:
            raise ValueError("image: an init image is needed to estimate depth from")
        if run.settings.masked_area == "original":
            inpaint["fill"] = False
        image = prepare_request_image(init_image, width=width, height=height, resize_mode=resize_mode, **inpaint)
        depth = run.estimate_depth(image_to_tensor(image.convert("RGB"), name="image"))
        return depth_to_conditioning(depth, latent, run.settings, image_size=(height, width))
    p = types.SimpleNamespace(width=width, height=height, resize_mode=resize_mode)
    return run.txt2img_conditioning(p, torch.zeros(1, 4, *latent))


def depth_map_for_saved_image(p: Any, filename: str, size: tuple[int, int]) -> tuple[Path, Any] | None:
    """(path, 16-bit image) of the depth map to save beside an output the WebUI just saved, or
    None: the run did not ask for it, or the file is not one of its outputs (a grid, an image
    saved before hires fix). `size` is the output's (width, height)."""
    from .depthmap import conditioning_to_png16

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


def status_line(loaded_depth_model: str | None, rows: list[Any]) -> tuple[str, str]:
    """(css class, text) of the accordion's status: the loaded depth model, or which installed
    depth checkpoints to select and which need the doctor (`rows` from doctor_rows)."""
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
        text += " None is installed; put 512-depth-ema.safetensors into models/Stable-diffusion."
    return "depth2img-warn", text
