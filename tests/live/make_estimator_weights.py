"""Random-weight Depth Anything V2 weights for a test WebUI's models/depth2img folder, in the
original release layout (depth_anything_v2_vit{s,b,l}.pth) and, with --hf, the Hugging Face layout.

    python tests/live/make_estimator_weights.py /path/to/webui/models/depth2img [--encoder vits|vitb|vitl] [--hf]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lib_depth.depth.estimators.dav2_weights import original_to_hf
from lib_depth.depth.estimators.depth_anything_v2 import build_depth_anything_v2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--encoder", choices=["vits", "vitb", "vitl"], default="vits", help="small, base, large")
    parser.add_argument("--hf", action="store_true", help="also the Hugging Face layout, as safetensors")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_depth_anything_v2(args.encoder)
    with torch.no_grad():  # a varied, positive map through the final ReLU
        model.depth_head.scratch.output_conv2[2].bias.fill_(0.5)
    args.folder.mkdir(parents=True, exist_ok=True)
    target = args.folder / f"depth_anything_v2_{args.encoder}.pth"
    if target.exists():
        raise SystemExit(f"{target} exists; not overwritten")
    torch.save(model.state_dict(), target)
    print(target)
    if args.hf:
        from safetensors.torch import save_file

        hf = args.folder / f"depth_anything_v2_{args.encoder}-hf.safetensors"
        save_file({k: v.contiguous() for k, v in original_to_hf(model.state_dict()).items()}, str(hf))
        print(hf)


if __name__ == "__main__":
    main()
