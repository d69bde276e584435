"""The loaded checkpoint's depth network: recognising a depth model, estimating with it under the
WebUI's device policy, and building it offline from the checkpoint's own MiDaS weights."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

from ..depth.cache import DepthCache
from ..depth.estimator import DepthEstimator
from ..depth.estimators import DEFAULT_ESTIMATOR, WEIGHTS_SUBDIR, find_weights, get_estimator
from ..depth.midas import offline_load_model
from ..run import DepthInputError
from ..settings import DepthSettings
from . import compat, options
from .checkpoints import checkpoint_has_depth_weights
from .redact import shown_path

log = logging.getLogger("sd-webui-depth2img")

DEPTH_MODEL_CLASS = "LatentDepth2ImageDiffusion"  # ldm/models/diffusion/ddpm.py
CACHE = DepthCache()  # shared by every run, the preview and the estimate route


def is_depth_model(sd_model: Any) -> bool:
    if compat.uses_forge_backend():
        from .forge import is_depth_model as forge_depth_model

        return forge_depth_model(sd_model)
    return type(sd_model).__name__ == DEPTH_MODEL_CLASS and getattr(sd_model, "depth_model", None) is not None


def estimating_model(sd_model: Any) -> Any | None:
    """What the preview and the estimate route estimate with: the loaded depth model or, in Forge
    before its first generation, the selected depth checkpoint (its MiDaS read from the file, as Forge
    builds it after the load too); None when neither is there."""
    if is_depth_model(sd_model):
        return sd_model
    if compat.uses_forge_backend():
        from .forge import selected_depth_checkpoint

        return selected_depth_checkpoint(sd_model)
    return None


def loaded_model() -> Any:
    """The model the WebUI has loaded, or None. Unlike `shared.sd_model`, reading
    `sd_models.model_data.sd_model` never starts loading a checkpoint (drawing a status line must
    not load a 2.85 GB file as a side effect)."""
    from modules import sd_models, shared

    from .compat import uses_forge_backend

    data = getattr(sd_models, "model_data", None)
    if data is None or uses_forge_backend():  # Forge's shared.sd_model never loads (it loads on generation)
        return shared.sd_model
    return data.sd_model


def loaded_name(sd_model: Any) -> str | None:
    return getattr(getattr(sd_model, "sd_checkpoint_info", None), "name_for_extra", None)


def checkpoint_key(sd_model: Any) -> str:
    """Names the depth weights in cache keys: the checkpoint's hash, else its file. In Forge the file
    version: the selected checkpoint before the load and the loaded model after it name the same
    weights, and the hash may only be computed by the load."""
    if compat.uses_forge_backend():
        from .forge import checkpoint_file

        filename = checkpoint_file(sd_model)
        stat = Path(filename).stat()
        return f"{filename}:{stat.st_size}:{stat.st_mtime_ns}"
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


_loaded: dict[str, Any] = {}  # the one estimator network loaded from a weights file: {path: module}


def models_folder() -> Path:
    """The WebUI's models folder (--models-dir aware)."""
    from modules import paths

    return Path(paths.models_path)


def estimator_folder() -> Path:
    """Where estimators' weights go: the WebUI's models/depth2img."""
    return models_folder() / WEIGHTS_SUBDIR


def weights_missing(name: str) -> str:
    """What to do when an estimator's weights are not installed, in one message. It may reach a
    client (the estimate route, script arguments), so the folder is named as the WebUI's
    models/depth2img; the server log gets the absolute one."""
    from ..models.model_files import estimator_file

    log.info("depth2img: %s has no weights in %s", name, estimator_folder())
    folder = shown_path(estimator_folder())
    try:
        entry = estimator_file(name)
    except ValueError:
        files = ", ".join(w.file_name for w in get_estimator(name).weights)
        return f"depth2img: {name} needs its weights ({files}) in {folder}; put one of them there"
    return (
        f"depth2img: {name} needs its weights: {entry.filename} ({entry.size_text()}, licence {entry.licence}) in "
        f"{folder}. Download it with `python -m lib_depth download --estimator {name}` from the extension's folder, "
        f"or from {entry.mirrors[0].page()} by hand into that folder."
    )


def installed_estimators() -> dict[str, bool]:
    """Which estimators can run now: dpt-hybrid always (it is the checkpoint's), others with weights."""
    from ..depth.estimators import ESTIMATORS

    return {name: name == DEFAULT_ESTIMATOR or find_weights(models_folder(), name) is not None for name in ESTIMATORS}


def depth_network(sd_model: Any, settings: DepthSettings) -> tuple[Any, str, bool]:
    """(network, weights key, managed) of the chosen estimator: the checkpoint's own MiDaS, or an
    estimator's weights from models/depth2img (loaded once, kept while it stays chosen).
    `managed`: the WebUI places it itself (--lowvram/--medvram hooks on sd_model.depth_model)."""
    from modules import shared

    if settings.estimator == DEFAULT_ESTIMATOR:
        if compat.uses_forge_backend():  # Forge drops the checkpoint's MiDaS: forge.py builds it, Forge places it
            from .forge import depth_network as forge_depth_network

            return forge_depth_network(sd_model), checkpoint_key(sd_model), True
        compat.fill_depth_weights(sd_model)  # reForge builds the MiDaS without the checkpoint's weights
        managed = bool(getattr(shared.cmd_opts, "lowvram", False) or getattr(shared.cmd_opts, "medvram", False))
        return sd_model.depth_model, checkpoint_key(sd_model), managed
    path = find_weights(models_folder(), settings.estimator)
    if path is None:
        raise DepthInputError(weights_missing(settings.estimator))
    key = str(path)
    if key not in _loaded:
        _loaded.clear()  # one at a time: a switch frees the previous one
        try:
            _loaded[key] = get_estimator(settings.estimator).load(path).eval()
        except ValueError as error:
            raise DepthInputError(f"depth2img: {error}") from None
    stat = path.stat()
    return _loaded[key], f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}", False


_applied_cache_entries: list[int] = []  # the setting last applied to CACHE


def apply_cache_option() -> None:
    """Apply "Depth cache size" when it changed (resizing on every generation would evict entries a
    setting that did not change keeps). A Batch-tab sequence does not depend on it: its frames'
    estimates are kept on disk for its generations (batch.py)."""
    wanted = int(options.read("depth2img_cache_entries"))
    if _applied_cache_entries != [wanted]:
        CACHE.resize(wanted, CACHE.max_bytes)
        _applied_cache_entries[:] = [wanted]


def make_estimator(sd_model: Any, settings: DepthSettings | None = None) -> DepthEstimator:
    """The chosen estimator's network with the shared cache, placed by the user's options."""
    from modules import devices

    settings = settings or DepthSettings()
    apply_cache_option()
    device = "cpu" if options.read("depth2img_device") == "cpu" else devices.device
    network, key, managed = depth_network(sd_model, settings)
    offload = bool(options.read("depth2img_offload"))
    return DepthEstimator(
        network,
        key=key,
        cache=CACHE,
        around_forward=lambda: placed(network, device=device, offload=offload, managed=managed),
        estimator=settings.estimator,
        resolution=settings.resolution or None,
    )


def selected_checkpoint_has_depth_weights() -> bool | None:
    """For the checkpoint the WebUI is loading (sd_models.select_checkpoint); None if unknown."""
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
