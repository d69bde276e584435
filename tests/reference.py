"""The reference depth conditioning, built from Stability's `ldm` (PyPI stable-diffusion-sdkit).

`reference_conditioning` is Stability's depth2img recipe per image: AddMiDaS -> depth model ->
bicubic to latent size -> per-image normalisation. `webui_native_conditioning` is what the
WebUI v1.10.1 runs (modules/processing.py, depth2img_image_conditioning): the first image only,
repeated for the batch, normalised over the whole batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from ldm.data.util import AddMiDaS

_TRANSFORM = AddMiDaS(model_type="dpt_hybrid")


def reference_midas_input(image: torch.Tensor) -> torch.Tensor:
    """[3, H, W] in [-1, 1] -> [1, 3, h, w] via the reference transform (OpenCV on the CPU)."""
    sample = _TRANSFORM({"jpg": image.permute(1, 2, 0)})
    return torch.from_numpy(sample["midas_in"])[None]


def reference_conditioning(model: torch.nn.Module, images: torch.Tensor, latent_size: tuple[int, int]) -> torch.Tensor:
    slices = []
    for image in images:
        with torch.no_grad():
            depth = model(reference_midas_input(image))
        depth = F.interpolate(depth, size=latent_size, mode="bicubic", align_corners=False)
        low = depth.amin(dim=(1, 2, 3), keepdim=True)
        high = depth.amax(dim=(1, 2, 3), keepdim=True)
        slices.append(2.0 * (depth - low) / (high - low) - 1.0)
    return torch.cat(slices)


def webui_native_conditioning(
    model: torch.nn.Module, images: torch.Tensor, latent_size: tuple[int, int]
) -> torch.Tensor:
    midas_in = reference_midas_input(images[0]).repeat(images.shape[0], 1, 1, 1)
    with torch.no_grad():
        depth = F.interpolate(model(midas_in), size=latent_size, mode="bicubic", align_corners=False)
    low, high = torch.aminmax(depth)
    return 2.0 * (depth - low) / (high - low) - 1.0
