"""Frames and their depth maps by file name, and image inputs from folders and globs.

Pairing rules (the same on every system, whatever the file system does with case):
- a map belongs to a frame when its name without extension is the frame's, optionally followed by
  `-depth` or `_depth`: `frame_0001.png` <- `frame_0001.png`, `frame_0001-depth.tif`, `frame_0001_depth.jpg`;
- any extension Pillow can read here (see `image_extensions`), and `.exr`, `.npy` for maps (depth_files.py);
- names compare exactly first; only when no map matches exactly, case-insensitively
  (`Frame_0001.PNG` <- `frame_0001-depth.png`);
- two candidates at the same level are ambiguous: that frame gets a message naming both;
- a frame without a map, or with an unreadable one, follows the policy: `stop` (an error listing
  every such frame) or `estimate` (that frame's depth is estimated instead; the message says so);
- maps no frame uses are reported as extra, never an error.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from .depth_files import DEPTH_FILE_EXTENSIONS, probe_depth_file

PAIRING_POLICIES = ("stop", "estimate")
DEPTH_SUFFIXES = ("-depth", "_depth")
# Formats people keep frames and maps in; only those this Pillow can open are used.
_CANDIDATE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".tga", ".ppm", ".pgm", ".pnm")
_GLOB_MAGIC = re.compile(r"[*?[]")
_DIGITS = re.compile(r"(\d+)")


def image_extensions() -> tuple[str, ...]:
    """Lower-case extensions (with the dot) of image files this Pillow can read."""
    Image.init()
    readable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return tuple(ext for ext in _CANDIDATE_EXTENSIONS if ext in readable)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in image_extensions()


def is_depth_map_file(path: Path) -> bool:
    """An image, or a file only depth maps come as (OpenEXR, .npy); its bytes decide how it is read."""
    return is_image_file(path) or path.suffix.lower() in DEPTH_FILE_EXTENSIONS


def natural_key(path: Path | str) -> tuple:
    """Sort key with numbers by value (frame_2 before frame_10), then case-insensitive, then exact."""
    text = str(path)
    parts = _DIGITS.split(text.lower())
    return (tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts if part), text.lower(), text)


def natural_sorted(paths: Iterable[Path]) -> list[Path]:
    return sorted(paths, key=natural_key)


def expand_image_inputs(
    items: Sequence[str | os.PathLike], on_problem: Callable[[str], None] | None = None, *, depth_maps: bool = False
) -> list[Path]:
    """Files, folders (their images, not recursive, hidden files skipped) and glob patterns -> image
    files in natural order, each once.

    The whole list is sorted naturally, so a glob the shell expanded gives the same order as a quoted
    one. A problem (nothing matches, not an image, unreadable folder) goes to `on_problem` and the
    other items still count; without `on_problem`, all problems together raise one ValueError.
    `depth_maps`: the inputs are depth maps, so OpenEXR and .npy files count too.
    """
    wanted = is_depth_map_file if depth_maps else is_image_file
    extensions = image_extensions() + (DEPTH_FILE_EXTENSIONS if depth_maps else ())
    problems: list[str] = []
    found: dict[Path, Path] = {}
    for item in items:
        text = os.fspath(item)
        path = Path(text).expanduser()
        try:
            if path.is_dir():
                images = _folder_images(path, wanted)
                if not images:
                    names = ", ".join(extensions)
                    problems.append(f"{text}: no image files ({names}) in this folder")
            elif path.exists():
                images = [path] if wanted(path) else []
                if not images:
                    problems.append(f"{text}: not an image file (expected one of {', '.join(extensions)})")
            elif _GLOB_MAGIC.search(text):
                matches = [Path(match) for match in glob.glob(str(path), recursive=True)]
                images = [match for match in matches if match.is_file() and wanted(match)]
                if not images:
                    problems.append(f"{text}: the pattern matches no image files")
            else:
                images = []
                problems.append(f"{text}: no such file or folder")
        except OSError as error:
            images = []
            problems.append(f"{text}: cannot be read ({error.strerror or error})")
        for image in images:
            found.setdefault(_identity(image), image)
    for problem in problems:
        if on_problem is not None:
            on_problem(problem)
    if problems and on_problem is None:
        raise ValueError("\n".join(problems))
    return natural_sorted(found.values())


def _identity(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def _folder_images(folder: Path, wanted: Callable[[Path], bool] = is_image_file) -> list[Path]:
    """Image files directly in `folder`; PermissionError/OSError propagates to name the folder."""
    with os.scandir(folder) as entries:
        files = [Path(entry.path) for entry in entries if not entry.name.startswith(".") and entry.is_file()]
    return natural_sorted(path for path in files if wanted(path))


@dataclass(frozen=True)
class FramePair:
    """One frame and its depth map; `depth_map` is None when there is none to use (see `problem`)."""

    frame: Path
    depth_map: Path | None
    problem: str | None = None


@dataclass(frozen=True)
class Pairing:
    pairs: tuple[FramePair, ...]
    extra_maps: tuple[Path, ...]

    @property
    def problems(self) -> list[str]:
        return [pair.problem for pair in self.pairs if pair.problem]

    def messages(self) -> list[str]:
        """One line per frame without a usable map, then one for the unused maps."""
        lines = list(self.problems)
        if self.extra_maps:
            names = ", ".join(path.name for path in self.extra_maps[:5])
            more = f" and {len(self.extra_maps) - 5} more" if len(self.extra_maps) > 5 else ""
            lines.append(f"{len(self.extra_maps)} depth map(s) match no frame: {names}{more}")
        return lines


def _map_stem(stem: str) -> str:
    """A map's name without its `-depth`/`_depth` suffix (any case)."""
    for suffix in DEPTH_SUFFIXES:
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _readable(path: Path) -> str | None:
    """None if the file's header reads as a depth map (depth_files.probe_depth_file), else why not."""
    try:
        probe_depth_file(path)
    except ValueError as error:
        return str(error).removeprefix(f"{path.name}: ")
    except Exception as error:  # any failure (not an image, truncated, too large) means "cannot use this map"
        return f"{type(error).__name__}: {error}"
    return None


def check_policy(policy: str) -> str:
    if policy not in PAIRING_POLICIES:
        raise ValueError(f"missing depth map policy: expected one of {', '.join(PAIRING_POLICIES)}, got {policy!r}")
    return policy


def pair_depth_maps(
    frames: Sequence[str | os.PathLike],
    maps: str | os.PathLike | Sequence[str | os.PathLike],
    policy: str = "stop",
) -> Pairing:
    """Pair each frame with its depth map from a folder (or a list of map files), by file name.

    `policy="stop"`: any frame without a usable map raises one ValueError listing every such frame.
    `policy="estimate"`: those frames get `depth_map=None` and a `problem` saying their depth will be
    estimated. The frames themselves are never their own maps (a maps folder may be the frames folder).
    """
    check_policy(policy)
    frame_paths = [Path(frame) for frame in frames]
    map_paths, other_files = _map_candidates(maps)
    frame_ids = {_identity(frame) for frame in frame_paths}
    map_paths = [path for path in map_paths if _identity(path) not in frame_ids]
    by_key: dict[str, list[Path]] = {}
    for path in map_paths:
        by_key.setdefault(_map_stem(path.stem).lower(), []).append(path)
    others: dict[str, list[Path]] = {}
    for path in other_files:
        others.setdefault(_map_stem(path.stem).lower(), []).append(path)

    used: set[Path] = set()
    pairs = []
    for frame in frame_paths:
        candidates = by_key.get(frame.stem.lower(), [])
        exact = [path for path in candidates if _map_stem(path.stem) == frame.stem]
        best = exact or candidates
        if len(best) == 1:
            used.add(best[0])
            reason = _readable(best[0])
            if reason is None:
                pairs.append(FramePair(frame, best[0]))
                continue
            problem = f"{frame.name}: depth map {best[0].name} is unreadable ({reason})"
        elif best:
            used.update(best)
            names = ", ".join(path.name for path in natural_sorted(best))
            problem = f"{frame.name}: {len(best)} depth maps match ({names}); keep one"
        else:
            problem = f"{frame.name}: no depth map (looked for {frame.stem}[-depth|_depth].<image extension>)"
            unusable = [path.name for path in others.get(frame.stem.lower(), [])]
            if unusable:
                problem += f"; {', '.join(unusable)} is not a format Pillow reads here (use PNG or TIFF)"
        if policy == "estimate":
            problem += "; its depth will be estimated"
        pairs.append(FramePair(frame, None, problem))
    pairing = Pairing(tuple(pairs), tuple(natural_sorted(path for path in map_paths if path not in used)))
    if policy == "stop" and pairing.problems:
        count = len(pairing.problems)
        raise ValueError(f"{count} frame(s) have no usable depth map:\n" + "\n".join(pairing.problems))
    return pairing


def _map_candidates(maps: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """(image files, other files) among the maps, the others only to explain a missing map."""
    if isinstance(maps, (str, os.PathLike)):
        folder = Path(maps)
        if not folder.is_dir():
            raise ValueError(f"depth maps folder: {folder} is not a folder")
        try:
            with os.scandir(folder) as entries:
                files = [Path(entry.path) for entry in entries if not entry.name.startswith(".") and entry.is_file()]
        except OSError as error:
            raise ValueError(f"depth maps folder: {folder} cannot be read ({error.strerror or error})") from None
    else:
        files = [Path(path) for path in maps]
    images = natural_sorted(path for path in files if is_depth_map_file(path))
    return images, [path for path in files if not is_depth_map_file(path)]


def load_paired_map(
    pair: FramePair, policy: str = "stop", kind: str = "relative"
) -> tuple[np.ndarray | None, str | None]:
    """Read a pair's map (float32 [H, W], white = near) of depth `kind` with `depthmap.read_user_depth`.

    Returns (map, None); or (None, message) when there is no map or it fails to decode and the
    policy is `estimate`; with `stop` a failure raises ValueError naming the frame and the map.
    """
    from .depthmap import read_user_depth

    check_policy(policy)
    if pair.depth_map is None:
        if policy == "stop":
            raise ValueError(pair.problem or f"{pair.frame.name}: no depth map")
        return None, pair.problem
    name = f"depth map {pair.depth_map.name} for {pair.frame.name}"
    try:
        return read_user_depth(pair.depth_map, kind, name=name).values, None
    except Exception as error:  # a decoding failure of one user file must not end the sequence
        message = str(error) if isinstance(error, ValueError) else f"{name}: {type(error).__name__}: {error}"
        if policy == "stop":
            raise ValueError(message) from None
        return None, f"{message}; its depth will be estimated"
