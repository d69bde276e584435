"""The SD 2 depth model in lllyasviel's Forge (2.x, checked against commit dfdcbab).

Forge loads 512-depth-ema as its SD 2 engine (`backend/diffusion_engine/sd20.py`: huggingface_guess
calls a 5-channel UNet "SD20"), drops the checkpoint's `depth_model.*` (MiDaS) weights, and sends
img2img and txt2img down its inpainting conditioning (`base.py` sets `is_inpaint` for
in_channels > 4), which hands 9 channels to the 5-channel UNet. This module supplies what is
missing, per generation and per object, with nothing patched globally:

- `is_depth_model`: an SD 2 engine whose UNet takes 5 channels (4 latent + 1 depth);
- the MiDaS DPT-Hybrid built from the checkpoint file's own weights, with the DPT code of
  `lib_depth.midas` (ldm) or, where there is no ldm, Forge's own identical copy in
  extensions-builtin/forge_legacy_preprocessors, wrapped in Forge's ModelPatcher so Forge's memory
  management puts it on the device for each forward (float16 where Forge says so) and evicts it when
  it needs the room, or right after the forward with the offload setting; one per checkpoint;
- `route_img2img_conditioning`: `p.img2img_image_conditioning` on this p only, calling the depth
  conditioning generation.install put on p (Forge passes what it returns to the sampler as
  `image_cond`, which backend/sampling/sampling_function.py concatenates to the latent).

Also `fill_reforge_depth_weights`, for reForge (which keeps AUTOMATIC1111's ldm path but never loads
the checkpoint's MiDaS weights). Only called where compat.webui() says so; Forge's modules are
imported inside the functions.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from ..depth.midas import import_dpt_depth_model, load_depth_model
from ..models.checkpoint import UNET_INPUT_KEY, depth_model_state_dict, inspect_checkpoint
from ..run import DepthInputError

DEPTH_UNET_CHANNELS = 5  # 4 latent channels + 1 depth channel (512-depth-ema)
FORGE_MIDAS = Path("extensions-builtin") / "forge_legacy_preprocessors" / "annotator" / "midas" / "midas"
_PRIVATE_PACKAGE = "lib_depth_forge_midas"  # Forge's MiDaS copy, imported by path without annotator/__init__

_patchers: dict[tuple, Any] = {}  # one ModelPatcher: (file, size, mtime, load device) -> patcher


def unet_in_channels(sd_model: Any) -> int | None:
    """Input channels of the loaded UNet (backend/nn/unet.py IntegratedUNet2DConditionModel.in_channels,
    else the detected config's unet_config)."""
    unet = getattr(getattr(sd_model, "forge_objects", None), "unet", None)
    diffusion_model = getattr(getattr(unet, "model", None), "diffusion_model", None)
    channels = getattr(diffusion_model, "in_channels", None)
    if channels is None:
        channels = (getattr(getattr(sd_model, "model_config", None), "unet_config", None) or {}).get("in_channels")
    return channels


def is_depth_model(sd_model: Any) -> bool:
    """Forge's SD 2 engine with a depth UNet (SD 2 inpainting has 9 channels, the others 4)."""
    return bool(getattr(sd_model, "is_sd2", False)) and unet_in_channels(sd_model) == DEPTH_UNET_CHANNELS


def checkpoint_file(sd_model: Any) -> str:
    """The loaded checkpoint's file (modules/sd_models.py forge_model_reload sets both)."""
    filename = getattr(sd_model, "filename", None) or getattr(
        getattr(sd_model, "sd_checkpoint_info", None), "filename", None
    )
    if not filename:
        raise ValueError("the loaded model names no checkpoint file to read the MiDaS weights from")
    return str(filename)


def pending_checkpoint(sd_model: Any) -> str | None:
    """The checkpoint file Forge will load with the next generation, while it has loaded none:
    modules/sd_models.py keeps a FakeInitialModel until then, and modules_forge/main_entry.py puts
    the selection into model_data.forge_loading_parameters."""
    if sd_model is not None and type(sd_model).__name__ != "FakeInitialModel":
        return None
    try:
        from modules import sd_models

        info = sd_models.model_data.forge_loading_parameters.get("checkpoint_info")
    except Exception:  # noqa: BLE001  nothing selected (yet): the usual status line says what to do
        return None
    return getattr(info, "filename", None)


class SelectedCheckpoint:
    """Forge before its first generation: the selected depth checkpoint standing in for the model it
    will load, so that the preview and the estimate route build its MiDaS from the file as they do
    after the load (depth_patcher reads `filename`; the cache key names the same file version)."""

    def __init__(self, filename: str, info: Any) -> None:
        self.filename = filename
        self.sd_checkpoint_info = info


def selected_depth_checkpoint(sd_model: Any) -> SelectedCheckpoint | None:
    """The selected checkpoint while Forge has loaded none, if its file is a depth checkpoint (one
    without MiDaS weights too: building from it then says what is wrong with the file); else None."""
    from .checkpoints import cached_report

    filename = pending_checkpoint(sd_model)
    report = cached_report(filename) if filename else None
    unet = report.tensors.get(UNET_INPUT_KEY) if report is not None else None
    depth_unet = unet is not None and len(unet.shape) == 4 and unet.shape[1] == DEPTH_UNET_CHANNELS
    if report is None or not (report.is_depth or depth_unet):
        return None
    from modules import sd_models

    return SelectedCheckpoint(filename, sd_models.model_data.forge_loading_parameters.get("checkpoint_info"))


def webui_root() -> Path:
    from modules.paths_internal import script_path

    return Path(script_path)


def dpt_class(root: str | os.PathLike) -> type:
    """DPTDepthModel: ldm's (lib_depth.midas) where there is one, else Forge's own copy (the same
    code, ldm/modules/midas/midas), imported by path under a private package name."""
    try:
        return import_dpt_depth_model(root)
    except ValueError:
        pass
    folder = Path(root) / FORGE_MIDAS
    if not (folder / "dpt_depth.py").is_file():
        raise ValueError(
            f"the MiDaS code is missing: neither ldm nor {folder / 'dpt_depth.py'} is there "
            "(Forge's built-in forge_legacy_preprocessors extension ships it)"
        )
    if _PRIVATE_PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            _PRIVATE_PACKAGE, folder / "__init__.py", submodule_search_locations=[str(folder)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules[_PRIVATE_PACKAGE] = package
        try:
            spec.loader.exec_module(package)
        except BaseException:
            del sys.modules[_PRIVATE_PACKAGE]
            raise
    return importlib.import_module(f"{_PRIVATE_PACKAGE}.dpt_depth").DPTDepthModel


def depth_patcher(sd_model: Any, *, on_cpu: bool = False, offload: Callable[[], bool] = lambda: False) -> Any:
    """The checkpoint's MiDaS in a Forge ModelPatcher, built once per checkpoint file version.

    Loads on Forge's torch device (the CPU if `on_cpu`), in float16 where Forge's
    should_use_fp16 says so; stored and offloaded on the CPU. Its own forward hooks ask Forge's
    memory management for the device before each forward (evicting what Forge must) and, when
    `offload()` says so, take it back out after; otherwise Forge evicts it when it needs the room,
    as it does its own preprocessors. Building another checkpoint's drops the previous one.
    """
    from backend import memory_management
    from backend.patcher.base import ModelPatcher

    filename = checkpoint_file(sd_model)
    stat = os.stat(filename)
    load_device = torch.device("cpu") if on_cpu else memory_management.get_torch_device()
    key = (filename, stat.st_size, stat.st_mtime_ns, str(load_device))
    if key not in _patchers:
        for previous in _patchers.values():  # another checkpoint's (or device's): out of Forge's loaded models
            unload(previous)
        _patchers.clear()
        report = inspect_checkpoint(filename)  # the header: say what is wrong with the file before building
        if report.problem or not report.has_depth_weights:
            raise ValueError(f"{Path(filename).name}: {report.problem or 'holds no MiDaS depth weights'}")
        dtype = torch.float16 if memory_management.should_use_fp16(load_device) else torch.float32
        module = load_depth_model(filename, dpt_class=dpt_class(webui_root())).to(dtype=dtype).eval()
        module.requires_grad_(False)
        patcher = ModelPatcher(module, load_device=load_device, offload_device=torch.device("cpu"))

        def before_forward(*_: Any) -> None:  # returns None: the input stays as it is
            memory_management.load_models_gpu([patcher])

        def after_forward(*_: Any) -> None:  # returns None: the output stays as it is
            if patcher.depth2img_offload():
                unload(patcher)

        module.register_forward_pre_hook(before_forward)
        module.register_forward_hook(after_forward)
        _patchers[key] = patcher
    _patchers[key].depth2img_offload = offload  # the caller's, read at each forward
    return _patchers[key]


def unload(patcher: Any) -> None:
    """Take `patcher` out of Forge's loaded models and back to its offload device."""
    from backend import memory_management

    for index, loaded in enumerate(memory_management.current_loaded_models):
        if loaded.model is patcher:
            memory_management.current_loaded_models.pop(index).model_unload()
            return


def depth_network(sd_model: Any) -> torch.nn.Module:
    """The loaded depth checkpoint's MiDaS, placed by Forge (the user's depth device and offload
    options apply: "cpu" keeps it on the CPU, offload unloads it after each forward)."""
    from . import options

    on_cpu = options.read("depth2img_device") == "cpu"
    try:
        patcher = depth_patcher(sd_model, on_cpu=on_cpu, offload=lambda: bool(options.read("depth2img_offload")))
    except (ValueError, OSError) as error:  # no or unfit MiDaS weights, no MiDaS code: stops it, says why
        raise DepthInputError(f"depth2img: {error}") from None
    return patcher.model


def fill_reforge_depth_weights(sd_model: Any) -> None:
    """reForge (modules_forge/forge_loader.py load_model_for_a1111) instantiates
    LatentDepth2ImageDiffusion from the yaml, then takes only the UNet, VAE and text encoder from the
    checkpoint (load_checkpoint_guess_config): `sd_model.depth_model` keeps what ldm's MiDaS loader
    gave it (with the offline patch: no weights). Load the checkpoint's own, once per model and
    file version, in place (its device and dtype stay)."""
    depth_model = getattr(sd_model, "depth_model", None)
    if depth_model is None:
        return
    try:
        filename = checkpoint_file(sd_model)
        stat = os.stat(filename)
    except (ValueError, OSError) as error:
        raise DepthInputError(f"depth2img: {error}") from None
    key = (filename, stat.st_size, stat.st_mtime_ns)
    if getattr(depth_model, "depth2img_weights", None) == key:
        return
    network = getattr(depth_model, "model", depth_model)  # ldm's MiDaSInference wraps the DPTDepthModel
    try:
        network.load_state_dict(depth_model_state_dict(filename), strict=True)
    except ValueError as error:
        raise DepthInputError(f"depth2img: {error}") from None
    except RuntimeError as error:
        detail = str(error).splitlines()[0]
        raise DepthInputError(
            f"depth2img: {Path(filename).name}: its MiDaS weights do not fit DPT-Hybrid ({detail})"
        ) from None
    depth_model.depth2img_weights = key


def route_img2img_conditioning(p: Any) -> None:
    """Forge's img2img_image_conditioning (modules/processing.py) sends a 5-channel UNet to the
    inpainting conditioning; on this p it calls the depth conditioning instead, for img2img and
    inpaint (p.init, image in [-1, 1]) and the hires-fix pass (sample_hr_pass, image in [0, 1])."""

    def img2img_image_conditioning(source_image, latent_image, image_mask=None, round_image_mask=True):
        return p.depth2img_image_conditioning(source_image.float())

    p.img2img_image_conditioning = img2img_image_conditioning


def unet_input_placement() -> tuple[torch.device, torch.dtype]:
    """Forge's torch device (modules/devices.py), float32: KModel.apply_model casts the concatenated
    input to the UNet's computation dtype itself."""
    from modules import devices

    return devices.device, torch.float32


# --- the preview's inputs: Forge's img2img canvases (modules_forge/forge_canvas/canvas.py) -----------
# ForgeCanvas(elem_id=X) makes a gr.HTML with elem_id X, then two hidden LogicalImage textboxes
# (classes logical_image_foreground, logical_image_background) that carry the drawn strokes and
# the picture; modules/ui.py makes one per img2img sub-tab but "inpaint upload".
CANVASES = {
    "img2img_image": "init",
    "img2img_sketch": "sketch",
    "img2maskimg": "inpaint",
    "inpaint_sketch": "inpaint_sketch",
}
CANVAS_INPUTS = {f"{elem}_fg": ("img2img", f"{name}_fg") for elem, name in CANVASES.items()}
_canvas: list[str | None] = [None]  # the canvas whose LogicalImages come next (the UI is built in order)


def canvas_input_id(elem_id: str | None, elem_classes: Any) -> str | None:
    """The key the preview knows a canvas part by: its picture under the canvas's elem_id (as
    AUTOMATIC1111's image), its strokes under elem_id + "_fg"; None for the HTML block."""
    if elem_id in CANVASES:
        _canvas[0] = elem_id
        return None
    classes = [elem_classes] if isinstance(elem_classes, str) else list(elem_classes or [])
    canvas = _canvas[0]
    if canvas and "logical_image_foreground" in classes:
        return f"{canvas}_fg"
    if canvas and "logical_image_background" in classes:
        _canvas[0] = None
        return canvas
    return elem_id


def tab_image_and_mask(tab: int, values: dict[str, Any]) -> tuple[Any, Any]:
    """(image, mask) of an img2img sub-tab as Forge's modules/img2img.py:160-180 builds them from
    the canvases: sketches composited over the picture, inpaint masks from the strokes' alpha
    (thresholded at 128, inpaint sketch's dilated by 1.5 % of the short side)."""
    from PIL import Image, ImageFilter

    def composite(name: str) -> Any:
        picture, strokes = values.get(name), values.get(f"{name}_fg")
        if picture is None or strokes is None:
            return picture
        return Image.alpha_composite(picture.convert("RGBA"), strokes.convert("RGBA").resize(picture.size))

    def stroke_mask(name: str, dilate: bool = False) -> Any:
        picture, strokes = values.get(name), values.get(f"{name}_fg")
        if picture is None or strokes is None:
            return None
        mask = strokes.convert("RGBA").resize(picture.size).getchannel("A")
        if dilate:
            mask = mask.filter(ImageFilter.MaxFilter(int(0.015 * min(mask.size)) * 2 + 1))
        return mask.point(lambda v: 255 if v > 128 else 0)

    if tab == 1:
        return composite("sketch"), None
    if tab == 2:
        return values.get("inpaint"), stroke_mask("inpaint")
    if tab == 3:
        return composite("inpaint_sketch"), stroke_mask("inpaint_sketch", dilate=True)
    if tab == 4:
        return values.get("inpaint_base"), values.get("inpaint_mask")
    return values.get("init"), None
