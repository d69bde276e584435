"""Tiny synthetic checkpoints with the real key names (and real shapes where checks read them)."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

from lib_depth.models.checkpoint import CONTEXT_KEY, DEPTH_KEY, SDXL_KEY, UNET_INPUT_KEY

SD2_TEXT_KEY = "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"


def state_dict(kind: str = "depth", dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """A few real-named tensors: enough for every check the doctor makes."""
    channels = {"depth": 5, "sd2-inpainting": 9, "sd1-inpainting": 9, "depth-4ch": 4}.get(kind, 4)
    context = 768 if kind.startswith("sd1") else 1024
    tensors = {
        UNET_INPUT_KEY: torch.randn(32, channels, 3, 3),
        CONTEXT_KEY: torch.randn(32, context),
        "model.diffusion_model.out.2.bias": torch.zeros(4),
        "first_stage_model.decoder.conv_out.bias": torch.zeros(3),
    }
    if context == 1024:
        tensors[SD2_TEXT_KEY] = torch.randn(8, 1024)
    if kind.startswith("depth"):
        tensors[DEPTH_KEY] = torch.randn(256)
    if kind == "sdxl":
        tensors[SDXL_KEY] = torch.randn(1280)
    return {name: value.to(dtype) for name, value in tensors.items()}


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def write_ckpt(
    path: Path, tensors: dict[str, torch.Tensor], *, legacy: bool = False, extra: dict | None = None
) -> Path:
    torch.save({"state_dict": tensors, **(extra or {})}, path, _use_new_zipfile_serialization=not legacy)
    return path


def write_lightning_ckpt(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    """Like a PyTorch Lightning checkpoint: a callback object and a global step beside the weights."""
    module = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class ModelCheckpoint:
        def __init__(self) -> None:
            self.monitor = "val/loss"
            self.best_model_score = torch.tensor(0.25)

    ModelCheckpoint.__module__ = module.__name__
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    module.ModelCheckpoint = ModelCheckpoint
    names = ("pytorch_lightning", "pytorch_lightning.callbacks", module.__name__)
    saved = {name: sys.modules.get(name) for name in names}
    for name in names[:-1]:
        sys.modules[name] = types.ModuleType(name)
    sys.modules[module.__name__] = module
    try:
        torch.save(
            {"state_dict": tensors, "global_step": 12345, "callbacks": {"ModelCheckpoint": ModelCheckpoint()}}, path
        )
    finally:
        for name, value in saved.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value
    return path


class RunsCode:
    """Pickles as a call to os.system: loading it with plain pickle would run the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path
