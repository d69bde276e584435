"""Our depth conditioning on one processing object: the WebUI's own is replaced for this
generation only, by assigning two methods on `p` (never on its class):

  p.depth2img_image_conditioning(source_image)     img2img, inpaint, batch, hires-fix second pass
  p.txt2img_image_conditioning(x, width, height)   txt2img (and latent-upscale hires fix)

Each builds the pass's `Geometry` from `p` and asks the run (run.py) for the conditioning.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import torch

from ..geometry import CROP_AND_RESIZE, Geometry
from ..io.images import image_to_tensor
from ..run import DepthInputError, DepthRun
from ..settings import INFOTEXT_KEY, DepthSettings
from . import batch, compat, options, xyz
from .args import read_script_args
from .depth_model import is_depth_model, make_estimator
from .prepare import prepare_init_image, region_of
from .redact import client_message

log = logging.getLogger("sd-webui-depth2img")


def process(p: Any, args: Sequence[Any]) -> None:
    """Script.process: with a depth model, install our conditioning on `p`; with the accordion
    on (or a depth axis of the X/Y/Z plot), also the user's settings, map and infotext."""
    request, error = read_script_args(args, is_api=bool(getattr(p, "is_api", False)), **options.image_limits())
    request, error = xyz.with_axis_values(p, request, error)  # an X/Y/Z plot cell's depth axes
    enabled = request is not None or error is not None
    if not is_depth_model(p.sd_model):
        if enabled:
            log.warning("Depth2img is enabled but the loaded model is not a depth model; it has no effect.")
        return
    # With a depth model ours always replaces the WebUI's conditioning (per-image depth, no float16
    # crash); the accordion adds the user's settings, infotext and saving.
    settings = request.settings if request else DepthSettings(enabled=enabled)
    try:
        estimator = make_estimator(p.sd_model, settings)
    except DepthInputError as missing:  # raised where it stops the generation: in the conditioning
        estimator, error = None, error or str(missing)
    if not is_txt2img(p) and p.init_images and batch.is_batch_frame(p, settings):  # a Batch-tab frame
        run = batch.frame_run(p, settings, estimator, error)
    else:
        run = DepthRun(settings, estimator, request.image if request else None, error)
    install(p, run, translate_error=http_error if getattr(p, "is_api", False) else None)
    if enabled:
        # a new dict: an X/Y/Z plot's cells are shallow copies of one p, sharing the original dict
        p.extra_generation_params = {**p.extra_generation_params, INFOTEXT_KEY: settings.to_infotext()}


def http_error(error: Exception) -> Exception:
    """A script-argument error for an API client: 422, files named relative to the WebUI's folders."""
    from fastapi import HTTPException

    return HTTPException(status_code=422, detail=client_message(str(error)))


def install(p: Any, run: DepthRun, translate_error: Callable[[DepthInputError], Exception] | None = None) -> None:
    """Replace the conditioning methods on this processing object only.

    `translate_error` turns a DepthInputError into what the caller expects (a 422 for the API).
    """

    def guarded(function: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def call(*args: Any, **kwargs: Any) -> torch.Tensor:
            try:
                return function(p, run, *args, **kwargs)
            except DepthInputError as error:
                if translate_error is None:
                    raise
                raise translate_error(error) from None

        return call

    p.depth2img = run
    p.depth2img_image_conditioning = guarded(img2img_conditioning)
    if is_txt2img(p):
        p.txt2img_image_conditioning = guarded(txt2img_conditioning)
    compat.route_conditioning(p)


def img2img_conditioning(p: Any, run: DepthRun, source_image: torch.Tensor) -> torch.Tensor:
    """A pass that has an image: img2img and inpaint (init), or txt2img's hires-fix pass."""
    batch_size = source_image.shape[0]
    height, width = source_image.shape[-2:]
    latent = tuple(p.init_latent.shape[-2:]) if has_latent(p, batch_size) else (height // 8, width // 8)
    if is_txt2img(p):  # hires fix: the first pass's depth at the new size, as txt2img fits it
        geometry = Geometry(width, height, latent, CROP_AND_RESIZE)
        images = None
    else:
        region = region_of(p)
        init_size = p.init_images[0].size if region and p.init_images else None
        geometry = Geometry(width, height, latent, p.resize_mode, region if init_size else None, init_size)
        images = images_for_estimate(p, run.settings, source_image) if run.settings.source == "estimate" else None
        if getattr(p, "depth2img_batch", None) is not None:  # the Batch tab normalised as one sequence
            run.ranges = batch.sequence_ranges_for(p, run, Geometry(width, height, latent, p.resize_mode))
    return to_unet(p, run.conditioning(geometry, images, batch_size))


def txt2img_conditioning(p: Any, run: DepthRun, x: torch.Tensor, width: int | None = None, height: int | None = None):
    """txt2img's first pass (no size given) or a latent-upscale hires pass (its upscaled latents)."""
    latent = tuple(x.shape[-2:])
    if not (width and height):
        height, width = latent[0] * 8, latent[1] * 8
    return to_unet(p, run.conditioning(Geometry(width, height, latent, CROP_AND_RESIZE), None, x.shape[0]))


def images_for_estimate(p: Any, settings: DepthSettings, source_image: torch.Tensor) -> torch.Tensor:
    """The pass's image, or for inpainting with masked area "original" the same geometry from the
    init images before "Masked content: fill" smeared them."""
    filled = getattr(p, "image_mask", None) is not None and getattr(p, "inpainting_fill", 1) != 1
    if not (filled and settings.masked_area == "original"):
        return source_image
    originals = image_to_tensor([prepare_init_image(image, p) for image in p.init_images], name="init image")
    originals = originals.to(source_image.device)
    if originals.shape[0] == 1 and source_image.shape[0] > 1:
        originals = originals.expand(source_image.shape[0], -1, -1, -1)
    if tuple(originals.shape) != tuple(source_image.shape):
        log.warning(
            "Depth2img: masked area 'original' could not rebuild the init images at the WebUI's size "
            "(%s, expected %s); this generation estimates depth from the filled image instead.",
            tuple(originals.shape),
            tuple(source_image.shape),
        )
        return source_image
    return originals


def to_unet(p: Any, conditioning: torch.Tensor) -> torch.Tensor:
    device, dtype = compat.unet_input_placement(p.sd_model)
    return conditioning.to(device=device, dtype=dtype)


def is_txt2img(p: Any) -> bool:
    return not hasattr(p, "init_images")


def has_latent(p: Any, batch: int) -> bool:
    latent = getattr(p, "init_latent", None)
    return isinstance(latent, torch.Tensor) and latent.shape[0] == batch and not is_txt2img(p)
