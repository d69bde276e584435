"""Depth conditioning speed on the CPU: the WebUI's native recipe vs the engine.

    python bench/bench_conditioning.py [--repeats N] [--threads N]

Uses a real DPT-Hybrid with seeded random weights (same cost as the real weights). The native
recipe is WebUI v1.10.1's depth2img_image_conditioning without its VAE encode (which only learns
the latent size and is skipped here, flattering the native side): AddMiDaS on the first image,
repeated to the batch size, one forward of the whole batch, global normalisation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from models import build_random_dpt_hybrid  # noqa: E402
from reference import webui_native_conditioning  # noqa: E402
from scenes import make_scene  # noqa: E402

from lib_depth import DepthCache, DepthEstimator, depth_to_conditioning, image_to_tensor  # noqa: E402


def timed(repeats: int, function, *args) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = build_random_dpt_hybrid()

    def ours(images, latent, cache=None):
        return depth_to_conditioning(DepthEstimator(model, cache=cache).estimate(images), latent)

    def ours_one_by_one(images, latent):
        return [ours(images[i : i + 1], latent) for i in range(len(images))]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}", flush=True)
    print(f"| {'size':8} | {'case':40} | {'reference s':>11} | {'ours s':>9} | {'speed-up':>8} |")
    print(f"|{'-' * 10}|{'-' * 42}|{'-' * 13}|{'-' * 11}|{'-' * 10}|", flush=True)

    for width, height in ((512, 512), (768, 512)):
        latent = (height // 8, width // 8)
        one = image_to_tensor(make_scene(width, height, 1))
        same = one.repeat(4, 1, 1, 1)
        distinct = image_to_tensor([make_scene(width, height, seed) for seed in range(4)])
        size = f"{width}x{height}"

        print_row(
            (
                size,
                "B=1 fresh image",
                timed(args.repeats, webui_native_conditioning, model, one, latent),
                timed(args.repeats, ours, one, latent),
            )
        )
        print_row(
            (
                size,
                "B=4 identical",
                timed(args.repeats, webui_native_conditioning, model, same, latent),
                timed(args.repeats, ours, same, latent),
            )
        )
        sequential = timed(args.repeats, ours_one_by_one, distinct, latent)
        print_row(
            (
                size,
                "B=4 distinct (ref: ours, 4 sequential)",
                sequential,
                timed(args.repeats, ours, distinct, latent),
            )
        )
        cache = DepthCache()
        ours(one, latent, cache)
        print_row(
            (
                size,
                "B=1 cache hit (ref: native)",
                timed(1, webui_native_conditioning, model, one, latent),
                timed(max(args.repeats, 5), ours, one, latent, cache),
            )
        )


def print_row(values: tuple[str, str, float, float]) -> None:
    """One table row, printed (and flushed) as soon as it is measured: a run takes minutes."""
    size, case, reference, mine = values
    mine_text = f"{mine * 1000:.1f} ms" if mine < 0.1 else f"{mine:.3f}"
    print(f"| {size:8} | {case:40} | {reference:11.3f} | {mine_text:>9} | {reference / mine:7.1f}x |", flush=True)


if __name__ == "__main__":
    main()
