"""A small frame sequence, a seeded random Depth Anything V2 Small, and the 16-bit maps the command
line wrote for it before long sequences were streamed (tests/data/sequence-golden.npz): streaming
must not change them. `python tests/sequence_golden.py` rewrites the file (only from known-good code).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "sequence-golden.npz"
WIDTH, HEIGHT, FRAMES = 96, 64, 7

# (name, extra command-line options): every mode, with and without percentiles and edits
CASES = {
    "per-image-percentile": ["--normalise", "per-image", "--percentile", "2"],
    "shared": ["--normalise", "shared"],
    "shared-percentile-edits": ["--normalise", "shared", "--percentile", "1.5", "--gamma", "1.4", "--blur", "3"],
    "smoothed": ["--normalise", "smoothed", "--time-constant", "3"],
    "smoothed-percentile-edits": ["--normalise", "smoothed", "--percentile", "1", "--invert", "--far", "0.1"],
}


def write_frames(folder: Path) -> list[Path]:
    """A camera panning across one scene, then a cut to another (the smoothed range resets there)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from scenes import make_scene

    folder.mkdir(parents=True, exist_ok=True)
    wide, other = make_scene(WIDTH + 40, HEIGHT, 5), make_scene(WIDTH + 40, HEIGHT, 11)
    paths = []
    for index in range(FRAMES):
        scene, shift = (wide, 6 * index) if index < FRAMES - 2 else (other, 10 * index - 40)
        path = folder / f"frame_{index + 1}.png"
        scene.crop((shift, 0, shift + WIDTH, HEIGHT)).save(path)
        paths.append(path)
    return paths


def write_weights(folder: Path) -> Path:
    import torch

    from lib_depth.depth.estimators.depth_anything_v2 import build_depth_anything_v2

    torch.manual_seed(0)
    model = build_depth_anything_v2("vits")
    with torch.no_grad():
        model.depth_head.scratch.output_conv2[2].bias.fill_(0.5)
    path = folder / "depth_anything_v2_vits.pth"
    torch.save(model.state_dict(), path)
    return path


def run_cases(folder: Path, main) -> dict[str, np.ndarray]:  # noqa: ANN001 (the command line's main)
    """Each case's maps, [frames, H, W] uint16, as `main` (the command line) writes them."""
    frames = write_frames(folder / "frames")
    weights = write_weights(folder)
    maps = {}
    for name, options in CASES.items():
        out = folder / name
        arguments = ["depth", str(folder / "frames"), "--estimator", "depth-anything-v2-small",
                     "--estimator-weights", str(weights), "--resolution", "140", "-o", str(out), *options]  # fmt: skip
        assert main(arguments) == 0, name
        maps[name] = np.stack([np.asarray(Image.open(out / f"{p.stem}-depth.png")) for p in frames]).astype(np.uint16)
    return maps


if __name__ == "__main__":
    import tempfile

    sys.path.insert(0, str(ROOT))
    from lib_depth.cli.main import main as cli_main

    with tempfile.TemporaryDirectory() as scratch:
        np.savez_compressed(GOLDEN, **run_cases(Path(scratch), cli_main))
    print(f"wrote {GOLDEN}")
