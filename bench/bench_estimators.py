"""Depth estimator cost on the CPU: time per image and peak memory, per estimator and resolution.

    python bench/bench_estimators.py [--repeats N] [--threads N]

Real architectures with random weights (the cost does not depend on the values): the WebUI's
DPT-Hybrid (MiDaSInference) and Depth Anything V2 built by the engine. Each row runs in its own
subprocess so that its memory is its own: "peak RSS" is that process's resource.getrusage
ru_maxrss (resident set high-water mark, which tracemalloc cannot see for torch's allocations);
"model RSS" is the same mark right after the model was built, so the difference is what the
forward (input preparation, activations, output) adds at its peak. Time is the median of
`--repeats` estimates of one image through DepthEstimator (no cache), after a small warm-up.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

ROWS = (
    ("dpt-hybrid", 384),
    ("dpt-hybrid", 768),
    ("depth-anything-v2-small", 518),
)
IMAGES = ((512, 512), (1024, 768))


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def build(name: str) -> torch.nn.Module:
    if name == "dpt-hybrid":
        from models import build_random_dpt_hybrid

        return build_random_dpt_hybrid()
    from lib_depth.depth.estimators.depth_anything_v2 import build_depth_anything_v2

    encoder = {"small": "vits", "base": "vitb", "large": "vitl"}[name.rsplit("-", 1)[1]]
    torch.manual_seed(0)
    return build_depth_anything_v2(encoder)


def measure(name: str, resolution: int, width: int, height: int, repeats: int, threads: int) -> dict:
    """One row, in this process."""
    from scenes import make_scene

    from lib_depth import DepthEstimator, image_to_tensor
    from lib_depth.depth.estimators import get_estimator

    torch.set_num_threads(threads)
    model = build(name)
    model_rss = max_rss_mib()
    estimator = DepthEstimator(model, estimator=name, resolution=resolution)
    estimator.estimate(image_to_tensor(make_scene(64, 64, 0)))  # kernels, thread pool
    image = image_to_tensor(make_scene(width, height, 1))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        depth = estimator.estimate(image)
        times.append(time.perf_counter() - start)
    input_h, input_w = get_estimator(name).input_size(height, width, resolution)
    return {
        "seconds": statistics.median(times),
        "model_rss": model_rss,
        "peak_rss": max_rss_mib(),
        "input": f"{input_w}x{input_h}",
        "output": f"{depth.shape[-1]}x{depth.shape[-2]}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--row", nargs=4, metavar=("NAME", "RESOLUTION", "WIDTH", "HEIGHT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        name, resolution, width, height = args.row[0], *map(int, args.row[1:])
        print(json.dumps(measure(name, resolution, width, height, args.repeats, args.threads)))
        return

    print(f"CPU, {args.threads} thread(s), median of {args.repeats}; memory = ru_maxrss of a process per row")
    header = f"{'estimator':<26}{'res':>5}{'image':>11}{'input':>11}{'s/image':>9}"
    header += f"{'model RSS':>11}{'peak RSS':>10}{'forward +':>11}"
    print(header)
    print("-" * len(header))
    for width, height in IMAGES:
        for name, resolution in ROWS:
            command = [sys.executable, __file__, "--repeats", str(args.repeats), "--threads", str(args.threads)]
            command += ["--row", name, str(resolution), str(width), str(height)]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                print(f"{name:<26}{resolution:>5}{f'{width}x{height}':>11}  failed: {result.stderr.strip()[-300:]}")
                continue
            row = json.loads(result.stdout.strip().splitlines()[-1])
            print(
                f"{name:<26}{resolution:>5}{f'{width}x{height}':>11}{row['input']:>11}{row['seconds']:>9.2f}"
                f"{row['model_rss']:>9.0f}Mi{row['peak_rss']:>8.0f}Mi{row['peak_rss'] - row['model_rss']:>9.0f}Mi",
                flush=True,
            )


if __name__ == "__main__":
    main()
