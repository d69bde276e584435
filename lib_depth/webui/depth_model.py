"""The loaded checkpoint's depth network: recognising a depth model, estimating with it under the
WebUI's device policy, and building it offline from the checkpoint's own MiDaS weights."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

from ..cache import DepthCache
from ..estimator import DepthEstimator
from ..midas import offline_load_model
from . import compat, options

DEPTH_MODEL_CLASS = "LatentDepth2ImageDiffusion"  # ldm/models/diffusion/ddpm.py
CACHE = DepthCache()  # shared by every run, the preview and the estimate route


def is_depth_model(sd_model: Any) -> bool:
    if compat.uses_forge_backend():
        from .forge import is_depth_model as forge_depth_model

        return forge_depth_model(sd_model)
    return type(sd_model).__name__ == DEPTH_MODEL_CLASS and getattr(sd_model, "depth_model", None) is not None


def loaded_name(sd_model: Any) -> str | None:
    return getattr(getattr(sd_model, "sd_checkpoint_info", None), "name_for_extra", None)


def checkpoint_key(sd_model: Any) -> str:
    """Names the depth weights in cache keys: the checkpoint's hash, else its file."""
    info = getattr(sd_model, "sd_checkpoint_info", None)
    return str(getattr(info, "sha256", None) or getattr(info, "filename", None) or id(sd_model))


@contextlib.contextmanager
def placed(module: Any, *, device: Any, offload: bool, managed: bool) -> Iterator[None]:
    """Put the depth model on `device` for a forward, and back on the CPU after it if asked.

    `managed` (--lowvram/--medvram) leaves placement to the WebUI's own hooks.
    """
    if not managed:
        module.to(device)
    try:
        yield
    finally:
        if offload and not managed:
            module.to("cpu")


def make_estimator(sd_model: Any) -> DepthEstimator:
    """The loaded model's depth network with the shared cache, placed by the user's options."""
    from modules import devices, shared

    CACHE.resize(int(options.read("depth2img_cache_entries")), CACHE.max_bytes)
    device = "cpu" if options.read("depth2img_device") == "cpu" else devices.device
    managed = bool(getattr(shared.cmd_opts, "lowvram", False) or getattr(shared.cmd_opts, "medvram", False))
    offload = bool(options.read("depth2img_offload"))
    if compat.uses_forge_backend():  # Forge dropped the MiDaS weights: ours, under its memory management
        from .forge import depth_network

        depth_model, around_forward = depth_network(sd_model, on_cpu=device == "cpu", offload=offload)
    else:
        depth_model = sd_model.depth_model
        around_forward = lambda: placed(depth_model, device=device, offload=offload, managed=managed)  # noqa: E731
    return DepthEstimator(depth_model, key=checkpoint_key(sd_model), cache=CACHE, around_forward=around_forward)


def selected_checkpoint_has_depth_weights() -> bool | None:
    """For the checkpoint the WebUI is loading (sd_models.select_checkpoint); None if unknown."""
    from .status import checkpoint_has_depth_weights

    try:
        from modules import sd_models

        info = sd_models.select_checkpoint()
    except Exception:  # noqa: BLE001  no checkpoint selected yet: the WebUI's own load reports that
        return None
    filename = getattr(info, "filename", None)
    return checkpoint_has_depth_weights(filename) if filename else None


def install_offline_midas(midas_api: Any, has_depth_weights: Callable[[], bool | None]) -> Callable[[], None]:
    """Replace `midas_api.load_model` (ldm.modules.midas.api) so that building a depth model whose
    checkpoint holds the MiDaS weights reads no separate weights file and downloads nothing.

    The one global patch, unavoidable because ldm builds the depth model inside the WebUI's model
    load. Idempotent: installing again chains to the same function as the first install did, not to
    ourselves. Returns an undo that restores that function (if nobody replaced ours since).
    """
    current = midas_api.load_model
    previous = getattr(current, "depth2img_previous", current)
    # the WebUI keeps ldm's own loader as load_model_inner when it adds its downloader
    build_without_weights = getattr(midas_api, "load_model_inner", None) or previous
    replacement = offline_load_model(previous, build_without_weights, midas_api.ISL_PATHS, has_depth_weights)
    midas_api.load_model = replacement

    def undo() -> None:
        if midas_api.load_model is replacement:
            midas_api.load_model = previous

    return undo
