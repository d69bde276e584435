"""Depth conditioning for one WebUI generation, attached to its processing object.

`DepthRun` holds what one generation needs (settings, user image, estimator) and provides the two
methods that replace the processing object's own, per object:
  p.depth2img_image_conditioning(source_image)  img2img, inpaint, batch, hires-fix second pass
  p.txt2img_image_conditioning(x, width, height)  txt2img (and latent-upscale hires fix)
Everything WebUI-specific arrives through `WebUIHooks`, so this runs under test without a WebUI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from .conditioning import depth_to_conditioning
from .depthmap import load_depth_map
from .estimator import DepthEstimator
from .geometry import CROP_AND_RESIZE, RESIZE_AND_FILL, crop_region, fit_depth
from .images import image_to_tensor
from .settings import DepthSettings


class DepthInputError(ValueError):
    """A problem with what the user asked for; shown to them as is (422 over the API)."""


@dataclass
class WebUIHooks:
    """The WebUI functions a run needs (modules.images and options), passed in by the glue."""

    prepare_init_image: Callable[[Image.Image, Any], Image.Image]  # flatten + resize/crop like p.init
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32


@dataclass
class DepthRun:
    settings: DepthSettings
    estimator: DepthEstimator | None
    hooks: WebUIHooks
    image: Image.Image | None = None  # uploaded depth map or reference photo
    error: str | None = None  # reported when the conditioning is first asked for
    used: list[torch.Tensor] = field(default_factory=list)  # the conditioning each pass used
    _user_depth: np.ndarray | None = None

    # --- the two replacements -------------------------------------------------------------
    def img2img_conditioning(self, p: Any, source_image: torch.Tensor) -> torch.Tensor:
        self._raise_pending()
        batch = source_image.shape[0]
        latent = tuple(p.init_latent.shape[-2:]) if _has_latent(p, batch) else _latent_of(source_image)
        image_size = tuple(source_image.shape[-2:])
        if self.settings.source == "estimate" and not _is_txt2img(p):
            images = self._images_for_estimate(p, source_image)
            depth = self.estimate_depth(images)
        else:  # a user map, or txt2img's hires-fix pass reusing the first pass's depth
            depth = self._user_depth_for(p, image_size).expand(batch, -1, -1, -1)
        return self._finish(depth, latent, image_size)

    def txt2img_conditioning(self, p: Any, x: torch.Tensor, width: int | None = None, height: int | None = None):
        self._raise_pending()
        latent = tuple(x.shape[-2:])
        # the first pass passes no size; a latent-upscale hires pass passes its upscaled latents
        image_size = (height, width) if width and height else (latent[0] * 8, latent[1] * 8)
        depth = self._user_depth_for(p, image_size).expand(x.shape[0], -1, -1, -1)
        return self._finish(depth, latent, image_size)

    # --- helpers -----------------------------------------------------------------------------
    def _raise_pending(self) -> None:
        if self.error:
            raise DepthInputError(self.error)

    def _finish(self, depth: torch.Tensor, latent: tuple[int, int], image_size: tuple[int, int]) -> torch.Tensor:
        conditioning = depth_to_conditioning(depth, latent, self.settings, image_size=image_size)
        self.used.append(conditioning.detach().cpu())
        return conditioning.to(device=self.hooks.device, dtype=self.hooks.dtype)

    def estimate_depth(self, images: torch.Tensor) -> torch.Tensor:
        if self.estimator is None:
            raise DepthInputError("depth2img: the loaded model has no depth estimator; select a depth checkpoint")
        return self.estimator.estimate(images)

    def _images_for_estimate(self, p: Any, source_image: torch.Tensor) -> torch.Tensor:
        """The image as the WebUI prepared it, or, for inpainting with masked area "original",
        the same geometry from the init images before the masked area was filled."""
        filled = getattr(p, "image_mask", None) is not None and getattr(p, "inpainting_fill", 1) != 1
        if not (filled and self.settings.masked_area == "original"):
            return source_image
        originals = [self.hooks.prepare_init_image(img, p) for img in p.init_images]
        tensor = image_to_tensor(originals, name="init image").to(source_image.device)
        if tensor.shape[0] == 1 and source_image.shape[0] > 1:
            tensor = tensor.expand(source_image.shape[0], -1, -1, -1)
        if tuple(tensor.shape) != tuple(source_image.shape):
            return source_image  # the WebUI changed the geometry in a way we cannot reproduce
        return tensor

    def _user_depth_for(self, p: Any, image_size: tuple[int, int]) -> torch.Tensor:
        """[1, 1, H, W] raw depth of the uploaded map or reference photo, fitted like the init image."""
        if self.image is None:
            if self.settings.source == "reference":
                raise DepthInputError("depth2img: a reference image is needed; upload one in the Depth2img accordion")
            reason = "txt2img has no init image to estimate depth from; " if self.settings.source == "estimate" else ""
            raise DepthInputError(
                f"depth2img: a depth map is needed: {reason}upload a depth map (or a reference image) "
                "in the Depth2img accordion"
            )
        if self._user_depth is None:
            if self.settings.source == "reference":
                reference = image_to_tensor(self.image.convert("RGB"), name="reference image")
                self._user_depth = self.estimate_depth(reference)[0, 0].cpu().numpy()
            else:
                try:
                    self._user_depth = load_depth_map(self.image, name="depth map")
                except ValueError as error:
                    raise DepthInputError(f"depth2img: {error}") from None
        height, width = image_size
        depth = self._user_depth
        paste_to = getattr(p, "paste_to", None)
        init_images = getattr(p, "init_images", None)
        if paste_to and init_images:  # inpaint "only masked": the map describes the whole init image
            x, y, w, h = paste_to
            depth = crop_region(depth, (x, y, x + w, y + h), init_images[0].size)
            fitted = fit_depth(depth, width, height, RESIZE_AND_FILL)  # what the WebUI does to the crop
        else:  # img2img: the init image's resize mode; txt2img: crop to the generation's aspect
            fitted = fit_depth(depth, width, height, getattr(p, "resize_mode", CROP_AND_RESIZE))
        return torch.from_numpy(np.ascontiguousarray(fitted, dtype=np.float32))[None, None]


def _is_txt2img(p: Any) -> bool:
    return not hasattr(p, "init_images")


def _has_latent(p: Any, batch: int) -> bool:
    latent = getattr(p, "init_latent", None)
    return isinstance(latent, torch.Tensor) and latent.shape[0] == batch and not _is_txt2img(p)


def _latent_of(source_image: torch.Tensor) -> tuple[int, int]:
    return source_image.shape[-2] // 8, source_image.shape[-1] // 8


def install(p: Any, run: DepthRun, translate_error: Callable[[DepthInputError], Exception] | None = None) -> None:
    """Replace the two conditioning methods on this processing object only.

    `translate_error` turns a DepthInputError into what the caller's context expects (an HTTP
    422 for API requests).
    """

    def guarded(function: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def call(*args: Any, **kwargs: Any) -> torch.Tensor:
            try:
                return function(p, *args, **kwargs)
            except DepthInputError as error:
                if translate_error is None:
                    raise
                raise translate_error(error) from None

        return call

    p.depth2img = run
    p.depth2img_image_conditioning = guarded(run.img2img_conditioning)
    if _is_txt2img(p):
        p.txt2img_image_conditioning = guarded(run.txt2img_conditioning)
