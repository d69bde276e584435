"""Real depth networks with seeded random weights, for tests and benchmarks (no download)."""

from __future__ import annotations

import warnings

import torch


def build_random_dpt_hybrid(seed: int = 0) -> torch.nn.Module:
    """The WebUI's `sd_model.depth_model`: the reference MiDaSInference around a DPT-Hybrid.

    Random weights end in a ReLU that zeroes most pixels; a larger last conv with a positive bias
    gives maps with real structure, so comparisons are meaningful.
    """
    from ldm.modules.midas.api import MiDaSInference
    from ldm.modules.midas.midas.dpt_depth import DPTDepthModel

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dpt = DPTDepthModel(path=None, backbone="vitb_rn50_384", non_negative=True).eval()
    last = dpt.scratch.output_conv[4]
    with torch.no_grad():
        last.weight.mul_(20.0)
        last.bias.fill_(0.5)
    wrapper = MiDaSInference.__new__(MiDaSInference)  # its __init__ would load weights from disk
    torch.nn.Module.__init__(wrapper)
    wrapper.model = dpt
    return wrapper.eval()


def build_dpt_head(seed: int = 0) -> torch.nn.Module:
    """The DPT depth head's layer structure (ldm's DPTDepthModel head) straight on RGB input:
    a real, fast depth-shaped network for tests of dtype/device/batching mechanics."""
    from ldm.modules.midas.midas.blocks import Interpolate

    torch.manual_seed(seed)
    head = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, kernel_size=3, stride=2, padding=1),
        Interpolate(scale_factor=2, mode="bilinear", align_corners=True),
        torch.nn.Conv2d(16, 8, kernel_size=3, stride=1, padding=1),
        torch.nn.ReLU(True),
        torch.nn.Conv2d(8, 1, kernel_size=1, stride=1, padding=0),
        torch.nn.Softplus(),  # positive like the ReLU head, without flat regions
    )
    return head.eval()
