"""Write a tiny SD 2 depth checkpoint (+ its yaml) that a real WebUI loads, for the live tests.

    python tests/live/make_tiny_depth_checkpoint.py OUT.safetensors [--seed N]

Run it with the WebUI's Python and `ldm` importable (its repositories/stable-diffusion-stability-ai
on PYTHONPATH). The structure is the depth config's (LatentDepth2ImageDiffusion, hybrid
conditioning, MiDaS DPT-Hybrid at full size) with a tiny UNet and VAE and an OpenCLIP ViT-B-32 text
tower (context 512); weights are random, the MiDaS head biased so depth maps have structure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from lib_depth.depth.midas import offline_load_model  # noqa: E402
from lib_depth.models.model_config import BUNDLED_CONFIG  # noqa: E402


def tiny_config() -> str:
    import yaml

    config = yaml.safe_load(BUNDLED_CONFIG.read_text())
    params = config["model"]["params"]
    params["unet_config"]["params"].update(
        model_channels=32,
        channel_mult=[1, 2],
        num_res_blocks=1,
        attention_resolutions=[1],
        num_head_channels=32,
        context_dim=512,
    )
    ddconfig = params["first_stage_config"]["params"]["ddconfig"]
    ddconfig.update(ch=32, num_res_blocks=1)
    params["cond_stage_config"]["params"].update(arch="ViT-B-32", version=None)
    header = "# Tiny random-weight SD 2 depth model for live tests of sd-webui-depth2img (not for images).\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import ldm.modules.midas.api as midas_api
    from ldm.util import instantiate_from_config
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    config_text = tiny_config()
    config = OmegaConf.create(config_text)
    torch.manual_seed(args.seed)
    # random MiDaS weights: build the structure without ldm's weights file
    original = midas_api.load_model
    midas_api.load_model = offline_load_model(original, original, midas_api.ISL_PATHS, lambda: True)
    model = instantiate_from_config(config.model)
    head = model.depth_model.model.scratch.output_conv[4]
    with torch.no_grad():
        head.weight.mul_(20.0)
        head.bias.fill_(0.5)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.output))
    args.output.with_suffix(".yaml").write_text(config_text)
    size = args.output.stat().st_size / 2**20
    print(f"wrote {args.output} ({len(state)} tensors, {size:.0f} MiB) and {args.output.with_suffix('.yaml').name}")


if __name__ == "__main__":
    main()
