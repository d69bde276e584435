"""Draw docs/sequence-normalisation.png: one short sequence normalised per image, shared and smoothed.

    python bench/make_sequence_figure.py [--out docs/sequence-normalisation.png]

The sequence (synthetic user depth maps, no model weights): a ball comes towards the camera over a
fixed background, then a cut to another shot. Top: the conditioning the model gets (grey, white =
near), one row per mode. Bottom left: the depth range each frame is normalised with; bottom right:
the part of [-1, 1] each frame's conditioning spans. Drawn with PIL only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from sequences import approaching_object, other_shot  # noqa: E402

from lib_depth import conditioning_to_previews  # noqa: E402
from lib_depth.conditioning import conditioning_sequence  # noqa: E402
from lib_depth.normalise import DEFAULT_TIME_CONSTANT, scene_cuts, sequence_ranges  # noqa: E402

SIZE = 512
LATENT = (SIZE // 8, SIZE // 8)
SHOWN = [0, 3, 6, 9, 12, 15, 16, 19, 23]
TILE = 104
GAP = 4
LABEL = 170
MODES = [
    ("per image", "per image", (214, 120, 40)),
    ("shared", "shared", (50, 110, 200)),
    (f"smoothed (tau {DEFAULT_TIME_CONSTANT:g})", "smoothed", (40, 150, 80)),
]
WHITE, INK, GRID = (255, 255, 255), (30, 30, 30), (225, 225, 225)


def font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        try:
            return ImageFont.load_default(size)
        except TypeError:  # Pillow before 10.1: one bitmap size
            return ImageFont.load_default()


def sequence() -> list[torch.Tensor]:
    first = approaching_object(16, SIZE, SIZE)
    second = [0.35 + 0.6 * depth for depth in other_shot(8, SIZE, SIZE)]
    return [torch.from_numpy(np.ascontiguousarray(depth)) for depth in first + second]


def tile(image: Image.Image) -> Image.Image:
    return image.convert("RGB").resize((TILE, TILE), Image.BILINEAR)


def draw_plot(draw, box, series, y_range, title, x_count, cut, ticks):
    """Lines over frames in `box` (left, top, right, bottom); series: (colour, values, dashed)."""
    left, top, right, bottom = box
    small = font(13)
    draw.text((left, top - 26), title, fill=INK, font=font(15))
    low, high = y_range

    def x_at(index: float) -> float:
        return left + (right - left) * index / (x_count - 1)

    def y_at(value: float) -> float:
        return bottom - (bottom - top) * (value - low) / (high - low)

    for tick in ticks:
        draw.line([(left, y_at(tick)), (right, y_at(tick))], fill=GRID)
        draw.text((left - 8, y_at(tick)), f"{tick:g}", fill=INK, font=small, anchor="rm")
    for index in range(0, x_count, 4):
        draw.text((x_at(index), bottom + 6), str(index), fill=INK, font=small, anchor="ma")
    draw.text(((left + right) / 2, bottom + 24), "frame", fill=INK, font=small, anchor="ma")
    for y in range(int(top), int(bottom), 8):
        draw.line([(x_at(cut - 0.5), y), (x_at(cut - 0.5), y + 4)], fill=(200, 40, 40))
    draw.text((x_at(cut - 0.5) + 4, bottom - 18), "cut", fill=(200, 40, 40), font=small)
    draw.rectangle(box, outline=INK)
    for colour, values, dashed in series:
        points = [(x_at(i), y_at(v)) for i, v in enumerate(values)]
        if dashed:
            for a, b in zip(points[::2], points[1::2], strict=False):
                draw.line([a, b], fill=colour, width=3)
        else:
            draw.line(points, fill=colour, width=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "sequence-normalisation.png")
    args = parser.parse_args()
    frames = sequence()
    cuts = scene_cuts(frames, LATENT)
    cut = cuts[1]
    rows = [("depth map", [tile(p) for p in conditioning_to_previews(torch.stack(frames)[:, None] * 2 - 1)])]
    ranges, spans = {}, {}
    for label, mode, _ in MODES:
        conditionings = conditioning_sequence(frames, LATENT, mode=mode)
        rows.append((label, [tile(conditioning_to_previews(c)[0]) for c in conditionings]))
        ranges[mode] = sequence_ranges(frames, LATENT, mode=mode)
        spans[mode] = [float(c.max() - c.min()) / 2 for c in conditionings]

    width = LABEL + len(SHOWN) * (TILE + GAP) + 24
    strip_top = 64
    plot_top = strip_top + len(rows) * (TILE + GAP) + 70
    height = plot_top + 300
    figure = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(figure)
    draw.text((12, 12), "The same sequence, three normalisations (white = near)", fill=INK, font=font(17))
    for column, index in enumerate(SHOWN):
        x = LABEL + column * (TILE + GAP) + (12 if index >= cut else 0)
        draw.text((x + TILE / 2, strip_top - 4), f"frame {index}", fill=INK, font=font(12), anchor="md")
        for row, (_, tiles) in enumerate(rows):
            figure.paste(tiles[index], (x, strip_top + row * (TILE + GAP)))
    cut_x = LABEL + SHOWN.index(cut) * (TILE + GAP) + 4
    draw.line([(cut_x, strip_top - 2), (cut_x, strip_top + len(rows) * (TILE + GAP))], fill=(200, 40, 40), width=3)
    for row, (label, _) in enumerate(rows):
        colour = INK if row == 0 else MODES[row - 1][2]
        draw.text((12, strip_top + row * (TILE + GAP) + TILE / 2), label, fill=colour, font=font(15), anchor="lm")

    half = (width - 3 * 70) // 2
    range_box = (80, plot_top, 80 + half, plot_top + 220)
    span_box = (range_box[2] + 110, plot_top, range_box[2] + 110 + half, plot_top + 220)
    range_series = []
    for _, mode, colour in MODES:
        range_series.append((colour, [r.high for r in ranges[mode]], False))
        range_series.append((colour, [r.low for r in ranges[mode]], True))
    title = "range each frame is normalised with (high solid, low dashed)"
    top = max(1.0, max(r.high for mode in ranges for r in ranges[mode])) + 0.05
    draw_plot(draw, range_box, range_series, (0.0, top), title, len(frames), cut, (0.0, 0.25, 0.5, 0.75, 1.0))
    span_series = [(colour, spans[mode], False) for _, mode, colour in MODES]
    title = "part of [-1, 1] each frame spans"
    draw_plot(draw, span_box, span_series, (0.0, 1.0), title, len(frames), cut, (0.0, 0.25, 0.5, 0.75, 1.0))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.save(args.out, optimize=True)
    print(f"wrote {args.out} ({width}x{height}); cuts at {cuts}")


if __name__ == "__main__":
    main()
