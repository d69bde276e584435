"""`python -m lib_depth preview`: a real subprocess on real files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lib_depth import DepthSettings, conditioning_to_previews, depth_to_conditioning, depth_to_tensor, load_depth_map
from lib_depth.geometry import CROP_AND_RESIZE, fit_depth

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lib_depth", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_preview_writes_the_conditioning_the_model_gets(tmp_path):
    y, x = np.mgrid[0:200, 0:300]
    Image.fromarray((x * 200 + y * 10).astype(np.uint16)).save(tmp_path / "map.png")
    result = run_cli(
        "preview",
        str(tmp_path / "map.png"),
        "-o",
        str(tmp_path / "out.png"),
        "--width",
        "256",
        "--height",
        "192",
        "--gamma",
        "2",
        "--invert",
    )
    assert result.returncode == 0, result.stderr
    assert "256x192" in result.stdout
    written = Image.open(tmp_path / "out.png")
    settings = DepthSettings(gamma=2.0, invert=True)
    fitted = fit_depth(load_depth_map(tmp_path / "map.png"), 256, 192, CROP_AND_RESIZE)  # txt2img's geometry
    conditioning = depth_to_conditioning(depth_to_tensor(fitted), (24, 32), settings)
    expected = conditioning_to_previews(conditioning, (192, 256))[0]
    assert written.size == (256, 192) and np.array_equal(np.asarray(written), np.asarray(expected))
    assert torch.tensor(np.asarray(written)[:, 0].astype(float)).mean() > 200  # inverted: left is near


def test_colour_preview(tmp_path):
    Image.fromarray(np.tile(np.arange(128, dtype=np.uint8), (96, 1))).save(tmp_path / "map.png")
    result = run_cli("preview", str(tmp_path / "map.png"), "-o", str(tmp_path / "c.png"), "--color")
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "c.png").mode == "RGB"


def test_user_mistakes_are_one_line_errors_without_traceback(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    cases = [
        (("preview", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o.png")), "file not found"),
        (("preview", str(tmp_path / "notes.txt"), "-o", str(tmp_path / "o.png")), "not a readable image"),
        (("preview", str(tmp_path / "notes.txt"), "-o", str(tmp_path / "o.png"), "--gamma", "0"), "gamma"),
    ]
    for args, message in cases:
        result = run_cli(*args)
        assert result.returncode == 2
        assert message in result.stderr and "Traceback" not in result.stderr


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0 and "preview" in result.stdout


def test_depth_with_depth_anything_weights_given_as_a_file(tmp_path):
    """`depth --estimator depth-anything-v2-small --estimator-weights FILE`: offline, no checkpoint needed,
    in either weights layout, at the resolution asked for."""
    import numpy as np
    import torch
    from safetensors.torch import save_file
    from scenes import make_scene

    from lib_depth.cli.main import main
    from lib_depth.depth.estimators.dav2_weights import original_to_hf
    from lib_depth.depth.estimators.depth_anything_v2 import build_depth_anything_v2

    torch.manual_seed(0)
    model = build_depth_anything_v2("vits")
    with torch.no_grad():
        model.depth_head.scratch.output_conv2[2].bias.fill_(0.5)
    torch.save(model.state_dict(), tmp_path / "depth_anything_v2_vits.pth")
    save_file(
        {k: v.contiguous() for k, v in original_to_hf(model.state_dict()).items()}, str(tmp_path / "m.safetensors")
    )
    make_scene(96, 64, 3).save(tmp_path / "a.png")
    written = []
    for weights in ("depth_anything_v2_vits.pth", "m.safetensors"):
        out = tmp_path / weights.split(".")[0]
        code = main(
            ["depth", str(tmp_path / "a.png"), "--estimator", "depth-anything-v2-small", "--estimator-weights",
             str(tmp_path / weights), "--resolution", "140", "-o", str(out)]
        )  # fmt: skip
        assert code == 0
        written.append(np.asarray(Image.open(out / "a-depth.png"), dtype=np.int64))
    for depth in written:  # (the two layouts differ slightly away from 518x518: their position-embedding rule)
        assert depth.shape == (64, 96) and depth.max() == 65535 and depth.min() == 0
    assert main(["depth", str(tmp_path / "a.png"), "--estimator", "depth-anything-v2-small", "-o", str(tmp_path)]) == 2
