"""The img2img Batch tab with a depth maps folder, and sequence normalisation over its frames.

modules/img2img.py `process_batch` (v1.10.1) runs one generation per frame of its input directory
with the same processing object, setting `p.init_images` to the frame as `images.read` opened it.
Scripts are not told which file that is, so the frames are listed and read the same way once
(`shared.walk_files`, `images.read`) and each generation's init image is found among them by its
pixels. The sequence (frames, their maps, their normalisation ranges) lives on `p` for the batch.

Normalised as one sequence, the frames are measured before the first generation, in memory that
does not grow with their number (normalise/meter.py): each frame's estimate is kept on disk
(io/depth_store.py) and handed to its generation, so it is estimated once whatever the cache setting.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..depth.cache import image_digest
from ..geometry import Geometry
from ..io.depth_files import read_depth_file
from ..io.depth_store import DepthStore
from ..io.depthmap import read_user_depth
from ..io.images import image_to_tensor
from ..io.pairing import pair_depth_maps
from ..normalise import DepthRange, SequenceMeter, conditioning_key
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
    store: DepthStore | None = None  # the estimates of the measured geometry, on disk (removed with the sequence)
    digests: dict[int, str] = field(default_factory=dict)  # frame -> the estimated image's digest
    measured_at: Geometry | None = None  # the geometry of the stored estimates
    note: str | None = None  # why a later pass measured the sequence again, for the infotext

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


def sequence_ranges_for(p: Any, run: DepthRun, geometry: Geometry) -> list[DepthRange] | None:
    """This frame's range when the batch is normalised as a sequence (the whole sequence measured
    on the first frame's call), and its estimate from that measurement handed to the run."""
    sequence: BatchSequence | None = getattr(p, "depth2img_batch", None)
    settings = run.settings
    if sequence is None or (settings.normalise == PER_IMAGE and not settings.percentile):
        return None
    key = (geometry, settings.replace(source="estimate"))
    if sequence.ranges is None or sequence.ranges_for != key:
        reused = _mapped_ranges(sequence, key)
        if reused is None:
            if sequence.ranges is not None:
                sequence.note = _why_again(sequence.ranges_for[0], geometry)
            if sequence.store is not None:
                sequence.store.close()
            sequence.store, sequence.digests = DepthStore(), {}
            try:
                reused = _measure(sequence, run, geometry)
            except (OSError, ValueError) as problem:  # a frame or map that fails now: stop with its name
                raise DepthInputError(f"depth2img: {problem}") from None
        sequence.ranges, sequence.ranges_for = reused, key
    if sequence.note:
        p.extra_generation_params["Depth2img sequence"] = sequence.note
    number = sequence.frame_of(p.init_images[0])
    stored = sequence.store.get(number) if sequence.store is not None and _measured_at(sequence, geometry) else None
    run.known_depth = (sequence.digests[number], stored) if stored is not None else None
    return [sequence.ranges[number]]


def _measured_at(sequence: BatchSequence, geometry: Geometry) -> bool:
    return sequence.store is not None and sequence.measured_at == geometry


def _mapped_ranges(sequence: BatchSequence, key: tuple) -> list[DepthRange] | None:
    """The measured ranges for a later pass whose geometry is the measured one scaled (same fit,
    same aspect, same settings): raw depth ranges do not depend on the size they are applied at."""
    if sequence.ranges is None or sequence.ranges_for is None:
        return None
    (before, settings_before), (after, settings) = sequence.ranges_for, key
    if settings_before != settings or _why_again(before, after) is not None:
        return None
    computed_for = conditioning_key(after.latent, settings, after.image_size)
    return [dataclasses.replace(r, computed_for=computed_for) for r in sequence.ranges]


def _why_again(before: Geometry, after: Geometry) -> str | None:
    """Why a pass's geometry does not map onto the measured one (None: it does)."""
    if after.crop is not None or before.crop is not None:
        return f"ranges measured again at {after.width}x{after.height}: an only-masked crop"
    if after.resize_mode != before.resize_mode:
        return f"ranges measured again at {after.width}x{after.height}: another resize mode"
    if after.width * before.height != before.width * after.height:
        return (
            f"ranges measured again at {after.width}x{after.height}: another aspect ratio than "
            f"{before.width}x{before.height}"
        )
    if after.height * before.latent[0] != before.height * after.latent[0]:
        return f"ranges measured again at {after.width}x{after.height}: another latent scale"
    return None


def _measure(sequence: BatchSequence, run: DepthRun, geometry: Geometry) -> list[DepthRange]:
    """Every frame's raw depth at this pass's geometry (its map, or its estimate, kept in the
    sequence's store), measured one at a time, then the ranges. Shows its progress in the WebUI's
    progress bar and stops on Interrupt or Skip (nothing is generated then)."""
    from modules import shared

    state = shared.state
    sequence.measured_at = geometry
    meter = SequenceMeter(geometry.latent, run.settings, geometry.image_size)
    total = len(sequence.frames)
    steps = (getattr(state, "sampling_step", 0), getattr(state, "sampling_steps", 0))
    bad: list[str] = []
    try:
        for number in range(total):
            if state.interrupted or state.skipped:
                how = "interrupted" if state.interrupted else "skipped"
                raise ValueError(
                    f"stopped while measuring the sequence ({how} at frame {number + 1} of {total}); "
                    "no frame was generated"
                )
            state.textinfo = f"Depth2img: depth of frame {number + 1} of {total}"
            state.sampling_step, state.sampling_steps = number, total
            try:
                if bad:  # the batch stops: only look for the other bad frames, estimating nothing
                    _check_readable(sequence, number, run.settings.depth_kind)
                else:
                    meter.add(_frame_depth(sequence, run, geometry, number, measuring=True))
            except (OSError, ValueError) as problem:
                bad.append(f"{sequence.frames[number].name}: {problem}")
        if bad:
            raise ValueError(f"{len(bad)} frame(s) cannot be used; no frame was generated:\n" + "\n".join(bad))
        state.textinfo = f"Depth2img: normalising {total} frames ({run.settings.normalise})"
        return meter.finish(lambda: (_frame_depth(sequence, run, geometry, n) for n in range(total)))
    finally:
        state.textinfo = None
        state.sampling_step, state.sampling_steps = steps


def _check_readable(sequence: BatchSequence, number: int, depth_kind: str) -> None:
    """Read a frame (or its map) as the measurement would, without estimating; OSError/ValueError if not."""
    from modules import images

    if sequence.maps[number] is not None:
        name = f"depth map for {sequence.frames[number].name}"
        read_user_depth(sequence.maps[number], depth_kind, name=name)
    else:
        images.read(sequence.frames[number]).load()


def _frame_depth(sequence: BatchSequence, run: DepthRun, geometry: Geometry, number: int, *, measuring=False):  # noqa: ANN001, ANN202
    """One frame's raw depth: its map fitted to the geometry, its stored estimate, or estimated
    (and stored, with its image's digest, when `measuring`)."""
    from modules import images

    from .prepare import prepare_image

    frame = sequence.frames[number]
    if sequence.maps[number] is not None:
        name = f"depth map for {frame.name}"
        fitted = geometry.fit(read_user_depth(sequence.maps[number], run.settings.depth_kind, name=name).values)
        return torch.from_numpy(fitted)[None, None]
    stored = sequence.store.get(number)
    if stored is not None:
        return stored
    image = prepare_image(
        images.read(frame), width=geometry.width, height=geometry.height, resize_mode=geometry.resize_mode
    )
    tensor = image_to_tensor(image.convert("RGB"), name=frame.name)
    depth = run.estimate(tensor).cpu()
    if measuring and sequence.store.put(number, depth):
        sequence.digests[number] = image_digest(tensor[0])
    return depth
