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


def distance_scene(width: int, height: int, *, sky: float = float("inf")) -> np.ndarray:
    """Distance from a pinhole camera (float64 [H, W], scene units) to an analytic scene: a ground
    plane, a back wall, a sphere; where a ray meets nothing (above the horizon, beside the wall's
    top) it is `sky` (inf as a renderer leaves it, or 0 / NaN as other tools do).

    Camera at the origin looking down +z, focal length = width; ground y = -1.5, wall z = 12 up to
    y = 3, sphere at (0.8, -0.3, 5) with radius 1.2. Z is the depth along the view axis (a Z pass).
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    dx, dy = (x + 0.5 - width / 2) / width, -(y + 0.5 - height / 2) / width  # ray (dx, dy, 1)
    z = np.full((height, width), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        ground = np.where(dy < 0, -1.5 / dy, np.inf)
    z = np.minimum(z, ground)
    wall_top = 12.0 * dy <= 3.0
    z = np.where(wall_top & (z > 12.0), 12.0, z)
    centre, radius = np.array([0.8, -0.3, 5.0]), 1.2
    # |t*(dx,dy,1) - c|^2 = r^2 -> a t^2 - 2 b t + (|c|^2 - r^2) = 0, z = t (the ray's z component is 1)
    a = dx * dx + dy * dy + 1.0
    b = dx * centre[0] + dy * centre[1] + centre[2]
    disc = b * b - a * (centre @ centre - radius * radius)
    with np.errstate(invalid="ignore"):
        t = (b - np.sqrt(disc)) / a
    z = np.where((disc > 0) & (t > 0) & (t < z), t, z)
    return np.where(np.isfinite(z), z, sky)
