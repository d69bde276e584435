"""The depth estimators the SD2 depth model can be fed by: one entry each, by name.

An entry says how to prepare the input (and at which resolutions), what the output means, where
its weights come from (file, Hub path, SHA-256, licence) and how to load them. A further estimator
is one more entry plus its model code. `dpt-hybrid` is the checkpoint's own MiDaS: it needs no
file, the WebUI already holds it as `sd_model.depth_model`.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..midas_input import MIDAS_NET_SIZE, midas_input_size, prepare_midas_input
from .dav2_weights import load_depth_anything_v2
from .depth_anything_v2 import DAV2_NET_SIZE, PATCH_SIZE, DepthAnythingV2, dav2_input_size, prepare_dav2_input

WEIGHTS_SUBDIR = "depth2img"  # under the WebUI's models folder
RELATIVE_INVERSE_DEPTH = "relative inverse depth: larger is nearer, unknown scale and shift (as MiDaS)"
DEFAULT_ESTIMATOR = "dpt-hybrid"


@dataclass(frozen=True)
class WeightsFile:
    """One downloadable weights file. `sha256` is None where no published hash was found."""

    file_name: str  # as stored under models/depth2img/
    hub_repo: str
    hub_path: str
    layout: str  # "original" (release .pth) or "hf" (transformers safetensors)
    size: int | None  # bytes
    sha256: str | None

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.hub_repo}/resolve/main/{self.hub_path}"


@dataclass(frozen=True)
class EstimatorSpec:
    name: str
    label: str
    licence: str
    commercial_use: bool
    default_resolution: int
    allowed_resolutions: tuple[int, ...]
    resolution_rule: str  # how the allowed sizes are described in messages
    input_size: Callable[[int, int, int], tuple[int, int]]  # (height, width, resolution) -> model input size
    prepare: Callable[[torch.Tensor, int], torch.Tensor]  # images in [-1, 1], resolution -> model input
    output: str = RELATIVE_INVERSE_DEPTH
    weights: tuple[WeightsFile, ...] = ()  # first one is the download; any of them loads
    loader: Callable[[Path], torch.nn.Module] | None = field(default=None, repr=False)

    def check_resolution(self, resolution: int | None) -> int:
        """`resolution` (None = the default) if this estimator takes it, else a ValueError saying what it takes."""
        if resolution is None:
            return self.default_resolution
        if isinstance(resolution, float) and resolution.is_integer():
            resolution = int(resolution)  # a UI slider or JSON may send 518.0
        if isinstance(resolution, bool) or not isinstance(resolution, numbers.Integral):
            raise ValueError(f"depth resolution: expected a whole number of pixels, got {resolution!r}")
        resolution = int(resolution)
        if resolution not in self.allowed_resolutions:
            raise ValueError(
                f"depth resolution {resolution} is not available for {self.name}: use {self.resolution_rule} "
                f"(default {self.default_resolution})"
            )
        return resolution

    @property
    def needs_weights(self) -> bool:
        return bool(self.weights)

    def load(self, path: str | os.PathLike) -> torch.nn.Module:
        """The model from a local weights file (any of the layouts this estimator reads)."""
        if self.loader is None:
            raise ValueError(f"{self.name} uses the depth model inside the Stable Diffusion checkpoint; it has no file")
        return self.loader(Path(path))


def _dav2_loader(encoder: str) -> Callable[[Path], DepthAnythingV2]:
    def load(path: Path) -> DepthAnythingV2:
        return load_depth_anything_v2(path, encoder=encoder)

    return load


DAV2_RESOLUTIONS = tuple(range(10 * PATCH_SIZE, 1022 + 1, PATCH_SIZE))  # 140 ... 1022
_DAV2_RULE = f"a multiple of {PATCH_SIZE} from {DAV2_RESOLUTIONS[0]} to {DAV2_RESOLUTIONS[-1]}"
_HF = "depth-anything/Depth-Anything-V2-{size}"


def _dav2(size: str, encoder: str, licence: str, original: tuple[int | None, str | None], hf: tuple) -> EstimatorSpec:
    return EstimatorSpec(
        name=f"depth-anything-v2-{size.lower()}",
        label=f"Depth Anything V2 {size}",
        licence=licence,
        commercial_use=licence == "Apache-2.0",
        default_resolution=DAV2_NET_SIZE,
        allowed_resolutions=DAV2_RESOLUTIONS,
        resolution_rule=_DAV2_RULE,
        input_size=dav2_input_size,
        prepare=prepare_dav2_input,
        weights=(
            WeightsFile(
                f"depth_anything_v2_{encoder}.pth",
                _HF.format(size=size),
                f"depth_anything_v2_{encoder}.pth",
                "original",
                *original,
            ),
            WeightsFile(
                f"depth_anything_v2_{encoder}-hf.safetensors",
                _HF.format(size=size) + "-hf",
                "model.safetensors",
                "hf",
                *hf,
            ),
        ),
        loader=_dav2_loader(encoder),
    )


# Hashes and sizes: the Git LFS details on each file's huggingface.co page. None: not found published
# for that file; the download machinery records the first download's.
ESTIMATORS: dict[str, EstimatorSpec] = {
    spec.name: spec
    for spec in (
        EstimatorSpec(
            name="dpt-hybrid",
            label="DPT-Hybrid (MiDaS, built into the checkpoint)",
            licence="MIT (MiDaS), part of the Stable Diffusion 2 depth checkpoint",
            commercial_use=True,
            default_resolution=MIDAS_NET_SIZE,
            allowed_resolutions=(384, 512, 768, 1024),
            resolution_rule="one of 384, 512, 768, 1024",
            input_size=midas_input_size,
            prepare=prepare_midas_input,
        ),
        _dav2(
            "Small",
            "vits",
            "Apache-2.0",
            (99218434, "715fade13be8f229f8a70cc02066f656f2423a59effd0579197bbf57860e1378"),
            (None, "3152477ce0d8d6978d76b995120de97cb5b928701fd0f817769f59e249a16b70"),
        ),
        _dav2(
            "Base",
            "vitb",
            "CC-BY-NC-4.0",
            (389961218, "0d2b7002e62d39d655571c371333340bd88f67ab95050c03591555aa05645328"),
            (None, None),
        ),
        _dav2("Large", "vitl", "CC-BY-NC-4.0", (None, None), (None, None)),
    )
}
ESTIMATOR_NAMES: tuple[str, ...] = tuple(ESTIMATORS)


def get_estimator(name: str) -> EstimatorSpec:
    """The registry entry for `name`, or a ValueError listing the names there are."""
    spec = ESTIMATORS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ValueError(f"depth estimator {name!r} is unknown; choose one of: {', '.join(ESTIMATOR_NAMES)}")
    return spec


def find_weights(models_dir: str | os.PathLike, name: str) -> Path | None:
    """The first of the estimator's weights files present under models_dir/depth2img/, if any."""
    folder = Path(models_dir) / WEIGHTS_SUBDIR
    for weights in get_estimator(name).weights:
        candidate = folder / weights.file_name
        if candidate.is_file():
            return candidate
    return None


__all__ = [
    "DEFAULT_ESTIMATOR",
    "ESTIMATORS",
    "ESTIMATOR_NAMES",
    "EstimatorSpec",
    "WEIGHTS_SUBDIR",
    "WeightsFile",
    "find_weights",
    "get_estimator",
]
