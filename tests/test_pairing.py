"""Frames <-> depth maps by file name, and image inputs from folders and globs, on real files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib_depth.io.pairing import (
    expand_image_inputs,
    image_extensions,
    load_paired_map,
    natural_sorted,
    pair_depth_maps,
)


def write_image(path: Path, value: int = 128, size: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((size, size), value, dtype=np.uint8)
    pixels[:, : size // 2] = 255 - value  # not flat, so a map is a map
    Image.fromarray(pixels).save(path)
    return path


def frames_in(folder: Path, names: list[str]) -> list[Path]:
    return [write_image(folder / name) for name in names]


def case_sensitive(folder: Path) -> bool:
    probe = folder / "CaseProbe"
    probe.write_text("x")
    sensitive = not (folder / "caseprobe").exists()
    probe.unlink()
    return sensitive


def test_same_name_depth_suffix_and_other_extensions_pair(tmp_path):
    frames = frames_in(tmp_path / "frames", ["frame_0001.png", "frame_0002.png", "frame_0003.jpg", "frame_0004.png"])
    maps = tmp_path / "maps"
    write_image(maps / "frame_0001.png", 10)
    write_image(maps / "frame_0002-depth.png", 20)
    write_image(maps / "frame_0003_depth.tif", 30)
    write_image(maps / "frame_0004.jpg", 40)
    pairing = pair_depth_maps(frames, maps)
    assert [pair.depth_map.name for pair in pairing.pairs] == [
        "frame_0001.png",
        "frame_0002-depth.png",
        "frame_0003_depth.tif",
        "frame_0004.jpg",
    ]
    assert pairing.problems == [] and pairing.extra_maps == ()
    depth, message = load_paired_map(pairing.pairs[2])
    assert message is None and depth.shape == (64, 64) and depth.max() == pytest.approx(225 / 255)


def test_missing_maps_stop_lists_every_frame(tmp_path):
    frames = frames_in(tmp_path / "frames", ["a_1.png", "a_2.png", "a_3.png"])
    write_image(tmp_path / "maps" / "a_2.png")
    with pytest.raises(ValueError) as raised:
        pair_depth_maps(frames, tmp_path / "maps", policy="stop")
    text = str(raised.value)
    assert "2 frame(s) have no usable depth map" in text
    assert "a_1.png: no depth map" in text and "a_3.png: no depth map" in text and "a_2.png:" not in text


def test_missing_maps_estimate_marks_those_frames(tmp_path):
    frames = frames_in(tmp_path / "frames", ["a_1.png", "a_2.png"])
    write_image(tmp_path / "maps" / "a_2-depth.png")
    pairing = pair_depth_maps(frames, tmp_path / "maps", policy="estimate")
    first, second = pairing.pairs
    assert first.depth_map is None and "a_1.png: no depth map" in first.problem and "estimated" in first.problem
    assert second.depth_map.name == "a_2-depth.png" and second.problem is None
    depth, message = load_paired_map(first, "estimate")
    assert depth is None and "estimated" in message
    with pytest.raises(ValueError, match="a_1.png: no depth map"):
        load_paired_map(first, "stop")


def test_extra_maps_are_reported_not_errors(tmp_path):
    frames = frames_in(tmp_path / "frames", ["f1.png"])
    maps = tmp_path / "maps"
    for name in ["f1.png", "f2.png", "f10-depth.png", "notes.txt"]:
        write_image(maps / name) if name.endswith(".png") else (maps / name).write_text("x")
    pairing = pair_depth_maps(frames, maps)
    assert [path.name for path in pairing.extra_maps] == ["f2.png", "f10-depth.png"]
    assert pairing.messages() == ["2 depth map(s) match no frame: f2.png, f10-depth.png"]


def test_two_candidates_are_ambiguous_with_both_named(tmp_path):
    frames = frames_in(tmp_path / "frames", ["shot_7.png", "shot_8.png"])
    maps = tmp_path / "maps"
    write_image(maps / "shot_7.png")
    write_image(maps / "shot_7-depth.png")
    write_image(maps / "shot_8.png")
    write_image(maps / "shot_8.jpg")
    pairing = pair_depth_maps(frames, maps, policy="estimate")
    assert [pair.depth_map for pair in pairing.pairs] == [None, None]
    assert pairing.problems[0].startswith("shot_7.png: 2 depth maps match (shot_7-depth.png, shot_7.png); keep one")
    assert "(shot_8.jpg, shot_8.png)" in pairing.problems[1]
    assert pairing.extra_maps == ()  # ambiguous candidates are not "unused"


def test_case_insensitive_match_when_no_exact_one(tmp_path):
    frames = frames_in(tmp_path / "frames", ["Frame_0001.PNG"])
    write_image(tmp_path / "maps" / "frame_0001-DEPTH.png")
    pairing = pair_depth_maps(frames, tmp_path / "maps")
    assert pairing.pairs[0].depth_map.name == "frame_0001-DEPTH.png"


def test_exact_case_wins_over_other_case(tmp_path):
    maps = tmp_path / "maps"
    maps.mkdir()
    if not case_sensitive(maps):
        pytest.skip("this file system cannot hold two names that differ only in case")
    frames = frames_in(tmp_path / "frames", ["frame_1.png", "FRAME_2.png"])
    write_image(maps / "frame_1.png", 10)
    write_image(maps / "FRAME_1.png", 20)
    write_image(maps / "frame_2.png", 30)
    write_image(maps / "Frame_2.png", 40)
    pairing = pair_depth_maps(frames, maps, policy="estimate")
    assert pairing.pairs[0].depth_map.name == "frame_1.png"
    # neither matches FRAME_2 exactly: two case-insensitive candidates are ambiguous
    assert pairing.pairs[1].depth_map is None and "2 depth maps match" in pairing.pairs[1].problem


def test_unreadable_and_truncated_maps(tmp_path):
    frames = frames_in(tmp_path / "frames", ["x1.png", "x2.png"])
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "x1.png").write_text("<html>not an image</html>")
    truncated = write_image(maps / "x2.png", size=256)
    truncated.write_bytes(truncated.read_bytes()[:120])  # header intact, pixel data cut
    with pytest.raises(ValueError, match=r"x1.png: depth map x1.png is unreadable"):
        pair_depth_maps(frames, maps)
    pairing = pair_depth_maps(frames, maps, policy="estimate")
    assert pairing.pairs[0].depth_map is None and "unreadable" in pairing.pairs[0].problem
    depth, message = load_paired_map(pairing.pairs[1], "estimate")
    assert depth is None and "x2.png" in message and "estimated" in message
    with pytest.raises(ValueError, match="x2.png"):
        load_paired_map(pairing.pairs[1], "stop")


def test_unsupported_format_is_named_in_the_message(tmp_path):
    frames = frames_in(tmp_path / "frames", ["f_1.png"])
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "f_1-depth.exr").write_bytes(b"v/1\x01")  # an OpenEXR file cut after its magic
    (tmp_path / "maps" / "f_1-depth.doc").write_bytes(b"not a map")
    pairing = pair_depth_maps(frames, tmp_path / "maps", policy="estimate")
    assert "depth map f_1-depth.exr is unreadable (truncated or damaged OpenEXR header" in pairing.problems[0]


def test_maps_beside_the_frames_never_pair_a_frame_with_itself(tmp_path):
    frames = frames_in(tmp_path, ["f_1.png", "f_2.png"])
    write_image(tmp_path / "f_1-depth.png")
    pairing = pair_depth_maps(frames, tmp_path, policy="estimate")
    assert pairing.pairs[0].depth_map.name == "f_1-depth.png"
    assert pairing.pairs[1].depth_map is None


def test_bad_policy_and_maps_folder(tmp_path):
    with pytest.raises(ValueError, match="policy: expected one of stop, estimate"):
        pair_depth_maps([], tmp_path, policy="skip")
    with pytest.raises(ValueError, match="is not a folder"):
        pair_depth_maps([], tmp_path / "absent")


def test_natural_sort_order():
    names = ["frame_10.png", "frame_2.png", "Frame_1.png", "frame_1.png", "frame_02b.png"]
    assert [path.name for path in natural_sorted(map(Path, names))] == [
        "Frame_1.png",
        "frame_1.png",
        "frame_2.png",
        "frame_02b.png",
        "frame_10.png",
    ]


def test_expand_folders_globs_files_in_natural_order_once(tmp_path):
    for name in ["f_2.png", "f_10.jpg", "f_1.PNG", ".hidden.png", "notes.txt", "f_3.gif"]:
        write_image(tmp_path / "in" / name) if name != "notes.txt" else (tmp_path / "in" / name).write_text("x")
    write_image(tmp_path / "more" / "f_0.png")
    inputs = [
        tmp_path / "in",
        str(tmp_path / "in" / "f_*.png"),  # overlaps the folder
        tmp_path / "in" / ".." / "in" / "f_2.png",  # the same file again
        tmp_path / "more" / "f_0.png",
    ]
    found = expand_image_inputs(inputs)
    assert [path.name for path in found] == ["f_1.PNG", "f_2.png", "f_10.jpg", "f_0.png"]


def test_expand_reports_each_problem_and_keeps_good_items(tmp_path):
    good = write_image(tmp_path / "ok.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "readme.txt").write_text("x")
    items = [tmp_path / "nope.png", str(tmp_path / "*.jpg"), tmp_path / "empty", tmp_path / "readme.txt", good]
    problems: list[str] = []
    assert expand_image_inputs(items, problems.append) == [good]
    assert problems == [
        f"{tmp_path / 'nope.png'}: no such file or folder",
        f"{tmp_path / '*.jpg'}: the pattern matches no image files",
        f"{tmp_path / 'empty'}: no image files ({', '.join(image_extensions())}) in this folder",
        f"{tmp_path / 'readme.txt'}: not an image file (expected one of {', '.join(image_extensions())})",
    ]
    with pytest.raises(ValueError, match="the pattern matches no image files"):
        expand_image_inputs(items)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their permissions")
def test_unreadable_folder_is_reported_as_such(tmp_path):
    folder = tmp_path / "locked"
    write_image(folder / "a.png")
    folder.chmod(0)
    try:
        problems: list[str] = []
        assert expand_image_inputs([folder], problems.append) == []
        assert problems == [f"{folder}: cannot be read (Permission denied)"]
    finally:
        folder.chmod(0o755)
