"""Long frame sequences in memory that does not grow with the frames: the streamed ranges are the
ranges of all frames at once, the command line's maps do not change (golden file), the estimates
kept on disk come back exactly and leave nothing behind, and an interrupted run leaves only
complete maps."""

from __future__ import annotations

import gc
import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image
from sequence_golden import CASES, GOLDEN, run_cases, write_frames, write_weights

from lib_depth import DepthSettings
from lib_depth.cli import depth as depth_command
from lib_depth.cli.main import main
from lib_depth.io import depth_store
from lib_depth.io.depth_store import DepthStore
from lib_depth.io.files import create_new_file
from lib_depth.normalise import ExactQuantiles, SequenceMeter, settings_ranges

EDITS = {"invert": True, "near": 0.9, "far": 0.05, "gamma": 1.6, "blur": 6.0}


def test_sequence_maps_match_the_golden_file(tmp_path):
    """The maps written before streaming (tests/data/sequence-golden.npz) are written again, exactly."""
    golden = np.load(GOLDEN)
    assert set(golden.files) == set(CASES)
    maps = run_cases(tmp_path, main)
    for name in CASES:
        difference = np.abs(maps[name].astype(np.int64) - golden[name].astype(np.int64))
        assert difference.max() == 0, (name, int(difference.max()))


def frames_with_outliers(count: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    frames = []
    for index in range(count):
        frame = torch.rand(1, 1, 30 + index % 3, 44, generator=generator) * (1 + index) + index * 0.3
        frame[0, 0, index % 5, 7] += 40.0 * (index % 4 == 1)  # an outlier pixel in some frames
        frames.append(frame)
    return frames


@pytest.mark.parametrize("mode", ["per image", "shared", "smoothed"])
@pytest.mark.parametrize("percentile", [0.0, 0.7, 3.0])
@pytest.mark.parametrize("edits", [{}, EDITS])
def test_the_meter_gives_the_ranges_of_all_frames_at_once(mode, percentile, edits):
    frames = frames_with_outliers(9)
    settings = DepthSettings(normalise=mode, percentile=percentile, time_constant=2.5, **edits)
    expected = settings_ranges(frames, (24, 40), settings, (192, 320))
    meter = SequenceMeter((24, 40), settings, (192, 320))
    online = [meter.add(frame) for frame in frames]
    reads = []

    def again():
        reads.append(1)
        return iter(frames)

    assert meter.finish(again) == expected
    assert online == (expected if mode != "shared" else [None] * len(frames))
    if mode != "shared":
        assert reads == []  # each range was known as its frame came
    else:  # the percentiles' selection: one to three more reads (64 bits, 16 a pass); the edits': one
        assert bool(percentile) <= len(reads) - bool(edits) <= 3 * bool(percentile)


def test_exact_quantiles_are_kthvalue_over_everything():
    generator = torch.Generator().manual_seed(3)
    chunks = [torch.randn(400, generator=generator) * 10.0**power for power in (-4, 0, 3)]
    chunks += [torch.tensor([-0.0, 0.0, 5.0, 5.0, -7.5]), torch.full((300,), 2.25), chunks[0].double() * 1.000001]
    values = torch.cat([chunk.double() for chunk in chunks])
    quantiles = ExactQuantiles()
    for chunk in chunks:
        quantiles.add(chunk)
    ranks = [0, 1, 17, 600, 1000, values.numel() - 2, values.numel() - 1]
    assert quantiles.select(ranks, lambda: iter(chunks)) == [float(values.kthvalue(r + 1).values) for r in ranks]
    with pytest.raises(ValueError, match="rank"):
        quantiles.select([values.numel()], lambda: iter(chunks))


def test_the_store_gives_back_each_depth_exactly_and_removes_its_folder(tmp_path):
    depths = {0: torch.rand(1, 1, 7, 9), 1: torch.rand(1, 1, 7, 9).double() * 1e300, "x": torch.rand(3, 5)}
    with DepthStore(tmp_path) as store:
        folder = store.folder
        assert all(store.put(key, depth) for key, depth in depths.items())
        assert store.bytes == sum(d.numel() * d.element_size() for d in depths.values()) and len(store) == 3
        for key, depth in depths.items():
            back = store.get(key)
            assert back.dtype == depth.dtype and torch.equal(back, depth)
        assert store.get(5) is None and folder.is_dir()
    assert not folder.exists() and list(tmp_path.iterdir()) == []
    full = DepthStore(tmp_path, reserve=1 << 62)  # a disk that cannot spare the reserve: nothing stored
    assert not full.put(0, torch.rand(4, 4)) and full.get(0) is None and full.refused == 1
    full.close()
    released = DepthStore(tmp_path)  # a Batch-tab sequence's store, never closed: removed when collected
    released.put(0, torch.rand(4, 4))
    folder = released.folder
    del released
    gc.collect()
    assert not folder.exists()


def test_an_interrupted_write_leaves_no_file(tmp_path):
    def interrupted(file):
        file.write(b"\x89PNG half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        create_new_file(tmp_path / "frame-depth.png", interrupted)
    assert list(tmp_path.iterdir()) == []
    written = create_new_file(tmp_path / "frame-depth.png", lambda file: file.write(b"whole"))
    assert written.read_bytes() == b"whole" and [p.name for p in tmp_path.iterdir()] == ["frame-depth.png"]


@pytest.fixture
def sequence_folder(tmp_path):
    frames = write_frames(tmp_path / "frames")
    return tmp_path, frames, write_weights(tmp_path)


def depth_arguments(folder, weights, out, *options):
    return ["depth", str(folder), "--estimator", "depth-anything-v2-small", "--estimator-weights", str(weights),
            "--resolution", "140", "-o", str(out), *options]  # fmt: skip


def test_without_room_on_disk_shared_frames_are_estimated_again_with_the_same_maps(
    sequence_folder, monkeypatch, capsys
):
    """The store refuses every frame (a disk too full): the second pass estimates each frame again;
    the maps are the golden ones all the same, and the bad frames are named and left out."""
    tmp_path, frames, weights = sequence_folder
    monkeypatch.setattr(depth_store, "DEFAULT_RESERVE", 1 << 62)
    Image.new("RGB", (128, 80)).save(frames[0].parent / "frame_8.png")  # another size: refused by name
    (frames[0].parent / "frame_9.png").write_bytes(b"not a picture")
    out = tmp_path / "out"
    assert main(depth_arguments(frames[0].parent, weights, out, *CASES["shared-percentile-edits"])) == 1
    errors = capsys.readouterr().err
    assert "frame_8.png: (128, 80) pixels, but the sequence's first frame has (96, 64)" in errors
    assert "frame_9.png" in errors and "2 of 9 item(s) failed" in errors
    golden = np.load(GOLDEN)["shared-percentile-edits"]
    written = np.stack([np.asarray(Image.open(out / f"{p.stem}-depth.png")) for p in frames])
    assert np.array_equal(written, golden) and sorted(p.name for p in out.iterdir()) == sorted(
        f"{p.stem}-depth.png" for p in frames
    )


@pytest.mark.parametrize("mode", ["shared", "smoothed"])
def test_a_killed_run_leaves_complete_maps_and_no_temporary_files(sequence_folder, monkeypatch, mode):
    """SIGTERM (as `kill` sends) on the fourth frame: exit 130, each map written is complete, no
    partial file, and the estimates' temporary folder is gone."""
    tmp_path, frames, weights = sequence_folder
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    estimate, calls = depth_command._estimate, []

    def killed_on_the_fourth(*args):
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return estimate(*args)

    monkeypatch.setattr(depth_command, "_estimate", killed_on_the_fourth)
    out, handler = tmp_path / "out", signal.getsignal(signal.SIGTERM)
    assert main(depth_arguments(frames[0].parent, weights, out, *CASES[mode])) == 130
    assert signal.getsignal(signal.SIGTERM) == handler  # the command's own handler is gone again
    written = sorted(out.iterdir()) if out.exists() else []
    assert [p.name for p in written] == ([] if mode == "shared" else [f"frame_{n}-depth.png" for n in (1, 2, 3)])
    for index, path in enumerate(written):  # smoothed writes each frame as it goes: complete, and golden
        assert np.array_equal(np.asarray(Image.open(path)), np.load(GOLDEN)[mode][index])
    assert list(scratch.iterdir()) == []
