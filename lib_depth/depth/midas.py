"""The MiDaS DPT-Hybrid inside depth checkpoints: build it, load its weights, skip the download.

The network code is Stability's `ldm` (the WebUI's repositories/stable-diffusion-stability-ai,
or PyPI stable-diffusion-sdkit outside the WebUI). A depth checkpoint already holds the MiDaS
weights under `depth_model.model.*`, so the 470 MB `dpt_hybrid-midas-501f0c75.pt` that ldm would
load (and the WebUI would download) when building the model is never needed for it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, MutableMapping

import torch

from ..models.checkpoint import depth_model_state_dict

WEBUI_LDM_FOLDER = Path("repositories") / "stable-diffusion-stability-ai"


def import_dpt_depth_model(webui_root: str | os.PathLike | None = None) -> type:
    """ldm's DPTDepthModel; looks in a WebUI folder's repositories when ldm is not installed."""
    try:
        from ldm.modules.midas.midas.dpt_depth import DPTDepthModel
    except ImportError:
        candidate = Path(webui_root or os.getcwd()) / WEBUI_LDM_FOLDER
        if not (candidate / "ldm").is_dir():
            raise ValueError(
                "the MiDaS code (ldm) is not importable: run from the WebUI folder, or "
                "pip install --no-deps stable-diffusion-sdkit==2.1.5 and pip install timm einops omegaconf"
            ) from None
        sys.path.append(str(candidate))
        from ldm.modules.midas.midas.dpt_depth import DPTDepthModel
    return DPTDepthModel


def build_dpt_hybrid(webui_root: str | os.PathLike | None = None, dpt_class: type | None = None) -> torch.nn.Module:
    """The DPT-Hybrid structure with no weights loaded (ldm's path=None), no download; `dpt_class`
    is another copy of ldm's DPTDepthModel (Forge ships one without ldm)."""
    dpt_depth_model = dpt_class or import_dpt_depth_model(webui_root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # timm's deprecation notices for the hybrid ViT
        return dpt_depth_model(path=None, backbone="vitb_rn50_384", non_negative=True).eval()


def load_depth_model(
    checkpoint: str | os.PathLike, webui_root: str | os.PathLike | None = None, dpt_class: type | None = None
) -> torch.nn.Module:
    """A DPT-Hybrid with the MiDaS weights of a depth checkpoint (strict: every weight must match)."""
    state = depth_model_state_dict(checkpoint)
    model = build_dpt_hybrid(webui_root, dpt_class)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        detail = str(error).splitlines()[0]
        raise ValueError(f"{Path(checkpoint).name}: its MiDaS weights do not fit DPT-Hybrid ({detail})") from None
    return model.float().eval()


def midas_file_needed(weights_file: str | None, checkpoint_has_depth_weights: bool | None) -> bool:
    """Whether building a depth model must read ldm's separate MiDaS weights file.

    Not when the checkpoint being loaded carries the weights (they replace whatever the file
    holds right after). When that is unknown, only if the file is already on disk: a missing
    file would mean a 470 MB download, or on an offline machine a failed load.
    """
    if checkpoint_has_depth_weights:
        return False
    if checkpoint_has_depth_weights is None:
        return bool(weights_file) and os.path.exists(weights_file)
    return True


@contextlib.contextmanager
def _structure_only(isl_paths: MutableMapping[str, Any], model_type: str) -> Iterator[None]:
    """ldm builds DPTDepthModel(path=ISL_PATHS[model_type]); None means: structure, no weights."""
    previous = isl_paths.get(model_type)
    isl_paths[model_type] = None
    try:
        yield
    finally:
        isl_paths[model_type] = previous


def offline_load_model(
    previous: Callable[[str], Any],
    build_without_weights: Callable[[str], Any],
    isl_paths: MutableMapping[str, Any],
    checkpoint_has_depth_weights: Callable[[], bool | None],
) -> Callable[[str], Any]:
    """A replacement for ldm.modules.midas.api.load_model that skips the weights file when the
    checkpoint provides the weights, and otherwise calls `previous` (the WebUI's downloader)."""

    def load_model(model_type: str) -> Any:
        if midas_file_needed(isl_paths.get(model_type), checkpoint_has_depth_weights()):
            return previous(model_type)
        with _structure_only(isl_paths, model_type):
            return build_without_weights(model_type)

    load_model.depth2img_previous = previous  # lets a re-install chain to the original, not to itself
    return load_model
