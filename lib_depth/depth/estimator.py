"""Per-image depth for a batch of init images: each distinct image estimated once, in one forward,
and the depth model called safely whatever its dtype and device and the images' (`run_depth_model`)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterator

import torch

from ..validation import check_finite, check_image_batch
from .cache import DepthCache, image_digest
from .estimators import DEFAULT_ESTIMATOR, get_estimator


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


@contextlib.contextmanager
def _inputs_follow_parameters(model: torch.nn.Module) -> Iterator[None]:
    """Cast the model's input to its parameters' device and dtype at call time.

    The hook is appended, so it runs after hooks the model already carries (the WebUI's
    --lowvram/--medvram hook moves the depth model to the GPU only when it is called): the input
    goes where the weights really are at that moment, in their dtype.
    """

    def cast_input(module: torch.nn.Module, args: tuple) -> tuple | None:
        reference = next(module.parameters(), None)
        if reference is None or not args or not isinstance(args[0], torch.Tensor):
            return None
        return (args[0].to(device=reference.device, dtype=reference.dtype), *args[1:])

    handle = model.register_forward_pre_hook(cast_input)
    try:
        yield
    finally:
        handle.remove()


def _as_depth_batch(output: object, batch: int) -> torch.Tensor:
    """Accept [B, h, w] (a bare DPT) or [B, 1, h, w] (the WebUI's MiDaSInference wrapper)."""
    if not isinstance(output, torch.Tensor):
        raise ValueError(f"depth model: expected a tensor output, got {type(output).__name__}")
    if output.ndim == 3:
        output = output.unsqueeze(1)
    if output.ndim != 4 or output.shape[0] != batch or output.shape[1] != 1:
        raise ValueError(f"depth model: expected output [batch={batch}, 1, h, w], got {tuple(output.shape)}")
    return output


def run_depth_model(
    model: torch.nn.Module, midas_in: torch.Tensor, *, max_batch_size: int | None = None
) -> torch.Tensor:
    """Run `model` on prepared input; return float32 [B, 1, h, w] on the input's device.

    The input is cast to the model's dtype and device (after its own pre-hooks ran), so float16
    weights with float32 input, float32 weights with half input, MPS weights with CPU input all
    work. `max_batch_size` splits a large batch into several forwards.
    """
    if max_batch_size is not None and max_batch_size < 1:
        raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
    chunk = max_batch_size or midas_in.shape[0]
    outputs = []
    with torch.no_grad(), _inputs_follow_parameters(model):
        for part in midas_in.split(chunk):
            depth = _as_depth_batch(model(part), part.shape[0])
            outputs.append(depth.to(device=midas_in.device, dtype=torch.float32))
    return check_finite(torch.cat(outputs), "depth model output")
