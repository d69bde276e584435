"""The img2img Batch tab with a depth maps folder and sequence normalisation, driven as
modules/img2img.py process_batch (v1.10.1) drives a script: one process() and one conditioning per
frame, the same processing object throughout. WebUI modules: tests/webui_fakes.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import webui_fakes
from conftest import CountingModule
from PIL import Image
from scenes import make_scene

from lib_depth import DepthEstimator, image_to_tensor
from lib_depth.run import DepthInputError
from lib_depth.webui.generation import process

SIZE = 128


class LatentDepth2ImageDiffusion(torch.nn.Module):
    def __init__(self, depth_model):
        super().__init__()
        self.depth_model = depth_model
        self.sd_checkpoint_info = None
        self.dtype = torch.float32


Img2Img = webui_fakes.Img2Img  # StableDiffusionProcessingImg2Img, as far as the glue reads it


def ball_map(step: int) -> Image.Image:
    """A fixed background ramp with a disc coming nearer (16-bit)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    depth = 0.2 + 0.3 * x / SIZE
    disc = (x - 64) ** 2 + (y - 64) ** 2 < 20**2
    depth[disc] = 0.5 + 0.1 * step
    return Image.fromarray((depth * 65535).astype(np.uint16))


@pytest.fixture
def frames(tmp_path):
    """5 frames and a maps folder with maps for frames 1-4 under the pairing's name variants."""
    frames, maps = tmp_path / "frames", tmp_path / "maps"
    frames.mkdir()
    maps.mkdir()
    for n in range(5):
        make_scene(SIZE, SIZE, n).save(frames / f"frame_{n + 1}.png")
    ball_map(0).save(maps / "frame_1.png")
    ball_map(1).save(maps / "frame_2-depth.png")
    ball_map(2).save(maps / "frame_3_depth.tif")
    ball_map(3).save(maps / "frame_4.png")
    return frames, maps


def run_batch(webui, model, frames, args):
    """process_batch: each frame read with images.read, p.init_images set, process(), conditioning."""
    p = Img2Img(model)
    results = []
    for frame in webui.modules["modules.shared"].walk_files(str(frames), allowed_extensions=(".png",)):
        image = webui.modules["modules.images"].read(frame)
        p.init_images = [image]
        process(p, args)
        results.append(p.depth2img_image_conditioning(image_to_tensor(image)))
    return p, results


def test_frames_pair_with_their_maps_and_the_one_without_is_estimated(monkeypatch, frames, dpt_head):
    counting = CountingModule(dpt_head)
    model = LatentDepth2ImageDiffusion(counting)
    webui = webui_fakes.install(monkeypatch, sd_model=model)
    frames_dir, maps_dir = frames
    args = [{"depth_folder": str(maps_dir), "frames_folder": str(frames_dir), "missing_map": "estimate"}]
    p, results = run_batch(webui, model, frames_dir, args)
    assert len(results) == 5 and [r.shape for r in results] == [(1, 1, 16, 16)] * 5
    for n in range(4):  # the map's disc is nearer than its background: the centre is brightest
        assert results[n][0, 0, 8, 8] == results[n].max() and results[n][0, 0, 8, 8] > results[n][0, 0, 8, 1]
    estimated = DepthEstimator(dpt_head).estimate(image_to_tensor(make_scene(SIZE, SIZE, 4)))
    from lib_depth import depth_to_conditioning

    assert torch.allclose(results[4], depth_to_conditioning(estimated, (16, 16)), atol=1e-5)
    assert counting.batch_sizes == [1]  # only the frame without a map was estimated
    # the user is told which frame was estimated (live WebUI: it was estimated without a word)
    assert list(p.comments) == [
        "Depth2img: frame_5.png: no depth map (looked for frame_5[-depth|_depth].<image extension>); "
        "its depth will be estimated"
    ]


def test_a_missing_map_stops_the_batch_with_its_name(monkeypatch, frames, dpt_head):
    model = LatentDepth2ImageDiffusion(dpt_head)
    webui = webui_fakes.install(monkeypatch, sd_model=model)
    frames_dir, maps_dir = frames
    args = [{"depth_folder": str(maps_dir), "frames_folder": str(frames_dir)}]  # missing_map: stop
    p = Img2Img(model, [webui.modules["modules.images"].read(frames_dir / "frame_1.png")])
    process(p, args)
    with pytest.raises(DepthInputError, match=r"1 frame\(s\) have no usable depth map:\nframe_5.png: no depth map"):
        p.depth2img_image_conditioning(image_to_tensor(p.init_images[0]))


def test_shared_normalisation_keeps_the_background_still(monkeypatch, frames, dpt_head):
    model = LatentDepth2ImageDiffusion(dpt_head)
    webui = webui_fakes.install(monkeypatch, sd_model=model)
    frames_dir, maps_dir = frames
    (frames_dir / "frame_5.png").unlink()  # frames 1-4: all with maps
    base = {"depth_folder": str(maps_dir), "frames_folder": str(frames_dir)}
    _, per_image = run_batch(webui, model, frames_dir, [base])
    _, shared = run_batch(webui, model, frames_dir, [{**base, "normalise": "shared"}])

    def background_change(results):
        return max(
            float((a[0, 0, :, :3] - b[0, 0, :, :3]).abs().mean()) for a, b in zip(results, results[1:], strict=False)
        )

    assert background_change(per_image) > 0.02
    assert background_change(shared) < background_change(per_image) / 10


def test_the_depth_folder_outside_the_batch_says_so(monkeypatch, frames, dpt_head, tmp_path):
    model = LatentDepth2ImageDiffusion(dpt_head)
    webui_fakes.install(monkeypatch, sd_model=model)
    frames_dir, maps_dir = frames
    other = make_scene(SIZE, SIZE, 99)
    p = Img2Img(model, [other])
    process(p, [{"depth_folder": str(maps_dir), "frames_folder": str(frames_dir), "missing_map": "estimate"}])
    with pytest.raises(DepthInputError, match="not one of the Batch tab's frames"):
        p.depth2img_image_conditioning(image_to_tensor(other))
    p = Img2Img(model, [other])
    process(p, [{"depth_folder": str(maps_dir)}])  # the Batch tab's input directory was never entered
    with pytest.raises(DepthInputError, match="enter the Batch tab's input directory"):
        p.depth2img_image_conditioning(image_to_tensor(other))


def test_over_the_api_a_server_folder_is_refused_and_maps_come_as_a_list(monkeypatch, dpt_head):
    from lib_depth.webui.payload import encode_png

    model = LatentDepth2ImageDiffusion(dpt_head)
    webui_fakes.install(monkeypatch, sd_model=model)
    images = [make_scene(SIZE, SIZE, seed) for seed in (1, 2)]
    p = Img2Img(model, images, is_api=True)
    process(p, [{"depth_folder": "/etc"}])
    from fastapi import HTTPException

    with pytest.raises(HTTPException) as refused:  # (str() of it is empty on the WebUI's starlette 0.26)
        p.depth2img_image_conditioning(image_to_tensor(images))
    assert (
        refused.value.status_code == 422 and "only the WebUI's Batch tab reads a server folder" in refused.value.detail
    )
    p = Img2Img(model, images, is_api=True)
    maps = [encode_png(ball_map(0)), encode_png(ball_map(5))]
    process(p, [{"source": "upload", "image": maps, "normalise": "shared"}])
    both = p.depth2img_image_conditioning(image_to_tensor(images))
    assert both.shape == (2, 1, 16, 16)
    assert torch.allclose(both[0, 0, :, :3], both[1, 0, :, :3], atol=1e-6)  # one range: same background
    p = Img2Img(model, images, is_api=True)
    process(p, [{"source": "upload", "image": maps + maps[:1]}])
    with pytest.raises(HTTPException) as refused:
        p.depth2img_image_conditioning(image_to_tensor(images))
    assert "3 depth maps for 2 images" in refused.value.detail


def test_the_batch_tab_normalised_together_estimates_each_frame_once(monkeypatch, frames, dpt_head):
    """No depth maps folder: `shared` gathers every frame's estimate once; the generations hit the cache."""
    counting = CountingModule(dpt_head)
    model = LatentDepth2ImageDiffusion(counting)
    webui = webui_fakes.install(monkeypatch, sd_model=model)
    frames_dir, _ = frames
    args = [{"frames_folder": str(frames_dir), "normalise": "shared"}]
    p, results = run_batch(webui, model, frames_dir, args)
    assert len(results) == 5 and sum(counting.batch_sizes) == 5  # five frames, five estimates in all
    assert min(float(r.min()) for r in results) == -1.0 and max(float(r.max()) for r in results) == 1.0
    assert sum(float(r.max()) == 1.0 for r in results) < 5  # one range for all: not every frame reaches it
    # an ordinary img2img generation with the same settings is not a frame: normalised by itself
    other = make_scene(SIZE, SIZE, 42)
    p = Img2Img(model, [other])
    process(p, args)
    alone = p.depth2img_image_conditioning(image_to_tensor(other))
    assert float(alone.min()) == -1.0 and float(alone.max()) == 1.0


def test_a_sequence_longer_than_the_cache_setting_is_still_estimated_once(monkeypatch, frames, dpt_head):
    """ "Depth cache size" 2 and five frames normalised together: the batch keeps every frame's
    estimate, so each frame is estimated once, not again by its generation."""
    counting = CountingModule(dpt_head)
    model = LatentDepth2ImageDiffusion(counting)
    webui = webui_fakes.install(monkeypatch, sd_model=model)
    webui.opts.depth2img_cache_entries = 2
    frames_dir, _ = frames
    _, results = run_batch(webui, model, frames_dir, [{"frames_folder": str(frames_dir), "normalise": "shared"}])
    assert len(results) == 5 and sum(counting.batch_sizes) == 5


def test_distance_maps_in_exr_and_npy_and_one_without_depth_is_estimated(monkeypatch, frames, dpt_head):
    """A Z-pass sequence: OpenEXR and .npy maps of distance; a map with no valid distance follows
    the policy (estimated, and the user is told), the other frames go on."""
    import exr_writer

    model = LatentDepth2ImageDiffusion(dpt_head)
    webui = webui_fakes.install(monkeypatch, sd_model=model)
    frames_dir, _ = frames
    maps = frames_dir.parent / "z-maps"
    maps.mkdir()
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    distance = (2.0 + 6.0 * x / SIZE).astype(np.float32)  # farther to the right
    (maps / "frame_1.exr").write_bytes(exr_writer.exr_bytes({"Z": distance}))
    np.save(maps / "frame_2-depth.npy", distance.astype(np.float64))
    (maps / "frame_3.exr").write_bytes(exr_writer.exr_bytes({"Z": np.zeros_like(distance)}))  # no depth at all
    for n in (4, 5):
        (frames_dir / f"frame_{n}.png").unlink()
    args = [{"depth_folder": str(maps), "frames_folder": str(frames_dir), "missing_map": "estimate"}]
    args[0]["depth_kind"] = "distance"
    p, results = run_batch(webui, model, frames_dir, args)
    from lib_depth import depth_to_conditioning

    exact = depth_to_conditioning(torch.from_numpy(1 / distance)[None, None], (16, 16))
    for n in (0, 1):
        assert (results[n] - exact).abs().max() < 1e-4
    estimated = DepthEstimator(dpt_head).estimate(image_to_tensor(make_scene(SIZE, SIZE, 2)))
    assert torch.allclose(results[2], depth_to_conditioning(estimated, (16, 16)), atol=1e-5)
    assert list(p.comments) == [
        "Depth2img: depth map frame_3.exr: no pixel holds a distance (all are 0, negative, NaN or infinite); "
        "its depth is estimated"
    ]
