"""Deterministic synthetic depth-map sequences (white = near, 0..1) for tests, benchmarks and figures.

`approaching_object`: a fixed background (floor rising towards the camera, a few fixed boxes) and a
ball that comes towards the camera: nearer (brighter) and larger every frame. Only the ball moves,
so any frame-to-frame change of the conditioning over the background is normalisation flicker.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

BALL_CENTRE = (0.5, 0.45)  # (x, y) as fractions of the size
BALL_RADIUS = (0.06, 0.2)  # first and last frame, fraction of the width
BALL_DEPTH = (0.45, 0.98)  # first and last frame


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    depth = 0.12 + 0.45 * (y / (height - 1)) ** 1.5  # far wall at the top, floor coming closer
    depth += 0.01 * np.sin(x / width * 9.0) * np.cos(y / height * 7.0)  # gentle texture
    for _ in range(4):  # boxes at fixed depths, away from the ball's path
        x0 = int(rng.choice([rng.integers(0, width // 5), rng.integers(4 * width // 5, width - width // 10)]))
        y0 = int(rng.integers(height // 5, 4 * height // 5))
        w, h = int(rng.integers(width // 20, width // 10)), int(rng.integers(height // 10, height // 5))
        depth[y0 : y0 + h, x0 : x0 + w] = rng.uniform(0.3, 0.6)
    return depth


def ball_geometry(index: int, frames: int, width: int) -> tuple[float, float]:
    """(radius in pixels, depth) of the ball in one frame."""
    t = index / max(1, frames - 1)
    radius = (BALL_RADIUS[0] + (BALL_RADIUS[1] - BALL_RADIUS[0]) * t) * width
    return radius, BALL_DEPTH[0] + (BALL_DEPTH[1] - BALL_DEPTH[0]) * t


def approaching_object(frames: int = 24, width: int = 512, height: int = 512, seed: int = 0) -> list[np.ndarray]:
    """float32 [H, W] maps, 0..1, white = near."""
    still = background(width, height, seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    cx, cy = BALL_CENTRE[0] * width, BALL_CENTRE[1] * height
    distance = np.hypot(x - cx, y - cy)
    maps = []
    for index in range(frames):
        radius, depth = ball_geometry(index, frames, width)
        inside = distance < radius
        bulge = np.sqrt(np.clip(1.0 - (distance / radius) ** 2, 0.0, 1.0))  # a sphere's surface
        frame = np.where(inside, np.maximum(still, depth - 0.05 + 0.05 * bulge), still)
        maps.append(frame.astype(np.float32))
    return maps


def other_shot(frames: int = 8, width: int = 512, height: int = 512) -> list[np.ndarray]:
    """A different shot (for scene cuts): a wall sloping left to right and a slowly drifting box."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    maps = []
    for index in range(frames):
        depth = 0.2 + 0.25 * (1.0 - x / (width - 1))
        x0 = width // 2 + 4 * index
        depth[height // 3 : 2 * height // 3, x0 : x0 + width // 6] = 0.7
        maps.append(depth.astype(np.float32))
    return maps


def background_mask(
    frames: int, width: int, height: int, latent_size: tuple[int, int], margin: int = 24
) -> torch.Tensor:
    """[h, w] bool at latent size: latent pixels whose image area the ball never comes within
    `margin` pixels of (so bicubic resizing and blur of the ball do not reach them)."""
    latent_h, latent_w = latent_size
    largest = ball_geometry(frames - 1, frames, width)[0]
    ys = (torch.arange(latent_h, dtype=torch.float64) + 0.5) * height / latent_h
    xs = (torch.arange(latent_w, dtype=torch.float64) + 0.5) * width / latent_w
    distance = torch.hypot(xs[None, :] - BALL_CENTRE[0] * width, ys[:, None] - BALL_CENTRE[1] * height)
    return distance > largest + margin + max(height / latent_h, width / latent_w) * 2


def background_flicker(conditionings: list[torch.Tensor], mask: torch.Tensor) -> float:
    """Mean absolute frame-to-frame change of the conditioning over the masked (static) pixels."""
    changes = [
        float((after - before)[..., mask].abs().mean())
        for before, after in zip(conditionings, conditionings[1:], strict=False)
    ]
    return sum(changes) / len(changes)


def write_depth_maps(folder: Path, maps: list[np.ndarray], prefix: str = "frame_") -> list[Path]:
    """16-bit greyscale PNGs frame_0001.png ... (as a user's depth-map folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, depth in enumerate(maps, start=1):
        path = folder / f"{prefix}{index:04d}.png"
        Image.fromarray(np.round(np.clip(depth, 0.0, 1.0) * 65535.0).astype(np.uint16)).save(path)
        paths.append(path)
    return paths
