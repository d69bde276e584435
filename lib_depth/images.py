"""Opening user images (PIL, numpy or a file) with errors that name the input."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .validation import check_min_size

ImageSource = Union[Image.Image, np.ndarray, str, os.PathLike]


def open_image(source: ImageSource, name: str = "image") -> Image.Image:
    """Return a loaded PIL image from a PIL image or a path; ValueError if it is not an image."""
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"{name}: file not found: {path}")
        try:
            with Image.open(path) as opened:
                opened.load()
                image = opened.copy() if opened.mode != "P" else opened.convert("RGBA")
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise ValueError(f"{name}: {path} is not a readable image ({error})") from None
        name = f"{name} {path.name}"
    else:
        raise ValueError(f"{name}: expected a PIL image, numpy array or file path, got {type(source).__name__}")
    check_min_size(image.height, image.width, name)
    return image


def image_to_tensor(source: ImageSource | list, name: str = "image") -> torch.Tensor:
    """One image or a list of same-size images -> float32 [B, 3, H, W] in [-1, 1]."""
    sources = source if isinstance(source, list) else [source]
    arrays = []
    for index, item in enumerate(sources):
        label = name if len(sources) == 1 else f"{name} {index + 1}"
        if isinstance(item, np.ndarray):
            item = Image.fromarray(_as_uint8_rgb(item, label))
        arrays.append(np.asarray(open_image(item, label).convert("RGB"), dtype=np.float32))
    sizes = {a.shape for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"{name}: images in one batch must have the same size, got {sorted(sizes)}")
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return batch / 127.5 - 1.0


def _as_uint8_rgb(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(f"{name}: expected an array of shape [H, W] or [H, W, 1|3|4], got {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"{name}: expected a uint8 array, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    return array
