"""MiDaS from depth checkpoints: offline building in ldm, strict loading, and the `depth` command."""

from __future__ import annotations

import subprocess
import sys
import types
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoints import state_dict, write_safetensors
from PIL import Image
from scenes import make_scene

from lib_depth import DepthEstimator, conditioning_to_png16, depth_to_conditioning, image_to_tensor
from lib_depth.depth.midas import load_depth_model, midas_file_needed
from lib_depth.webui.checkpoints import checkpoint_has_depth_weights
from lib_depth.webui.depth_model import install_offline_midas

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def depth_checkpoint(tmp_path_factory, depth_model) -> Path:
    """A synthetic depth checkpoint holding a full random-weight DPT-Hybrid under depth_model.model.*"""
    tensors = state_dict("depth")
    tensors.update({f"depth_model.model.{k}": v for k, v in depth_model.model.state_dict().items()})
    return write_safetensors(tmp_path_factory.mktemp("ckpt") / "512-depth-test.safetensors", tensors)


def webui_downloader(midas_api):
    """Stand-in for the WebUI's enable_midas_autodownload wrapper (modules/sd_models.py, v1.10.1)
    on an offline machine: a missing weights file means a download, which fails."""
    midas_api.load_model_inner = midas_api.load_model
    calls = []

    def load_model_wrapper(model_type):
        calls.append(model_type)
        path = midas_api.ISL_PATHS[model_type]
        if not Path(path).exists():
            raise urllib.error.URLError("offline: cannot download dpt_hybrid-midas-501f0c75.pt")
        return midas_api.load_model_inner(model_type)

    midas_api.load_model = load_model_wrapper
    return calls


@pytest.fixture
def midas_api(monkeypatch, tmp_path):
    import ldm.modules.midas.api as api

    monkeypatch.setattr(api, "load_model", api.load_model)
    monkeypatch.setattr(api, "ISL_PATHS", {**api.ISL_PATHS, "dpt_hybrid": str(tmp_path / "midas" / "dpt_hybrid.pt")})
    # absent during the test (as before the WebUI wraps load_model), removed again afterwards
    monkeypatch.setattr(api, "load_model_inner", None, raising=False)
    monkeypatch.delattr(api, "load_model_inner")
    return api


def test_decision():
    assert midas_file_needed("/nowhere/dpt.pt", True) is False
    assert midas_file_needed("/nowhere/dpt.pt", False) is True
    assert midas_file_needed("/nowhere/dpt.pt", None) is False
    assert midas_file_needed(__file__, None) is True


def test_depth_model_builds_offline_and_gets_the_checkpoints_weights(midas_api, depth_checkpoint):
    calls = webui_downloader(midas_api)
    with pytest.raises(urllib.error.URLError):  # the native behaviour on an offline machine
        midas_api.MiDaSInference("dpt_hybrid")
    assert calls == ["dpt_hybrid"]

    undo = install_offline_midas(midas_api, lambda: checkpoint_has_depth_weights(depth_checkpoint))
    built = midas_api.MiDaSInference("dpt_hybrid")  # offline, no file: must succeed
    assert calls == ["dpt_hybrid"]  # the downloader was not called again
    assert midas_api.ISL_PATHS["dpt_hybrid"].endswith("dpt_hybrid.pt")  # restored after building

    # then the WebUI loads the checkpoint's state dict into the model: the weights are the checkpoint's
    from safetensors.torch import load_file

    weights = {
        k[len("depth_model.") :]: v for k, v in load_file(depth_checkpoint).items() if k.startswith("depth_model.")
    }
    built.load_state_dict(weights, strict=True)
    for name, value in built.state_dict().items():
        assert torch.equal(value, weights[name]), name
    undo()


def test_other_checkpoints_keep_the_native_path(midas_api, tmp_path):
    calls = webui_downloader(midas_api)
    sd2 = write_safetensors(tmp_path / "sd2.safetensors", state_dict("sd2"))
    install_offline_midas(midas_api, lambda: checkpoint_has_depth_weights(sd2))
    with pytest.raises(urllib.error.URLError):
        midas_api.load_model("dpt_hybrid")
    assert calls == ["dpt_hybrid"]


def test_install_is_idempotent_chains_and_undoes(midas_api):
    original = midas_api.load_model
    undo_first = install_offline_midas(midas_api, lambda: True)
    first = midas_api.load_model
    undo_first()
    assert midas_api.load_model is original
    install_offline_midas(midas_api, lambda: True)
    undo_second = install_offline_midas(midas_api, lambda: True)  # a reload without undo
    assert midas_api.load_model.depth2img_previous is original and midas_api.load_model is not first
    undo_second()
    assert midas_api.load_model is original

    undo = install_offline_midas(midas_api, lambda: True)
    other_extension = types.SimpleNamespace(wrapped=midas_api.load_model)
    midas_api.load_model = lambda model_type: other_extension.wrapped(model_type)
    replaced = midas_api.load_model
    undo()
    assert midas_api.load_model is replaced  # never unhook someone else's wrapper


def test_load_depth_model_is_strict(tmp_path, depth_checkpoint):
    model = load_depth_model(depth_checkpoint)
    assert sum(p.numel() for p in model.parameters()) > 100_000_000
    partial = state_dict("depth")
    partial["depth_model.model.scratch.output_conv.4.bias"] = torch.zeros(1)
    with pytest.raises(ValueError, match="MiDaS weights do not fit DPT-Hybrid"):
        load_depth_model(write_safetensors(tmp_path / "partial.safetensors", partial))


def test_depth_command_equals_the_engine(tmp_path, depth_checkpoint, depth_model):
    images = []
    for index, (width, height) in enumerate([(320, 256), (200, 300)]):
        path = tmp_path / f"photo{index}.png"
        make_scene(width, height, index).save(path)
        images.append(path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "photo0-depth.png").write_bytes(b"user's own file")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lib_depth",
            "depth",
            *map(str, images),
            "--checkpoint",
            str(depth_checkpoint),
            "-o",
            str(tmp_path / "out"),
            "--preview",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "photo0-depth.png").read_bytes() == b"user's own file"  # never overwritten
    outputs = [tmp_path / "out" / "photo0-depth-1.png", tmp_path / "out" / "photo1-depth.png"]
    for image_path, output in zip(images, outputs, strict=True):
        written = Image.open(output)
        source = Image.open(image_path)
        assert written.size == source.size and written.mode in ("I;16", "I")
        tensor = image_to_tensor(image_path)
        size = tuple(tensor.shape[-2:])
        expected = conditioning_to_png16(depth_to_conditioning(DepthEstimator(depth_model).estimate(tensor), size))[0]
        difference = np.abs(np.asarray(written, np.int64) - np.asarray(expected, np.int64)).max()
        assert difference <= 2, difference  # two float32 runs of the same weights
        assert (tmp_path / "out" / f"{image_path.stem}-depth-preview.png").exists()


def test_depth_command_errors(tmp_path, depth_checkpoint):
    sd2 = write_safetensors(tmp_path / "sd2.safetensors", state_dict("sd2"))
    make_scene(128, 128).save(tmp_path / "a.png")
    cases = [
        (["depth", str(tmp_path / "a.png"), "--checkpoint", str(sd2), "-o", str(tmp_path)], "holds no MiDaS depth"),
        (
            ["depth", str(tmp_path / "nope.png"), "--checkpoint", str(sd2), "-o", str(tmp_path)],
            "nope.png: no such file or folder",
        ),
        (
            ["depth", str(tmp_path / "a.png"), "--checkpoint", str(tmp_path / "x.ckpt"), "-o", str(tmp_path)],
            "not found",
        ),
    ]
    for args, message in cases:
        result = subprocess.run(
            [sys.executable, "-m", "lib_depth", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_depth_over_a_folder_as_one_shared_sequence(tmp_path, depth_checkpoint):
    """`depth FOLDER --normalise shared`: natural order, every frame estimated once, one range."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for n in (1, 2, 10):  # natural order: 1, 2, 10
        make_scene(96, 64, n).save(frames / f"frame_{n}.png")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "lib_depth", "depth", str(frames), "--checkpoint", str(depth_checkpoint), "-o",
         str(out), "--normalise", "shared"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [line.split(" -> ")[0] for line in result.stdout.splitlines()] == [
        str(frames / f"frame_{n}.png") for n in (1, 2, 10)
    ]
    maps = [np.asarray(Image.open(out / f"frame_{n}-depth.png"), dtype=np.int64) for n in (1, 2, 10)]
    assert min(int(m.min()) for m in maps) == 0 and max(int(m.max()) for m in maps) == 65535
    assert sum(int(m.max()) == 65535 for m in maps) < 3 or sum(int(m.min()) == 0 for m in maps) < 3  # one range
