"""Per-image depth for a batch of init images: each distinct image estimated once, in one forward."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch

from .cache import DepthCache, image_digest
from .estimate import run_depth_model
from .estimators import DEFAULT_ESTIMATOR, get_estimator
from .validation import check_image_batch


@dataclass
class DepthEstimator:
    """A depth model with its cache.

    `estimator` names the registry entry whose input preparation the model gets, at `resolution`
    (None: that estimator's default). `key` names the weights (e.g. the checkpoint's hash) so
    that two depth models never share cache entries. The estimator, the resolution and the
    model's current parameter dtype are part of every cache key too: switching estimator or
    resolution never returns another one's map, and a float16 model gives a (slightly) different
    estimate than a float32 one.
    """

    model: torch.nn.Module
    key: str = "dpt_hybrid"
    cache: DepthCache | None = None
    max_batch_size: int | None = None
    # entered around each forward only (not on cache hits): the WebUI moves the model there
    around_forward: Callable[[], ContextManager] | None = None
    estimator: str = DEFAULT_ESTIMATOR
    resolution: int | None = None

    def __post_init__(self) -> None:
        get_estimator(self.estimator).check_resolution(self.resolution)  # a bad choice fails here, not mid-run

    def estimate(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [-1, 1] -> float32 [B, 1, h, w] raw relative inverse depth at the
        estimator's input size, on the images' device. Slice i is image i's own depth; identical
        images share one estimate."""
        check_image_batch(images)
        spec = get_estimator(self.estimator)
        resolution = spec.check_resolution(self.resolution)
        digests = [image_digest(image) for image in images]
        found: dict[str, torch.Tensor] = {}
        for digest in dict.fromkeys(digests):
            cached = self.cache.get(self._cache_key(digest, resolution)) if self.cache is not None else None
            if cached is not None:
                found[digest] = cached.to(images.device)

        missing = [d for d in dict.fromkeys(digests) if d not in found]
        if missing:
            first_index = {d: digests.index(d) for d in missing}
            batch = images[[first_index[d] for d in missing]]
            with self.around_forward() if self.around_forward else contextlib.nullcontext():
                prepared = spec.prepare(batch, resolution)
                depth = run_depth_model(self.model, prepared, max_batch_size=self.max_batch_size)
            for digest, slice_ in zip(missing, depth, strict=True):
                found[digest] = slice_
                if self.cache is not None:
                    self.cache.put(self._cache_key(digest, resolution), slice_)
        return torch.stack([found[d] for d in digests])

    def _cache_key(self, digest: str, resolution: int) -> tuple:
        parameter = next(self.model.parameters(), None)
        dtype = str(parameter.dtype) if parameter is not None else "none"
        return (digest, self.key, self.estimator, resolution, dtype)
