"""Shared fixtures: real MiDaS DPT-Hybrid with seeded random weights, synthetic photos."""

from __future__ import annotations

import pytest
import torch
from models import build_dpt_head, build_random_dpt_hybrid
from scenes import make_scene

from lib_depth import image_to_tensor

# Tests that build the full-size DPT-Hybrid (about 2 s a forward on 2 cores) are `slow`; the fast
# loop, `pytest -m "not slow"`, leaves them out. CI runs everything.
FULL_SIZE_FIXTURES = {"depth_model", "counting_depth_model", "depth_checkpoint"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if FULL_SIZE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def depth_model() -> torch.nn.Module:
    return build_random_dpt_hybrid()


@pytest.fixture
def scene_batch():
    """scene_batch(width, height, seeds) -> float32 [B, 3, H, W] in [-1, 1]."""

    def build(width: int, height: int, seeds=(0,)) -> torch.Tensor:
        return image_to_tensor([make_scene(width, height, seed) for seed in seeds])

    return build


class CountingModule(torch.nn.Module):
    """Wraps a real depth model and records the batch size of every forward."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(x.shape[0])
        return self.inner(x)


@pytest.fixture
def counting_depth_model(depth_model) -> CountingModule:
    return CountingModule(depth_model)


@pytest.fixture
def dpt_head() -> torch.nn.Module:
    return build_dpt_head()
