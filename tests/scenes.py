"""Deterministic synthetic photos for tests and benchmarks: smooth backgrounds with shapes."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def make_scene(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            120 + 100 * np.sin(x / width * np.pi * rng.uniform(0.5, 2)),
            80 + 120 * (y / height),
            160 + 60 * np.cos((x + y) / (width + height) * np.pi * rng.uniform(1, 3)),
        ],
        axis=-1,
    )
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.integers(0, width - 16), rng.integers(0, height - 16)
        x1, y1 = x0 + rng.integers(16, max(17, width // 2)), y0 + rng.integers(16, max(17, height // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        else:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
    return image.filter(ImageFilter.GaussianBlur(1.5))
