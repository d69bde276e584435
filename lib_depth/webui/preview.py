"""The depth a generation will get, before generating: the accordion's preview and the estimate
route. Both prepare the image with the WebUI's own functions (prepare.py), build the same
`Geometry` the generation builds, and ask a `DepthRun` for the conditioning: one path for all."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from ..depth.estimators import get_estimator
from ..fields import BY_NAME
from ..geometry import Geometry, generation_size
from ..io.depthmap import colorize, conditioning_to_previews
from ..io.images import image_to_tensor
from ..run import DepthInputError, DepthRun
from ..settings import DepthSettings
from . import compat
from .depth_model import CACHE, estimating_model, make_estimator
from .prepare import only_masked_region, prepare_image, prepared_mask
from .status import as_html, status_html


@dataclass(frozen=True)
class Inpaint:
    """The inpaint controls that shape the image the depth is estimated from."""

    mask: Any
    only_masked: bool = False
    padding: int = 32
    mask_blur: int = 0
    invert_mask: bool = False
    fill: bool = False  # "Masked content: fill", "latent noise", "latent nothing" (all but "original")


def request_conditioning(
    run: DepthRun,
    *,
    width: int,
    height: int,
    init_image: Any = None,
    resize_mode: int = 0,
    inpaint: Inpaint | None = None,
) -> tuple[torch.Tensor, Geometry]:
    """(conditioning [1, 1, h, w], geometry) a generation of `width` x `height` would get: the
    init image prepared as the WebUI prepares it and estimated, or the run's user map fitted."""
    width, height = generation_size(width, height)
    mask = region = None
    if inpaint is not None and inpaint.mask is not None:
        mask = prepared_mask(inpaint.mask, invert_mask=inpaint.invert_mask, mask_blur=inpaint.mask_blur)
        if inpaint.only_masked:
            region = only_masked_region(mask, padding=inpaint.padding, width=width, height=height)
    crop = {"crop": region, "init_size": tuple(mask.size)} if region else {}
    geometry = Geometry.for_size(width, height, resize_mode, **crop)
    images = None
    if run.settings.source == "estimate":
        if init_image is None:
            raise ValueError("image: an init image is needed to estimate depth from")
        fill = mask if inpaint is not None and inpaint.fill and run.settings.masked_area == "filled" else None
        image = prepare_image(
            init_image, width=width, height=height, resize_mode=resize_mode, region=region, fill_mask=fill
        )
        images = image_to_tensor(image.convert("RGB"), name="image")
    return run.conditioning(geometry, images), geometry


def tab_image_and_mask(tab: int, values: dict[str, Any]) -> tuple[Any, Any]:
    """The init image and mask an img2img sub-tab sends, as modules/img2img.py picks them
    (v1.10.1: 0 img2img, 1 sketch, 2 inpaint, 3 inpaint sketch, 4 inpaint upload; 5 Batch: none). The inpaint
    sketch's mask is drawn strokes, which the preview cannot see: it previews the whole picture."""
    if (forge_inputs := compat.tab_image_and_mask(tab, values)) is not None:
        return forge_inputs
    if tab == 1:
        return values.get("sketch"), None
    if tab == 2:
        inpaint = values.get("inpaint")
        if not isinstance(inpaint, dict):  # nothing uploaded there: no depth (never another sub-tab's image)
            return inpaint, None
        from modules import processing

        mask = inpaint.get("mask")
        return inpaint.get("image"), processing.create_binary_mask(mask) if mask is not None else None
    if tab == 3:
        return values.get("inpaint_sketch"), None
    if tab == 4:
        return values.get("inpaint_base"), values.get("inpaint_mask")
    return (values.get("init") if tab == 0 else None), None  # the Batch tab's frames are a folder


def inpaint_from_values(mask: Any, values: dict[str, Any]) -> Inpaint | None:
    """The inpaint controls from the UI's values (its Radio components send indices)."""
    if mask is None:
        return None
    return Inpaint(
        mask=mask,
        only_masked=values.get("only_masked") == 1,  # "Inpaint area": 0 whole picture, 1 only masked
        padding=int(values.get("padding") or 0),
        mask_blur=int(values.get("mask_blur") or 0),
        invert_mask=values.get("mask_mode") == 1,  # "Mask mode": 0 inpaint masked, 1 inpaint not masked
        fill=values.get("inpainting_fill", 1) != 1,  # "Masked content": 1 is "original"
    )


def preview(values: dict[str, Any], is_img2img: bool) -> tuple[Any, str]:
    """The accordion's preview: (image, status html) of exactly the depth the next generation uses."""
    from modules import shared

    started = time.perf_counter()
    try:
        settings = DepthSettings.from_dict(
            {k: BY_NAME[k].from_ui(v) for k, v in values.items() if k in DepthSettings.__dataclass_fields__}
        )
        sd_model = estimating_model(shared.sd_model)  # in Forge before its first load: the selected file
        if sd_model is None:
            return None, status_html()
        tab = int(values.get("tab") or 0)
        init_image, mask = tab_image_and_mask(tab, values) if is_img2img else (None, None)
        if is_img2img and init_image is None and settings.source == "estimate":
            where = "the Batch tab reads its frames from a folder" if tab == 5 else "this img2img sub-tab has no image"
            return None, as_html("depth2img-warn", f"No depth to show: {where}.")
        hits = CACHE.stats().hits
        run = DepthRun(settings, make_estimator(sd_model, settings), values.get("image"))
        conditioning, geometry = request_conditioning(
            run,
            width=int(values.get("width") or 512),
            height=int(values.get("height") or 512),
            init_image=init_image,
            resize_mode=int(values.get("resize_mode") or 0),
            inpaint=inpaint_from_values(mask, values),
        )
        picture = conditioning_to_previews(conditioning, geometry.image_size)[0]
        cached = " (from cache)" if CACHE.stats().hits > hits else ""
        seconds = time.perf_counter() - started
        resolution = get_estimator(settings.estimator).check_resolution(settings.resolution or None)
        source = f"{settings.estimator} at {resolution}" if settings.source == "estimate" else settings.source
        note = f"Depth for {geometry.width}x{geometry.height} ({source}){cached}, {seconds:.1f} s. White = near."
        return (colorize(picture) if values.get("color") else picture), as_html("depth2img-ok", note)
    except (ValueError, DepthInputError) as error:
        return None, as_html("depth2img-warn", str(error))
