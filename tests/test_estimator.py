"""MiDaS input preparation and running a depth model across dtypes, devices and hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CountingModule
from ldm.modules.midas.midas.transforms import Resize

from lib_depth import DepthEstimator, midas_input_size, prepare_midas_input, run_depth_model

DEVICES = (
    ["cpu"]
    + (["cuda"] if torch.cuda.is_available() else [])
    + (["mps"] if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else [])
)


@pytest.mark.parametrize("height", [64, 100, 333, 384, 448, 512, 600, 768, 1000, 1080])
@pytest.mark.parametrize("width", [64, 90, 384, 512, 640, 768, 1024, 1920])
def test_midas_size_rule_equals_reference(height, width):
    reference = Resize(
        384, 384, resize_target=None, keep_aspect_ratio=True, ensure_multiple_of=32, resize_method="minimal"
    )
    expected = tuple(int(side) for side in reversed(reference.get_size(width, height)))
    # a very thin image rounds a side to 0 in the reference (and then fails); we keep one block of 32
    expected = tuple(side if side > 0 else 32 for side in expected)
    assert midas_input_size(height, width) == expected


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_prepare_any_dtype_gives_float32_close_to_float32_result(scene_batch, dtype):
    images = scene_batch(320, 240, seeds=(0, 1))
    expected = prepare_midas_input(images)
    actual = prepare_midas_input(images.to(dtype))
    assert actual.dtype == torch.float32 and actual.shape == (2, 3, 288, 384)
    tolerance = {torch.float16: 2e-3, torch.bfloat16: 2e-2}.get(dtype, 1e-6)
    assert (actual - expected).abs().max().item() < tolerance


@pytest.mark.parametrize("image_dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("model_dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_run_depth_model_any_dtype_pairing(dpt_head, scene_batch, image_dtype, model_dtype):
    reference = run_depth_model(dpt_head, prepare_midas_input(scene_batch(256, 256)))
    model = dpt_head.to(model_dtype)
    images = scene_batch(256, 256).to(image_dtype)
    depth = run_depth_model(model, prepare_midas_input(images))
    assert depth.dtype == torch.float32 and depth.device == images.device
    assert depth.shape == (1, 1, 384, 384)
    assert (depth - reference).abs().max().item() < 0.05 * reference.abs().max().item()


@pytest.mark.parametrize("device", DEVICES)
def test_model_on_device_input_on_cpu_returns_on_cpu(dpt_head, scene_batch, device):
    depth = run_depth_model(dpt_head.to(device), prepare_midas_input(scene_batch(128, 128)))
    assert depth.device.type == "cpu" and depth.dtype == torch.float32


def test_pre_hook_that_changes_model_dtype_is_honoured(dpt_head, scene_batch):
    """Like the WebUI's --lowvram hook, which moves the model only when it is called."""
    model = dpt_head.to(torch.float64)
    seen = []

    def move_to_compute(module, args):
        module.to(torch.float32)

    model.register_forward_pre_hook(move_to_compute)
    model.register_forward_hook(lambda module, args, output: seen.append((args[0].dtype, output.dtype)))
    depth = run_depth_model(model, prepare_midas_input(scene_batch(128, 128).half()))
    assert seen == [(torch.float32, torch.float32)]
    assert depth.dtype == torch.float32
    assert len(model._forward_pre_hooks) == 1  # our temporary hook is gone


def test_max_batch_size_chunks_the_forward(dpt_head, scene_batch):
    counting = CountingModule(dpt_head)
    images = scene_batch(128, 128, seeds=(1, 2, 3, 4, 5))
    whole = run_depth_model(dpt_head, prepare_midas_input(images))
    depth = run_depth_model(counting, prepare_midas_input(images), max_batch_size=2)
    assert counting.batch_sizes == [2, 2, 1]
    assert torch.allclose(depth, whole, atol=1e-6)
    with pytest.raises(ValueError, match="max_batch_size"):
        run_depth_model(dpt_head, prepare_midas_input(images), max_batch_size=0)


def test_distinct_batch_is_one_forward_and_each_slice_is_its_own(dpt_head, scene_batch):
    counting = CountingModule(dpt_head)
    images = scene_batch(192, 128, seeds=(1, 2, 3))
    depth = DepthEstimator(counting).estimate(images)
    assert counting.batch_sizes == [3]
    for index in range(3):
        single = DepthEstimator(dpt_head).estimate(images[index : index + 1])
        assert torch.allclose(depth[index], single[0], atol=1e-6)


def test_mixed_batch_estimates_each_distinct_image_once(dpt_head, scene_batch):
    counting = CountingModule(dpt_head)
    a, b = scene_batch(128, 128, seeds=(1, 2))
    depth = DepthEstimator(counting).estimate(torch.stack([a, b, a, b, a]))
    assert counting.batch_sizes == [2]
    assert torch.equal(depth[0], depth[2]) and torch.equal(depth[1], depth[3])


def test_model_output_shapes_and_bad_output(dpt_head, scene_batch):
    midas_in = prepare_midas_input(scene_batch(128, 128))

    class Squeezed(torch.nn.Module):  # a bare DPTDepthModel returns [B, h, w]
        def __init__(self):
            super().__init__()
            self.inner = dpt_head

        def forward(self, x):
            return self.inner(x)[:, 0]

    assert run_depth_model(Squeezed(), midas_in).shape == (1, 1, 384, 384)

    class WrongChannels(Squeezed):
        def forward(self, x):
            return self.inner(x).repeat(1, 2, 1, 1)

    with pytest.raises(ValueError, match="depth model: expected output"):
        run_depth_model(WrongChannels(), midas_in)

    class Overflows(Squeezed):
        def forward(self, x):
            return self.inner(x) * float("inf")

    with pytest.raises(ValueError, match="NaN or infinite"):
        run_depth_model(Overflows(), midas_in)


@pytest.mark.parametrize(
    "images,message",
    [
        (torch.zeros(3, 128, 128), "4 dimensions"),
        (torch.zeros(1, 4, 128, 128), "3 colour channels"),
        (torch.zeros(0, 3, 128, 128), "empty"),
        (torch.zeros(1, 3, 0, 128), "empty"),
        (torch.zeros(1, 3, 63, 128), "too small"),
        (torch.zeros(1, 3, 128, 128, dtype=torch.uint8), "floating point"),
        (torch.full((1, 3, 128, 128), float("nan")), "NaN"),
        (np.zeros((1, 3, 128, 128), dtype=np.float32), "torch.Tensor"),
    ],
)
def test_bad_image_input_is_a_clear_value_error(images, message):
    with pytest.raises(ValueError, match=message):
        prepare_midas_input(images)
