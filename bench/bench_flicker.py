"""Flicker of the depth conditioning over a sequence: per image vs shared vs smoothed normalisation.

    python bench/bench_flicker.py [--frames N] [--size PX]

A synthetic sequence of user depth maps (16-bit PNGs written to a temporary folder, read back as a
user's folder would be; no model weights): the background is fixed and a ball comes towards the
camera. Metric: the mean absolute frame-to-frame change of the conditioning ([-1, 1]) over the
static background, away from the ball. "span" is the mean part of [-1, 1] a frame uses (the model
was trained on frames spanning all of it). "static" checks that a sequence of one repeated frame
gives bit-identical conditioning in this mode and per image.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from sequences import approaching_object, background_flicker, background_mask, write_depth_maps  # noqa: E402

from lib_depth import DepthSettings, depth_to_tensor, load_depth_map  # noqa: E402
from lib_depth.conditioning import conditioning_sequence  # noqa: E402
from lib_depth.io.pairing import expand_image_inputs  # noqa: E402
from lib_depth.normalise import DEFAULT_TIME_CONSTANT  # noqa: E402

ROWS = [
    ("per image", {"mode": "per image"}),
    ("shared", {"mode": "shared"}),
    ("shared, 0.5 % percentile", {"mode": "shared", "percentile": 0.5}),
    ("smoothed, tau 12", {"mode": "smoothed", "time_constant": 12.0}),
    ("smoothed, tau 48", {"mode": "smoothed", "time_constant": 48.0}),
    ("smoothed, tau 120", {"mode": "smoothed", "time_constant": 120.0}),
    (f"smoothed, tau {DEFAULT_TIME_CONSTANT:g} (default)", {"mode": "smoothed"}),
]
SETTINGS = [("no edits", DepthSettings()), ("gamma 1.5, blur 8", DepthSettings(gamma=1.5, blur=8.0))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    size, latent = (args.size, args.size), (args.size // 8, args.size // 8)
    with tempfile.TemporaryDirectory() as folder:
        paths = write_depth_maps(Path(folder), approaching_object(args.frames, args.size, args.size))
        depths = [depth_to_tensor(load_depth_map(path)) for path in expand_image_inputs([folder])]
    mask = background_mask(args.frames, args.size, args.size, latent)
    print(f"{len(paths)} frames {args.size}x{args.size}, latent {latent[1]}x{latent[0]}, {int(mask.sum())} background")
    print(f"{'edits':<18} {'mode':<32} {'flicker':>10} {'vs per image':>13} {'span':>6} {'static':>7}", flush=True)
    for label, settings in SETTINGS:
        baseline = None
        static = [depths[0]] * 6
        for name, options in ROWS:
            conditionings = conditioning_sequence(depths, latent, settings, image_size=size, **options)
            flicker = background_flicker(conditionings, mask)
            baseline = flicker if baseline is None else baseline
            ratio = f"{baseline / flicker:.1f}x" if flicker > 0 else "no change"
            span = sum(float(c.max() - c.min()) / 2 for c in conditionings) / len(conditionings)
            per_image = {**options, "mode": "per image"}  # same percentile
            reference = conditioning_sequence(static[:1], latent, settings, image_size=size, **per_image)[0]
            identical = all(
                torch.equal(c, reference)
                for c in conditioning_sequence(static, latent, settings, image_size=size, **options)
            )
            print(f"{label:<18} {name:<32} {flicker:>10.5f} {ratio:>13} {span:>6.2f} {str(identical):>7}", flush=True)


if __name__ == "__main__":
    main()
