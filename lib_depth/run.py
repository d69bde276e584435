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
from .depthmap import load_depth_map
from .estimator import DepthEstimator
from .geometry import Geometry
from .images import image_to_tensor
from .settings import DepthSettings


class DepthInputError(ValueError):
    """A problem with what the user asked for; shown to them as is (422 over the API)."""


@dataclass
class DepthRun:
    settings: DepthSettings
    estimator: DepthEstimator | None
    image: Image.Image | None = None  # uploaded depth map or reference photo
    error: str | None = None  # an invalid request, reported when the conditioning is first asked for
    used: list[torch.Tensor] = field(default_factory=list)  # the conditioning each pass used (CPU)
    _user_depth: np.ndarray | None = None

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
            depth = self._user_depth_at(geometry).expand(batch, -1, -1, -1)
        conditioning = depth_to_conditioning(depth, geometry.latent, self.settings, image_size=geometry.image_size)
        self.used.append(conditioning.detach().cpu())
        return conditioning

    def estimate(self, images: torch.Tensor) -> torch.Tensor:
        if self.estimator is None:
            raise DepthInputError("depth2img: the loaded model has no depth estimator; select a depth checkpoint")
        return self.estimator.estimate(images)

    def _user_depth_at(self, geometry: Geometry) -> torch.Tensor:
        """[1, 1, H, W] raw depth of the uploaded map or reference photo, fitted like the init image."""
        if self.image is None:
            wanted = (
                "a reference image is needed; upload one"
                if self.settings.source == "reference"
                else ("a depth map is needed: upload a depth map (or a reference image)")
            )
            raise DepthInputError(f"depth2img: {wanted} in the Depth2img accordion")
        if self._user_depth is None:
            if self.settings.source == "reference":
                reference = image_to_tensor(self.image.convert("RGB"), name="reference image")
                self._user_depth = self.estimate(reference)[0, 0].cpu().numpy()
            else:
                try:
                    self._user_depth = load_depth_map(self.image, name="depth map")
                except ValueError as error:
                    raise DepthInputError(f"depth2img: {error}") from None
        fitted = geometry.fit(self._user_depth)
        return torch.from_numpy(np.ascontiguousarray(fitted, dtype=np.float32))[None, None]
