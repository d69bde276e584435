"""Stand-ins for the Forge API surface the extension touches, on top of tests/webui_fakes.py.

Each mirrors lllyasviel/stable-diffusion-webui-forge at commit dfdcbab (2025-06-26), file and line
named beside it, written anew from that behaviour and only as far as the extension uses it; the
forks' markers are from Panchovix/stable-diffusion-webui-reForge 3b56b268 and
Haoming02/sd-webui-forge-classic (branches classic and neo). `install(monkeypatch, kind=...)` puts
them into sys.modules for one test. Nothing here imports Forge.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import webui_fakes

FORGE_VERSIONS = {  # modules_forge/forge_version.py `version` of each
    "forge": "2.0.1v1.10.1",  # Forge dfdcbab
    "forge-no-sd2": "2.0.1v1.10.1",  # a Forge whose backend has no diffusion_engine/sd20.py
    "reforge": "1.0.0v2-v1.10.1RC",  # reForge 3b56b268: modules_forge + ldm_patched + ldm, no backend/
    "classic": "classic",  # Forge Classic
    "neo": "neo",  # Forge Neo (its file also has release = "2.22")
}


def module(name: str, *, package: bool = False, **attributes: Any) -> types.ModuleType:
    """A module find_spec can see in sys.modules (it reads __spec__)."""
    created = types.ModuleType(name)
    created.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=package)
    if package:
        created.__path__ = []
    created.__dict__.update(attributes)
    return created


# --- backend/memory_management.py -----------------------------------------------------------------
class LoadedModel:
    """memory_management.py:410 LoadedModel: wraps a patcher; equal when it wraps the same one (:548)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.device = model.load_device

    def model_load(self) -> torch.nn.Module:  # :456: weights to the load device
        self.model.model.to(self.model.load_device)
        self.model.current_device = self.model.load_device
        return self.model.model

    def model_unload(self, avoid_model_moving: bool = False) -> None:  # :525 -> base.py:272 forge_unpatch_model
        if not avoid_model_moving:
            self.model.model.to(self.model.offload_device)
            self.model.current_device = self.model.offload_device

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LoadedModel) and self.model is other.model


@dataclass
class MemoryManagement:
    """The functions of backend/memory_management.py the extension calls, with a call log."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    fp16: bool = False
    current_loaded_models: list = field(default_factory=list)  # :288, most recent first
    loads: list = field(default_factory=list)

    def get_torch_device(self) -> torch.device:  # :86 (cpu under --always-cpu)
        return self.device

    def should_use_fp16(self, device: Any = None, model_params: int = 0, prioritize_performance: bool = True,
                        manual_cast: bool = False) -> bool:  # fmt: skip  # :1070: False on the CPU
        return self.fp16 and not (device is not None and torch.device(device).type == "cpu")

    def load_models_gpu(self, models: list, memory_required: int = 0, hard_memory_preservation: int = 0) -> None:
        """:614: an already loaded model moves to the front; a new one is loaded and put first."""
        for patcher in models:
            self.loads.append(patcher)
            loaded = LoadedModel(patcher)
            if loaded in self.current_loaded_models:
                index = self.current_loaded_models.index(loaded)
                self.current_loaded_models.insert(0, self.current_loaded_models.pop(index))
                continue
            loaded.model_load()
            self.current_loaded_models.insert(0, loaded)

    def as_module(self) -> types.ModuleType:
        return module(
            "backend.memory_management",
            get_torch_device=self.get_torch_device,
            should_use_fp16=self.should_use_fp16,
            load_models_gpu=self.load_models_gpu,
            current_loaded_models=self.current_loaded_models,
            LoadedModel=LoadedModel,
        )


class ModelPatcher:
    """backend/patcher/base.py:52: any nn.Module with its load and offload devices."""

    def __init__(self, model: torch.nn.Module, load_device: Any, offload_device: Any, size: int = 0,
                 current_device: Any = None, **kwargs: Any) -> None:  # fmt: skip
        self.model = model
        self.load_device = load_device
        self.offload_device = offload_device
        self.size = size
        self.current_device = offload_device if current_device is None else current_device


# --- the loaded engine: backend/diffusion_engine/sd20.py StableDiffusion2 ---------------------------
class TinyUNet(torch.nn.Module):
    """backend/nn/unet.py IntegratedUNet2DConditionModel, as far as read: `in_channels` (:498) and the
    first conv `input_blocks[0][0]` that gets latent + c_concat (:713 -> :89)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        torch.manual_seed(0)
        self.input_blocks = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Conv2d(in_channels, 8, 3, padding=1))])
        self.received: list[torch.Tensor] = []  # what reached the first conv, per call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.received.append(x.detach().clone())
        return self.input_blocks[0](x)


@dataclass
class UnetPatcher:
    """backend/patcher/unet.py:24: `model.diffusion_model`, `extra_concat_condition` (None by default)."""

    model: Any
    extra_concat_condition: Any = None


@dataclass
class StableDiffusion2:
    """backend/diffusion_engine/sd20.py + base.py:24-35 as the extension sees it: no `dtype`, no
    `depth_model` (the loader drops depth_model.*), `is_inpaint` = in_channels > 4 (base.py:28,
    huggingface_guess model_list.py:60), `is_sd2` (sd20.py:58), and sd_models.py:509-510's file."""

    filename: str
    in_channels: int = 5
    is_sd2: bool = True
    forge_objects: Any = None
    sd_checkpoint_info: Any = None
    model_config: Any = None
    is_inpaint: bool = False

    def __post_init__(self) -> None:
        unet = TinyUNet(self.in_channels)
        self.forge_objects = types.SimpleNamespace(unet=UnetPatcher(types.SimpleNamespace(diffusion_model=unet)))
        self.model_config = types.SimpleNamespace(unet_config={"in_channels": self.in_channels})
        self.is_inpaint = self.in_channels > 4
        name = Path(self.filename).name
        self.sd_checkpoint_info = types.SimpleNamespace(
            filename=self.filename, name=name, name_for_extra=Path(name).stem, sha256=None
        )

    @property
    def unet(self) -> TinyUNet:
        return self.forge_objects.unet.model.diffusion_model

    def encode_first_stage(self, image: torch.Tensor) -> torch.Tensor:
        """The VAE encode, shape only: [B, 3, H, W] -> [B, 4, H/8, W/8]."""
        pooled = torch.nn.functional.avg_pool2d(image, 8)
        return torch.cat([pooled, pooled.mean(1, keepdim=True)], dim=1)

    def get_first_stage_encoding(self, encoded: torch.Tensor) -> torch.Tensor:
        return encoded


def sample_step(sd_model: StableDiffusion2, x: torch.Tensor, image_cond: Any) -> torch.Tensor:
    """One UNet call as Forge makes it: sampling_function.py:335-350 (extra_concat_condition replaces
    image_cond; it is attached as c_concat only when batch, height and width match x) then
    k_model.py:28-29 (torch.cat([x, c_concat], dim=1)) into the UNet."""
    unet_patcher = sd_model.forge_objects.unet
    cond = unet_patcher.extra_concat_condition if unet_patcher.extra_concat_condition is not None else image_cond
    xc = x
    if isinstance(cond, torch.Tensor) and cond.shape[0] == x.shape[0] and cond.shape[2:] == x.shape[2:]:
        xc = torch.cat([x, cond.to(x.device)], dim=1)
    return sd_model.unet(xc.to(torch.float32))


# --- modules/processing.py (Forge dfdcbab) ----------------------------------------------------------
class ForgeConditioning:
    """The conditioning methods of StableDiffusionProcessing in Forge: img2img_image_conditioning
    (:360-376, no depth branch: a 5-channel UNet is `is_inpaint` and gets the inpainting one),
    inpainting_image_conditioning (:321-358, mask + VAE-encoded masked image), txt2img (:300-303 ->
    :103-114), depth2img_image_conditioning raising (:305-306)."""

    def depth2img_image_conditioning(self, source_image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("NotImplementedError: depth2img_image_conditioning")

    def inpainting_image_conditioning(self, source_image, latent_image, image_mask=None, round_image_mask=True):
        self.is_using_inpainting_conditioning = True
        mask = source_image.new_ones(1, 1, *source_image.shape[-2:])
        image = self.sd_model.get_first_stage_encoding(self.sd_model.encode_first_stage(source_image * (1.0 - mask)))
        mask = torch.nn.functional.interpolate(mask, size=latent_image.shape[-2:]).expand(image.shape[0], -1, -1, -1)
        return torch.cat([mask, image], dim=1)

    def img2img_image_conditioning(self, source_image, latent_image, image_mask=None, round_image_mask=True):
        source_image = source_image.float()  # devices.cond_cast_float
        if self.sd_model.is_inpaint:
            return self.inpainting_image_conditioning(source_image, latent_image, image_mask, round_image_mask)
        return latent_image.new_zeros(latent_image.shape[0], 5, 1, 1)

    def txt2img_image_conditioning(self, x, width=None, height=None):
        self.is_using_inpainting_conditioning = self.sd_model.is_inpaint
        if self.sd_model.is_inpaint:
            grey = torch.ones(x.shape[0], 3, height or self.height, width or self.width) * 0.5
            encoded = self.sd_model.encode_first_stage(grey)
            return torch.nn.functional.pad(encoded, (0, 0, 0, 0, 1, 0), value=1.0).to(x.dtype)
        return x.new_zeros(x.shape[0], 5, 1, 1, dtype=x.dtype, device=x.device)


@dataclass
class Img2Img(ForgeConditioning, webui_fakes.Img2Img):
    """StableDiffusionProcessingImg2Img: the fields read (processing.py:1640-1700)."""


@dataclass
class Txt2Img(ForgeConditioning, webui_fakes.Txt2Img):
    """StableDiffusionProcessingTxt2Img: no init_images; is_hr_pass set by sample_hr_pass (:1430)."""

    is_hr_pass: bool = False


def img2img_init(p: Img2Img, images: torch.Tensor) -> torch.Tensor:
    """StableDiffusionProcessingImg2Img.init's last step (:1842): the prepared images in [0, 1]
    -> image_conditioning, with the init latent."""
    p.init_latent = p.sd_model.encode_first_stage(images * 2 - 1)
    return p.img2img_image_conditioning(images * 2 - 1, p.init_latent, p.image_mask, True)


def hires_conditioning(p: Txt2Img, decoded_samples: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
    """sample_hr_pass with a non-latent upscaler (:1489): decoded images in [0, 1], upscaled latents."""
    p.is_hr_pass = True
    return p.img2img_image_conditioning(decoded_samples, samples)


# --- modules_forge/forge_canvas/canvas.py ForgeCanvas, as modules/ui.py:588-600 makes them ---------------
def forge_canvas(script: Any, gr: types.ModuleType, elem_id: str) -> tuple[Any, Any]:
    """ForgeCanvas.__init__ (:148-150): a gr.HTML with elem_id, then the foreground and background
    LogicalImage (gr.Textbox subclasses, elem_id = a uuid); the WebUI's after_component hook
    (modules/gradio_extensions.py:28-43) calls every script's after_component with each one's kwargs.
    Returns (foreground, background)."""
    uuid = "uuid_0123456789abcdef"
    made = []
    for kind, kwargs in (
        (gr.HTML, {"value": "<div class='forge-image-container'></div>", "elem_id": elem_id}),
        (gr.Textbox, {"label": "foreground", "elem_id": uuid, "elem_classes": ["logical_image_foreground"]}),
        (gr.Textbox, {"label": "background", "elem_id": uuid, "elem_classes": ["logical_image_background"]}),
    ):
        component = kind(**kwargs)
        script.after_component(component, **kwargs)
        made.append(component)
    return made[1], made[2]


# --- the whole set ------------------------------------------------------------------------------------
@dataclass
class Forge:
    webui: webui_fakes.WebUI
    memory: MemoryManagement
    root: Path


def install(monkeypatch, root: Path, *, kind: str = "forge", sd_model: Any = None, **cmd_opts: Any) -> Forge:
    """The AUTOMATIC1111 fakes plus Forge's modules for `kind` (see FORGE_VERSIONS); `root` is the
    WebUI folder (modules/paths_internal.py script_path). Forge 2 and its forks have no ldm."""
    webui = webui_fakes.install(monkeypatch, sd_model=sd_model, **cmd_opts)
    memory = MemoryManagement()
    modules = {
        "modules_forge": module("modules_forge", package=True),
        "modules_forge.forge_version": module("modules_forge.forge_version", version=FORGE_VERSIONS[kind]),
        "modules.paths_internal": module("modules.paths_internal", script_path=str(root)),
    }
    if kind != "reforge":
        # import ldm(.anything) -> ImportError, as in Forge 2, Classic and Neo
        modules.update({name: None for name in list(sys.modules) if name == "ldm" or name.startswith("ldm.")})
        modules["ldm"] = None
        modules["backend"] = module("backend", package=True)
        modules["backend.diffusion_engine"] = module("backend.diffusion_engine", package=True)
        modules["backend.memory_management"] = memory.as_module()
        modules["backend.patcher"] = module("backend.patcher", package=True)
        modules["backend.patcher.base"] = module("backend.patcher.base", ModelPatcher=ModelPatcher)
        if kind == "forge":
            modules["backend.diffusion_engine.sd20"] = module("backend.diffusion_engine.sd20")
        # modules/shared.py:26 `device: str = None` in Forge; modules/devices.py:52 is the real one
        webui.shared.device = None
    for name, created in modules.items():
        monkeypatch.setitem(sys.modules, name, created)
        parent, _, child = name.rpartition(".")
        if created is not None and parent in sys.modules and sys.modules[parent] is not None:
            monkeypatch.setattr(sys.modules[parent], child, created, raising=False)
    return Forge(webui, memory, root)
