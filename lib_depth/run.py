"""One generation's depth: settings + user map or reference photo + estimator -> conditioning.

`DepthRun.conditioning(geometry, images)` is the one path to the UNet's depth channel: the WebUI
glue calls it from the processing object's conditioning methods (every pass of img2img, inpaint,
txt2img and hires fix), from the accordion's preview and from the estimate route, each time with a
`Geometry` it built. The run keeps what must stay the same across passes (the user map, read once;
a reference photo's depth, estimated once) and what each pass used, for saving.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from .conditioning import depth_to_conditioning
from .depth.cache import image_digest
from .depth.estimator import DepthEstimator
from .geometry import Geometry
from .io.depth_files import DepthMap
from .io.depthmap import read_user_depth
from .io.images import image_to_tensor
from .normalise import DepthRange, settings_ranges
from .settings import DepthSettings

PER_IMAGE = "per image"


class DepthInputError(ValueError):
    """A problem with what the user asked for; shown to them as is (422 over the API)."""


@dataclass
class DepthRun:
    settings: DepthSettings
    estimator: DepthEstimator | None
    # uploaded depth map or reference photo; a list gives each image of the batch its own map
    image: Image.Image | DepthMap | list[Image.Image | DepthMap] | None = None
    error: str | None = None  # an invalid request, reported when the conditioning is first asked for
    # normalisation ranges fixed by the caller for this run's images (a Batch-tab frame normalised
    # with its whole sequence); None: from the settings, over the pass's own batch
    ranges: list[DepthRange] | None = None
    # (image digest, raw depth) already estimated for this run's image (a Batch-tab frame, measured
    # with its sequence): used instead of estimating again when the pass's images are that image
    known_depth: tuple[str, torch.Tensor] | None = None
    used: list[torch.Tensor] = field(default_factory=list)  # the conditioning each pass used (CPU)
    notes: list[str] = field(default_factory=list)  # per user map: the file read, pixels without depth
    _user_depth: list[np.ndarray] | None = None

    def conditioning(self, geometry: Geometry, images: torch.Tensor | None = None, batch: int = 1) -> torch.Tensor:
        """float32 [B, 1, h, w] in [-1, 1] at `geometry.latent`.

        With source "estimate", `images` ([B, 3, H, W] in [-1, 1], as the pass's image, any dtype
        and device) are estimated, each its own depth; otherwise the user map or reference depth is
        fitted to `geometry` and repeated `batch` times (the result is on the CPU then).
        """
        if self.error:
            raise DepthInputError(self.error)
        if self.settings.source == "estimate":
            if images is None:
                raise DepthInputError(
                    "depth2img: a depth map is needed: txt2img has no init image to estimate depth from; "
                    "upload a depth map (or a reference image) in the Depth2img accordion"
                )
            depth = self.estimate(images)
        else:
            depth = self.user_depth(geometry, batch)
        conditioning = self.normalised(depth, geometry)
        self.used.append(conditioning.detach().cpu())
        return conditioning

    def normalised(self, depth: torch.Tensor, geometry: Geometry) -> torch.Tensor:
        """Raw depth [B, 1, H, W] -> conditioning, each image over its own range (per image, the
        model's way) or over the range the sequence settings give the batch (sequence.py)."""
        settings = self.settings
        ranges = self.ranges
        if ranges is None and (settings.normalise != PER_IMAGE or settings.percentile):
            ranges = settings_ranges(depth, geometry.latent, settings, geometry.image_size)
        if ranges is None:
            return depth_to_conditioning(depth, geometry.latent, settings, image_size=geometry.image_size)
        if len(ranges) == 1 and depth.shape[0] > 1:
            ranges = ranges * depth.shape[0]
        return torch.cat(
            [
                depth_to_conditioning(
                    depth[index : index + 1],
                    geometry.latent,
                    settings,
                    image_size=geometry.image_size,
                    depth_range=depth_range,
                )
                for index, depth_range in enumerate(ranges)
            ]
        )

    def estimate(self, images: torch.Tensor) -> torch.Tensor:
        if self.estimator is None:
            raise DepthInputError("depth2img: the loaded model has no depth estimator; select a depth checkpoint")
        if self.known_depth is not None:
            digest, depth = self.known_depth
            if all(image_digest(image) == digest for image in images):
                return depth.to(images.device).repeat(images.shape[0], 1, 1, 1)
        return self.estimator.estimate(images)

    def user_depth(self, geometry: Geometry, batch: int = 1) -> torch.Tensor:
        """[B, 1, H, W] raw depth of the uploaded map(s) or reference photo, fitted like the init
        image: one map for the whole batch, or one per image."""
        if self.image is None or (isinstance(self.image, list) and not self.image):
            wanted = (
                "a reference image is needed; upload one"
                if self.settings.source == "reference"
                else ("a depth map is needed: upload a depth map (or a reference image)")
            )
            raise DepthInputError(f"depth2img: {wanted} in the Depth2img accordion")
        if self._user_depth is None:
            images = self.image if isinstance(self.image, list) else [self.image]
            self._user_depth = [self._read(image, index, len(images)) for index, image in enumerate(images)]
        if len(self._user_depth) not in (1, batch):
            raise DepthInputError(
                f"depth2img: image: {len(self._user_depth)} depth maps for {batch} images; "
                "send one map for all, or one per init image"
            )
        fitted = [
            torch.from_numpy(np.ascontiguousarray(geometry.fit(depth), dtype=np.float32))[None, None]
            for depth in self._user_depth
        ]
        return torch.cat(fitted).expand(batch, -1, -1, -1) if len(fitted) == 1 else torch.cat(fitted)

    def _read(self, image: Image.Image | DepthMap, index: int, count: int) -> np.ndarray:
        label = "depth map" if count == 1 else f"depth map {index + 1}"
        if self.settings.source == "reference":
            label = label.replace("depth map", "reference image")
            if not isinstance(image, Image.Image):
                raise DepthInputError(
                    f"depth2img: {label}: a {image.description} file is a depth map, not a photo; "
                    "choose the source upload for it, or send a photo (PNG, JPEG, WebP) as the reference"
                )
            return self.estimate(image_to_tensor(image.convert("RGB"), name=label))[0, 0].cpu().numpy()
        try:
            depth = read_user_depth(image, self.settings.depth_kind, name=label)
        except ValueError as error:
            raise DepthInputError(f"depth2img: {error}") from None
        self.notes.append(f"{label}: {depth.note}")
        return depth.values
