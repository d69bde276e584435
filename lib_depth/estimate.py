"""MiDaS input preparation and running a depth model safely, whatever the dtype and device.

The reference `AddMiDaS("dpt_hybrid")` resizes a numpy copy of the image with OpenCV, which
refuses float16 ("src data type = 23 is not supported") and forces a round trip to the CPU.
Here the same bicubic resize is two small matrix products in float32 on the image's own device:
numerically OpenCV's INTER_CUBIC (same coefficients, same border rule), batched, and free of any
dtype the resize cannot take.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from typing import Iterator

import numpy as np
import torch

from .validation import check_finite, check_image_batch

MIDAS_NET_SIZE = 384
MIDAS_MULTIPLE_OF = 32
_CUBIC_A = np.float32(-0.75)  # OpenCV's INTER_CUBIC kernel parameter


def midas_input_size(height: int, width: int, resolution: int = MIDAS_NET_SIZE) -> tuple[int, int]:
    """(height, width) of the DPT-Hybrid input: the reference "minimal" rule.

    Keep the aspect ratio, scale as little as possible towards `resolution` (384, the trained
    size, by default), round each side to a multiple of 32 (half to even, as numpy does).
    """
    scale_h = resolution / height
    scale_w = resolution / width
    if abs(1 - scale_w) < abs(1 - scale_h):
        scale_h = scale_w
    else:
        scale_w = scale_h
    return _round_to_multiple(scale_h * height), _round_to_multiple(scale_w * width)


def _round_to_multiple(value: float) -> int:
    return max(MIDAS_MULTIPLE_OF, int(round(value / MIDAS_MULTIPLE_OF)) * MIDAS_MULTIPLE_OF)


@lru_cache(maxsize=64)
def _cubic_resize_matrix(src: int, dst: int) -> np.ndarray:
    """[dst, src] weights reproducing OpenCV's INTER_CUBIC along one axis (float32 coefficients,
    half-pixel centres, replicated border)."""
    scale = 1.0 / (dst / src)
    fx = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    sx = np.floor(fx)
    x = (fx - sx).astype(np.float32)
    a, one = _CUBIC_A, np.float32(1)
    xp1 = x + one
    c0 = ((a * xp1 - np.float32(5) * a) * xp1 + np.float32(8) * a) * xp1 - np.float32(4) * a
    c1 = ((a + np.float32(2)) * x - (a + np.float32(3))) * x * x + one
    c2 = ((a + np.float32(2)) * (one - x) - (a + np.float32(3))) * (one - x) * (one - x) + one
    c3 = one - c0 - c1 - c2
    weights = np.zeros((dst, src), dtype=np.float64)
    rows = np.arange(dst)
    for offset, coeff in enumerate((c0, c1, c2, c3)):
        cols = np.clip(sx.astype(np.int64) + offset - 1, 0, src - 1)
        np.add.at(weights, (rows, cols), coeff.astype(np.float64))
    return weights.astype(np.float32)


def cubic_resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize float32 [..., H, W] to `size` exactly as cv2.resize(..., INTER_CUBIC) does."""
    height, width = images.shape[-2:]
    rows = torch.from_numpy(_cubic_resize_matrix(height, size[0])).to(images.device)
    cols = torch.from_numpy(_cubic_resize_matrix(width, size[1])).to(images.device)
    return rows @ images @ cols.T


def prepare_midas_input(images: torch.Tensor, resolution: int = MIDAS_NET_SIZE) -> torch.Tensor:
    """[B, 3, H, W] images in [-1, 1], any float dtype and device -> DPT-Hybrid input.

    Returns float32 [B, 3, h, w] on the images' device, normalised with mean 0.5 / std 0.5,
    equal to the reference AddMiDaS("dpt_hybrid") output for each image (at 384, its size).
    """
    check_image_batch(images)
    # float32 before any arithmetic: a half-precision image never reaches the resize.
    unit = (images.to(torch.float32) + 1.0) * 0.5
    resized = cubic_resize(unit, midas_input_size(*images.shape[-2:], resolution))
    return (resized - 0.5) / 0.5


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
