"""Init images as StableDiffusionProcessingImg2Img.init prepares them (modules/processing.py,
v1.10.1), with the WebUI's own functions: flatten, the "only masked" crop, the resize mode, the
"Masked content: fill". The preview and the estimate route prepare their image with these, and
the generation uses them to rebuild the unfilled originals for masked area "original"."""

from __future__ import annotations

from typing import Any

from ..geometry import LATENT_UPSCALE, RESIZE_AND_FILL
from .compat import find_crop_region


def prepared_mask(mask: Any, *, invert_mask: bool = False, mask_blur: int = 0) -> Any:
    """The mask after "Mask mode: inpaint not masked" and "Mask blur", as init applies them."""
    import cv2
    import numpy as np
    from PIL import Image, ImageOps

    mask = mask.convert("L")
    if invert_mask:
        mask = ImageOps.invert(mask)
    if mask_blur > 0:
        kernel = 2 * int(2.5 * mask_blur + 0.5) + 1
        mask = Image.fromarray(cv2.GaussianBlur(np.array(mask), (kernel, kernel), mask_blur))
    return mask


def only_masked_region(mask: Any, *, padding: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """(x1, y1, x2, y2) of "Inpaint area: only masked" in the init image, widened to the
    generation's aspect; None for an empty mask (the WebUI then inpaints the whole picture)."""
    from modules import masking

    region = find_crop_region(mask, padding)
    if not region:
        return None
    return tuple(masking.expand_crop_region(region, width, height, mask.width, mask.height))


def prepare_image(
    image: Any,
    *,
    width: int,
    height: int,
    resize_mode: int = 0,
    region: tuple[int, int, int, int] | None = None,
    fill_mask: Any = None,
) -> Any:
    """Flatten, then the "only masked" crop resized with "resize and fill", else the resize mode;
    `fill_mask` (already prepared) smears the masked area like "Masked content: fill"."""
    from modules import images, masking
    from modules.shared import opts

    image = images.flatten(image, opts.img2img_background_color)
    if region:
        image = images.resize_image(RESIZE_AND_FILL, image.crop(region), width, height)
        if fill_mask is not None:
            fill_mask = images.resize_image(RESIZE_AND_FILL, fill_mask.crop(region), width, height)
    elif resize_mode != LATENT_UPSCALE:
        image = images.resize_image(resize_mode, image, width, height)
        if fill_mask is not None:
            fill_mask = images.resize_image(resize_mode, fill_mask, width, height)
    if fill_mask is not None:
        image = masking.fill(image, fill_mask).convert("RGB")
    return image


def region_of(p: Any) -> tuple[int, int, int, int] | None:
    """The "only masked" crop a processing object chose in init (p.paste_to is x, y, w, h)."""
    paste_to = getattr(p, "paste_to", None)
    if not paste_to:
        return None
    x, y, w, h = paste_to
    return x, y, x + w, y + h


def prepare_init_image(image: Any, p: Any) -> Any:
    """An init image of `p` as its init prepared it, before any fill."""
    return prepare_image(image, width=p.width, height=p.height, resize_mode=p.resize_mode, region=region_of(p))
