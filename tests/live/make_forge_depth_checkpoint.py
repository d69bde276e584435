"""Write a random-weight SD 2 depth checkpoint that Forge loads, for live tests against Forge.

    python tests/live/make_forge_depth_checkpoint.py OUT.safetensors [--seed N] [--dtype fp16|fp32]

Run it with a Python where Stability's `ldm` (PyPI stable-diffusion-sdkit, --no-deps), open_clip,
timm and this project's `lib_depth` import (the project's test venv). Forge builds the text encoder
and VAE from its bundled SD 2.1 configs, so those are full size (OpenCLIP ViT-H text tower, the SD
VAE). Forge's model detection (huggingface_guess `SD20`) only asks of the UNet that it has
model_channels 320, context_dim 1024 and linear transformer projections; everything else (levels,
blocks, transformer depth) is read from the weights, so the UNet here has one level with one res
block and one transformer block (4+1 input channels, as in 512-depth-ema). The MiDaS DPT-Hybrid is
full size under `depth_model.model.*`, its head biased so random-weight depth maps have structure.
No yaml is written: Forge does not need one (it only reads a yaml beside the file for v-prediction).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

PROJECT = Path(__file__).resolve().parents[2]


def tiny_unet() -> torch.nn.Module:
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    return UNetModel(
        image_size=32,
        in_channels=5,
        out_channels=4,
        model_channels=320,  # huggingface_guess SD20 requires 320
        attention_resolutions=[1],
        num_res_blocks=1,
        channel_mult=[1],
        num_head_channels=64,
        use_spatial_transformer=True,
        use_linear_in_transformer=True,  # SD20 requires linear proj_in/proj_out
        transformer_depth=1,
        context_dim=1024,  # SD20 requires 1024 (OpenCLIP-H)
        legacy=False,
    )


def full_vae() -> torch.nn.Module:
    from ldm.models.autoencoder import AutoencoderKL

    ddconfig = dict(
        double_z=True,
        z_channels=4,
        resolution=256,
        in_channels=3,
        out_ch=3,
        ch=128,
        ch_mult=[1, 2, 4, 4],
        num_res_blocks=2,
        attn_resolutions=[],
        dropout=0.0,
    )
    return AutoencoderKL(ddconfig=ddconfig, lossconfig={"target": "torch.nn.Identity"}, embed_dim=4)


def full_text_encoder() -> torch.nn.Module:
    from ldm.modules.encoders.modules import FrozenOpenCLIPEmbedder

    # version=None: open_clip builds ViT-H-14 with random weights, nothing downloaded
    return FrozenOpenCLIPEmbedder(arch="ViT-H-14", version=None, device="cpu", layer="penultimate")


def full_midas() -> torch.nn.Module:
    sys.path.insert(0, str(PROJECT))
    from lib_depth.depth.midas import build_dpt_hybrid

    model = build_dpt_hybrid()
    head = model.scratch.output_conv[4]
    with torch.no_grad():
        head.weight.mul_(20.0)
        head.bias.fill_(0.5)
    return model


def prefixed(prefix: str, module: torch.nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in module.state_dict().items():
        if value.is_floating_point():
            value = value.to(dtype)
        out[prefix + key] = value.detach().contiguous()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=["fp16", "fp32"], default="fp16")
    args = parser.parse_args()
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32

    from safetensors.torch import save_file

    torch.manual_seed(args.seed)
    state: dict[str, torch.Tensor] = {}
    started = time.perf_counter()
    for prefix, build in (
        ("model.diffusion_model.", tiny_unet),
        ("first_stage_model.", full_vae),
        ("cond_stage_model.", full_text_encoder),
        ("depth_model.model.", full_midas),
    ):
        module = build()
        part = prefixed(prefix, module, dtype)
        state.update(part)
        count = sum(v.numel() for v in part.values())
        seconds = time.perf_counter() - started
        print(f"{prefix:24s} {len(part):5d} tensors {count / 1e6:8.1f} M values ({seconds:.0f} s)")
        del module
    # ldm's LatentDiffusion keeps its noise schedule as buffers; real checkpoints carry them
    betas = torch.linspace(0.00085**0.5, 0.0120**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    state["betas"] = betas.float()
    state["alphas_cumprod"] = alphas_cumprod.float()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.output))
    size = args.output.stat().st_size / 2**20
    print(f"wrote {args.output} ({len(state)} tensors, {size:.0f} MiB)")


if __name__ == "__main__":
    main()
