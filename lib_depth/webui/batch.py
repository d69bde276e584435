"""The img2img Batch tab with a depth maps folder, and sequence normalisation over its frames.

modules/img2img.py `process_batch` (v1.10.1) runs one generation per frame of its input directory
with the same processing object, setting `p.init_images` to the frame as `images.read` opened it.
Scripts are not told which file that is, so the frames are listed and read the same way once
(`shared.walk_files`, `images.read`) and each generation's init image is found among them by its
pixels. The sequence (frames, their maps, their normalisation ranges) lives on `p` for the batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..geometry import Geometry
from ..io.depth_files import read_depth_file
from ..io.depthmap import read_user_depth
from ..io.images import image_to_tensor
from ..io.pairing import pair_depth_maps
from ..normalise import DepthRange, settings_ranges
from ..run import PER_IMAGE, DepthInputError, DepthRun
from ..settings import DepthSettings

BATCH_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")  # process_batch's allowed_extensions


def pixels_key(image: Any) -> str:
    """Identifies a frame by what process_batch hands the generation: mode, size and pixels."""
    digest = hashlib.sha1(f"{image.mode}:{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


@dataclass
class BatchSequence:
    frames: list[Path]
    maps: list[Path | None]  # the paired depth map of each frame, None: estimate it
    problems: list[str | None]
    index: dict[str, int]  # pixels_key -> frame
    ranges: list[DepthRange] | None = None
    ranges_for: tuple | None = field(default=None)  # the (geometry, settings) the ranges were measured for

    @classmethod
    def read(cls, frames_folder: str, maps_folder: str, policy: str) -> BatchSequence:
        """Pair the Batch tab's frames with their maps; ValueError names what is wrong."""
        from modules import images, shared

        if not frames_folder:
            raise ValueError(
                "depth maps folder: it pairs the Batch tab's frames with their maps; enter the Batch tab's input "
                "directory (the folder of frames) first"
            )
        frames = [Path(p) for p in shared.walk_files(frames_folder, allowed_extensions=BATCH_EXTENSIONS)]
        if not frames:
            raise ValueError(f"Batch tab input directory: no frames in {frames_folder}")
        if maps_folder:
            pairing = pair_depth_maps(frames, maps_folder, policy)  # "stop": every missing map in one message
            maps, problems = [pair.depth_map for pair in pairing.pairs], [pair.problem for pair in pairing.pairs]
        else:  # a sequence normalised together, every frame estimated
            maps, problems = [None] * len(frames), [None] * len(frames)
        index = {}
        for number, frame in enumerate(frames):
            try:
                index.setdefault(pixels_key(images.read(frame)), number)
            except OSError:  # process_batch skips what it cannot read; so do we
                continue
        return cls(frames, maps, problems, index)

    def frame_of(self, init_image: Any) -> int:
        number = self.index.get(pixels_key(init_image))
        if number is None:
            raise ValueError(
                "depth maps folder: this init image is not one of the Batch tab's frames; the depth maps folder "
                "works in the Batch tab only (clear it for img2img)"
            )
        return number


def is_batch_frame(p: Any, settings: DepthSettings) -> bool:
    """Whether this generation is to be treated as a frame of the Batch tab's sequence: a depth
    maps folder is set (an error if it is not a frame), or the Batch tab's frames are normalised
    together and this init image is one of them (else it is an ordinary img2img generation)."""
    if settings.depth_folder:
        return True
    if not settings.frames_folder or (settings.normalise == PER_IMAGE and not settings.percentile):
        return False
    try:
        sequence = getattr(p, "depth2img_batch", None) or BatchSequence.read(settings.frames_folder, "", "stop")
    except ValueError:
        return False
    if pixels_key(p.init_images[0]) not in sequence.index:
        return False
    p.depth2img_batch = sequence  # the same processing object runs every frame of the batch
    return True


def frame_run(p: Any, settings: DepthSettings, estimator: Any, error: str | None) -> DepthRun:
    """The run of one Batch-tab frame: its own map, or its estimated depth where it has none."""
    try:
        sequence = getattr(p, "depth2img_batch", None)
        if sequence is None:
            sequence = BatchSequence.read(settings.frames_folder, settings.depth_folder, settings.missing_map)
            p.depth2img_batch = sequence
            # process_batch shows the first frame's Processed, whose comments are taken now: say which
            # frames are estimated ("estimate" policy) before the first generation, or no one learns it
            for problem in filter(None, sequence.problems):
                p.comment(f"Depth2img: {problem}")
        number = sequence.frame_of(p.init_images[0])
    except ValueError as problem:
        return DepthRun(settings, estimator, error=error or f"depth2img: {problem}")
    keep_frames_cached(sequence)
    depth_map = sequence.maps[number]
    if depth_map is None:  # policy "estimate" (with "stop" pairing has refused already)
        return DepthRun(settings.replace(source="estimate"), estimator, error=error)
    try:  # any depth map file (PNG, TIFF, OpenEXR, .npy), at full precision; one without depth follows the policy
        image = read_depth_file(depth_map, f"depth map {depth_map.name} for {sequence.frames[number].name}")
        read_user_depth(image, settings.depth_kind, name=f"depth map {depth_map.name}")
    except ValueError as problem:
        message = f"depth2img: {problem}"
        if settings.missing_map == "stop":
            return DepthRun(settings, estimator, error=error or message)
        p.comment(f"Depth2img: {problem}; its depth is estimated")
        return DepthRun(settings.replace(source="estimate"), estimator, error=error)
    return DepthRun(settings.replace(source="upload"), estimator, image, error=error)


def keep_frames_cached(sequence: BatchSequence) -> None:
    """While a batch runs, the depth cache holds every frame (unless the user turned it off), so the
    sequence pass estimates each frame once for all."""
    from . import options
    from .depth_model import CACHE

    wanted = int(options.read("depth2img_cache_entries"))
    if wanted:
        CACHE.resize(max(wanted, len(sequence.frames) + 4), CACHE.max_bytes)


def sequence_ranges_for(p: Any, run: DepthRun, geometry: Geometry) -> list[DepthRange] | None:
    """This frame's range when the batch is normalised as a sequence: every frame's depth is
    gathered once (estimated through the shared cache, so the generations that follow find it)."""
    sequence: BatchSequence | None = getattr(p, "depth2img_batch", None)
    settings = run.settings
    if sequence is None or (settings.normalise == PER_IMAGE and not settings.percentile):
        return None
    key = (geometry, settings.replace(source="estimate"))
    if sequence.ranges is None or sequence.ranges_for != key:
        try:
            sequence.ranges = _measure(sequence, run, geometry)
        except (OSError, ValueError) as problem:  # a frame or map that fails now: stop with its name
            raise DepthInputError(f"depth2img: {problem}") from None
        sequence.ranges_for = key
    return [sequence.ranges[sequence.frame_of(p.init_images[0])]]


def _measure(sequence: BatchSequence, run: DepthRun, geometry: Geometry) -> list[DepthRange]:
    """Every frame's raw depth at this pass's geometry (its map, or its estimate), then the ranges."""
    from modules import images, shared

    from .prepare import prepare_image

    settings = run.settings
    depths = []
    for number, frame in enumerate(sequence.frames):
        shared.state.textinfo = f"Depth2img: depth of frame {number + 1} of {len(sequence.frames)}"
        if sequence.maps[number] is not None:
            name = f"depth map for {frame.name}"
            fitted = geometry.fit(read_user_depth(sequence.maps[number], settings.depth_kind, name=name).values)
            depths.append(torch.from_numpy(fitted)[None, None])
        else:
            image = prepare_image(
                images.read(frame), width=geometry.width, height=geometry.height, resize_mode=geometry.resize_mode
            )
            depths.append(run.estimate(image_to_tensor(image.convert("RGB"), name=frame.name)).cpu())
    return settings_ranges(depths, geometry.latent, settings, geometry.image_size)
