"""docs/depth-kinds.png: one analytic scene's Z pass (distance, as Blender or Unreal write it) fed
to the model both ways, and what the model gets in each case.

Panels: the Z pass as a file shows it (normalised for display, white = far); fed as `relative`
(read as if white = near: the relief is inverted and bent); fed as `distance` (1/Z: the training
convention); the exact normalised 1/Z for reference. Prints the error of each against the exact one.

    python bench/make_depth_kinds_figure.py [-o docs/depth-kinds.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from scenes import distance_scene  # noqa: E402

from lib_depth.conditioning import depth_to_conditioning  # noqa: E402
from lib_depth.geometry import Geometry  # noqa: E402
from lib_depth.io.depth_files import DepthMap  # noqa: E402
from lib_depth.io.depthmap import conditioning_to_previews  # noqa: E402
from lib_depth.run import DepthRun  # noqa: E402
from lib_depth.settings import DepthSettings  # noqa: E402

WIDTH, HEIGHT = 384, 288


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "depth-kinds.png")
    args = parser.parse_args()
    geometry = Geometry.for_size(WIDTH, HEIGHT)
    z = distance_scene(WIDTH, HEIGHT, sky=0.0)  # sky as 0, as many tools write "no depth"
    valid = z > 0
    exact_inverse = 1.0 / np.where(valid, z, z[valid].max())
    exact = depth_to_conditioning(torch.from_numpy(exact_inverse.astype(np.float32))[None, None], geometry.latent)
    panels = []
    shown = np.where(valid, z, z[valid].max())
    display = (shown - shown.min()) / (shown.max() - shown.min())
    panels.append(("Z pass (distance, white = far)", Image.fromarray((display * 255).round().astype(np.uint8))))
    print("| fed as | max error vs exact 1/Z (conditioning, [-1, 1]) | correlation |")
    print("| --- | --- | --- |")
    for kind in ("relative", "distance"):
        run = DepthRun(DepthSettings(source="upload", depth_kind=kind), None, DepthMap(z.astype(np.float32), "Z"))
        try:
            conditioning = run.conditioning(geometry)
        except ValueError as error:  # never expected here; shown rather than hidden
            print(f"| {kind} | {error} | |")
            continue
        error = float((conditioning - exact).abs().max())
        correlation = float(np.corrcoef(conditioning.flatten(), exact.flatten())[0, 1])
        print(f"| {kind} | {error:.2e} | {correlation:+.3f} |")
        label = f"fed as {kind}: the model gets" + (" (wrong)" if kind == "relative" else "")
        panels.append((label, conditioning_to_previews(conditioning, (HEIGHT, WIDTH))[0]))
    panels.append(("exact normalised 1/Z (reference)", conditioning_to_previews(exact, (HEIGHT, WIDTH))[0]))
    pad, caption = 8, 22
    sheet = Image.new("L", (len(panels) * (WIDTH + pad) + pad, HEIGHT + caption + 2 * pad), 255)
    draw = ImageDraw.Draw(sheet)
    for index, (label, image) in enumerate(panels):
        x = pad + index * (WIDTH + pad)
        sheet.paste(image, (x, pad + caption))
        draw.text((x, pad + 4), label, fill=0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.output, optimize=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
