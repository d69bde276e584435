"""The Batch tab's sequence pass over long sequences, driven as modules/img2img.py process_batch
(v1.10.1) drives a script (WebUI modules: tests/webui_fakes.py): each frame estimated once whatever
the cache setting, memory that does not grow with the frames, progress in shared.state and cleared
after, Interrupt/Skip honoured, and a later pass of another size reusing the ranges."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import webui_fakes
from conftest import CountingModule
from PIL import Image
from scenes import make_scene
from test_webui_batch import Img2Img, LatentDepth2ImageDiffusion, run_batch

from lib_depth import DepthEstimator, DepthSettings, depth_to_conditioning, image_to_tensor
from lib_depth.normalise import settings_ranges
from lib_depth.run import DepthInputError
from lib_depth.webui.generation import process

SIZE = 128


@pytest.fixture(autouse=True)
def empty_cache():
    """The WebUI's depth cache outlives a test, and its key names a network by id, which a later
    test's network can reuse: start each test with it empty, so forwards count as the test expects."""
    from lib_depth.webui.depth_model import CACHE

    limits = (CACHE.max_entries, CACHE.max_bytes)
    CACHE.resize(0, 0)
    CACHE.resize(*limits)


@pytest.fixture
def frames(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for n in range(6):
        make_scene(SIZE, SIZE, n).save(folder / f"frame_{n + 1}.png")
    return folder


class Watching(CountingModule):
    """Counts forwards and records what the WebUI's progress shows during each; `on_forward` may act."""

    def __init__(self, inner, state, on_forward=None):
        super().__init__(inner)
        self.state, self.on_forward, self.seen = state, on_forward, []

    def forward(self, x):
        self.seen.append((self.state.textinfo, self.state.sampling_step, self.state.sampling_steps))
        if self.on_forward:
            self.on_forward(len(self.batch_sizes) + 1, self.state)
        return super().forward(x)


@pytest.mark.parametrize("cache_entries", [0, 2, 16])
@pytest.mark.parametrize("mode", ["shared", "smoothed"])
def test_each_frame_is_estimated_once_whatever_the_cache_and_the_ranges_are_all_frames(
    monkeypatch, frames, dpt_head, cache_entries, mode
):
    webui = webui_fakes.install(monkeypatch, sd_model=None)
    model = LatentDepth2ImageDiffusion(Watching(dpt_head, webui.shared.state))
    webui.shared.sd_model = model
    webui.opts.depth2img_cache_entries = cache_entries
    settings = {"frames_folder": str(frames), "normalise": mode, "percentile": 1.0, "gamma": 1.3}
    p, results = run_batch(webui, model, frames, [settings])
    assert sum(model.depth_model.batch_sizes) == 6  # six frames, six estimates, the cache on or off
    from lib_depth.webui.depth_model import CACHE

    assert len(CACHE._entries) <= cache_entries  # the cache keeps its setting: no growth with the frames
    # the same conditioning as every frame's depth normalised at once, in memory
    estimates = [DepthEstimator(dpt_head).estimate(image_to_tensor(Image.open(f))) for f in sorted(frames.iterdir())]
    ranges = settings_ranges(estimates, (16, 16), DepthSettings(normalise=mode, percentile=1.0, gamma=1.3))
    for result, depth, depth_range in zip(results, estimates, ranges, strict=True):
        expected = depth_to_conditioning(
            depth, (16, 16), DepthSettings(normalise=mode, percentile=1.0, gamma=1.3), depth_range=depth_range
        )
        assert torch.equal(result, expected)
    assert p.depth2img_batch.store is not None and len(p.depth2img_batch.store) == 6


def test_the_pass_shows_progress_and_clears_it(monkeypatch, frames, dpt_head):
    webui = webui_fakes.install(monkeypatch, sd_model=None)
    state = webui.shared.state
    model = LatentDepth2ImageDiffusion(Watching(dpt_head, state))
    webui.shared.sd_model = model
    run_batch(webui, model, frames, [{"frames_folder": str(frames), "normalise": "shared"}])
    assert model.depth_model.seen == [(f"Depth2img: depth of frame {n + 1} of 6", n, 6) for n in range(6)]
    assert state.textinfo is None and (state.sampling_step, state.sampling_steps) == (0, 0)


@pytest.mark.parametrize("button", ["interrupted", "skipped"])
def test_interrupt_or_skip_stops_the_pass_before_any_generation(monkeypatch, frames, dpt_head, button):
    webui = webui_fakes.install(monkeypatch, sd_model=None)
    state = webui.shared.state

    def press_on_the_third(number, state):
        if number == 3:
            setattr(state, button, True)

    model = LatentDepth2ImageDiffusion(Watching(dpt_head, state, press_on_the_third))
    webui.shared.sd_model = model
    image = webui.modules["modules.images"].read(frames / "frame_1.png")
    p = Img2Img(model, [image])
    process(p, [{"frames_folder": str(frames), "normalise": "smoothed"}])
    with pytest.raises(DepthInputError, match=rf"stopped while measuring the sequence \({button} at frame 4 of 6\)"):
        p.depth2img_image_conditioning(image_to_tensor(image))
    assert sum(model.depth_model.batch_sizes) == 3 and state.textinfo is None


def test_a_second_pass_of_another_size_reuses_the_ranges_or_says_why_not(monkeypatch, frames, dpt_head):
    webui = webui_fakes.install(monkeypatch, sd_model=None)
    model = LatentDepth2ImageDiffusion(Watching(dpt_head, webui.shared.state))
    webui.shared.sd_model = model
    image = webui.modules["modules.images"].read(frames / "frame_2.png")
    p = Img2Img(model, [image])
    process(p, [{"frames_folder": str(frames), "normalise": "shared"}])
    p.depth2img_image_conditioning(image_to_tensor(image))
    first = p.depth2img_batch.ranges
    twice = image_to_tensor(image.resize((2 * SIZE, 2 * SIZE)))
    second = p.depth2img_image_conditioning(twice)  # a hires-fix-like pass: the same fit, twice the size
    assert second.shape == (1, 1, 32, 32) and sum(model.depth_model.batch_sizes) == 6 + 1  # its own image only
    assert [(r.low, r.high) for r in p.depth2img_batch.ranges] == [(r.low, r.high) for r in first]
    assert "Depth2img sequence" not in p.extra_generation_params
    from lib_depth.webui.prepare import prepare_image

    wide = image_to_tensor(prepare_image(image, width=2 * SIZE, height=SIZE))  # as the WebUI resizes it
    p.depth2img_image_conditioning(wide)  # another aspect: measured again, and the infotext says why
    assert sum(model.depth_model.batch_sizes) == 6 + 1 + 6  # the frame's own estimate came from the pass
    assert p.extra_generation_params["Depth2img sequence"] == (
        "ranges measured again at 256x128: another aspect ratio than 256x256"
    )


def peak_memory(folder: Path, frames: int) -> float:
    """MiB: the peak resident memory of a child process running the batch over `frames` frames."""
    here = Path(__file__).parent
    code = (
        f"import sys; sys.path[:0] = [{str(here)!r}, {str(here.parent)!r}]; "
        f"import test_webui_sequence_pass as t; t._child(t.Path({str(folder)!r}), {frames})"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return float(result.stdout.split()[-1])


def test_memory_does_not_grow_with_the_frames(tmp_path):
    """Frames with 16-bit maps of 1024x1024 (4 MiB each at generation size): 40 frames need no more
    memory than 8 (before, the pass kept every frame's map: +128 MiB)."""
    few, many = peak_memory(tmp_path / "few", 8), peak_memory(tmp_path / "many", 40)
    assert many < few + 32, (few, many)


def _child(folder: Path, count: int, width: int = 1024, height: int = 1024) -> None:
    """Writes `count` frames and maps, runs the Batch tab over them (shared), prints the peak RSS
    (also bench/bench_sequence_memory.py's Batch-tab row)."""
    import resource

    from models import build_dpt_head

    frames, maps = folder / "frames", folder / "maps"
    frames.mkdir(parents=True)
    maps.mkdir()
    y, x = np.mgrid[0:height, 0:width]
    for n in range(count):
        Image.new("RGB", (width, height), (n % 256, 2 * n % 256, n // 256)).save(frames / f"frame_{n + 1}.png")
        Image.fromarray(((x + y * (1 + n % 3)) * 16 % 65536).astype(np.uint16)).save(maps / f"frame_{n + 1}.png")
    with pytest.MonkeyPatch.context() as monkeypatch:
        model = LatentDepth2ImageDiffusion(build_dpt_head())
        webui = webui_fakes.install(monkeypatch, sd_model=model)
        p = Img2Img(model, width=width, height=height)
        args = [{"frames_folder": str(frames), "depth_folder": str(maps), "normalise": "shared", "gamma": 1.2}]
        for frame in sorted(frames.iterdir()):
            image = webui.modules["modules.images"].read(frame)
            p.init_images = [image]
            process(p, args)
            p.depth2img_image_conditioning(image_to_tensor(image))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def test_bad_frames_are_listed_by_name_before_any_generation(monkeypatch, frames, dpt_head):
    """Two unreadable frames: the pass lists both and stops; after the first, nothing more is estimated."""
    (frames / "frame_3.png").write_bytes(b"not a picture")
    (frames / "frame_5.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    webui = webui_fakes.install(monkeypatch, sd_model=None)
    model = LatentDepth2ImageDiffusion(Watching(dpt_head, webui.shared.state))
    webui.shared.sd_model = model
    image = webui.modules["modules.images"].read(frames / "frame_1.png")
    p = Img2Img(model, [image])
    process(p, [{"frames_folder": str(frames), "normalise": "shared"}])
    with pytest.raises(DepthInputError) as stopped:
        p.depth2img_image_conditioning(image_to_tensor(image))
    lines = str(stopped.value).splitlines()
    assert lines[0] == "depth2img: 2 frame(s) cannot be used; no frame was generated:"
    assert [line.split(":")[0] for line in lines[1:]] == ["frame_3.png", "frame_5.png"]
    assert sum(model.depth_model.batch_sizes) == 2 and webui.shared.state.textinfo is None
