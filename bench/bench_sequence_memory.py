"""Peak memory and time per frame of `python -m lib_depth depth FOLDER` over long sequences.

    python bench/bench_sequence_memory.py [--frames 10 100 1000] [--modes per-image shared smoothed]
                                          [--width 1920 --height 1080] [--resolution 140] [--code DIR]

Generated frames (a camera panning across a synthetic scene, a cut every 200 frames; JPEG, so writing
them stays quick), a seeded random Depth Anything V2 Small at a low resolution (the cost of the network
is not what is measured), each run a child process: its peak resident memory (`wait4`'s ru_maxrss)
and its wall time; "s/frame" is the time each frame added over the smallest run of that mode costs
(model loading and start-up left out), "s/frame all" the wall time over the frames. `--code DIR` runs
another checkout's lib_depth (e.g. the main branch, for a before/after table). Rows print as measured.
`--batch-tab` adds a row per count for the img2img Batch tab (the WebUI faked as in
tests/test_webui_sequence_pass.py): frames with 16-bit depth maps of the same size, `shared`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from scenes import make_scene  # noqa: E402
from sequence_golden import write_weights  # noqa: E402


def write_frames(folder: Path, count: int, width: int, height: int) -> None:
    """`count` frames: crops of two wide scenes, panning, switching scene every 200 frames."""
    folder.mkdir(parents=True, exist_ok=True)
    pan = width // 4
    scenes = [make_scene(width + pan, height, seed) for seed in (3, 8)]
    for index in range(count):
        scene = scenes[(index // 200) % 2]
        shift = (3 * index) % pan
        scene.crop((shift, 0, shift + width, height)).save(folder / f"frame_{index + 1:05d}.jpg", quality=92)


def measure(code: Path, frames: Path, out: Path, weights: Path, mode: str, resolution: int) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one command-line run in a child process."""
    command = [sys.executable, "-m", "lib_depth", "depth", str(frames), "--estimator", "depth-anything-v2-small",
               "--estimator-weights", str(weights), "--resolution", str(resolution), "-o", str(out),
               "--normalise", mode]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=code, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{mode}: exit {child.returncode}\n{child.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, wall


def measure_batch_tab(code: Path, folder: Path, count: int, width: int, height: int) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of the Batch tab over `count` frames with maps, in a child."""
    tests = ROOT / "tests"
    program = (
        f"import sys; sys.path[:0] = [{str(tests)!r}, {str(code)!r}]; import test_webui_sequence_pass as t; "
        f"t._child(t.Path({str(folder)!r}), {count}, {width}, {height})"
    )
    environment = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        raise SystemExit(f"batch tab: exit {result.returncode}\n{result.stderr[-2000:]}")
    return float(result.stdout.split()[-1]), time.perf_counter() - start


def row(first: dict[str, tuple[int, float]], label: str, count: int, peak: float, wall: float) -> None:
    """Print one row; "s/frame" over the first (smallest) run of the same label."""
    smallest, base = first.setdefault(label, (count, wall))
    marginal = f"{(wall - base) / (count - smallest):>8.3f}" if count > smallest else f"{'':>8}"
    print(f"{count:>7} {label:<10} {peak:>9.0f} {wall:>8.1f} {wall / count:>12.3f} {marginal}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--modes", nargs="*", default=["per-image", "shared", "smoothed"])
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--resolution", type=int, default=140)
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose lib_depth runs")
    parser.add_argument("--batch-tab", action="store_true", help="also the Batch tab (WebUI fakes), with maps")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        weights = write_weights(scratch)
        print(f"code {args.code}, frames {args.width}x{args.height}, Depth Anything V2 Small at {args.resolution}")
        header = f"{'frames':>7} {'mode':<10} {'peak MiB':>9} {'wall s':>8} {'s/frame all':>12} {'s/frame':>8}"
        print(header, flush=True)
        first: dict[str, tuple[int, float]] = {}
        for count in args.frames:
            frames = scratch / f"frames-{count}"
            write_frames(frames, count, args.width, args.height)
            for mode in args.modes:
                out = scratch / f"out-{count}-{mode}"
                peak, wall = measure(args.code, frames, out, weights, mode, args.resolution)
                row(first, mode, count, peak, wall)
                for written in out.iterdir():
                    written.unlink()
            for frame in frames.iterdir():
                frame.unlink()
            if args.batch_tab:
                peak, wall = measure_batch_tab(args.code, scratch / f"batch-{count}", count, args.width, args.height)
                smallest, base = first.setdefault("batch-tab", (count, wall))
                marginal = f"{(wall - base) / (count - smallest):>8.3f}" if count > smallest else f"{'':>8}"
                print(
                    f"{count:>7} {'batch-tab':<10} {peak:>9.0f} {wall:>8.1f} {wall / count:>12.3f} {marginal}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
