"""The command line inside a folder laid out like a WebUI install, run as a user would: a
subprocess with the WebUI's Python, no PYTHONPATH, from the WebUI folder and the extension folder."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from checkpoints import state_dict, write_safetensors
from scenes import make_scene
from test_midas import depth_checkpoint  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
MARKER = "ldm: the WebUI's repositories copy"


@pytest.fixture
def webui(tmp_path, depth_checkpoint) -> Path:  # noqa: F811
    """<webui>/extensions/sd-webui-depth2img (this project), <webui>/repositories/...ldm, models.

    The WebUI's ldm is a package that announces itself and then serves the installed ldm's
    modules, so the test sees which copy the command line imported and the command still works.
    """
    root = tmp_path / "stable-diffusion-webui"
    extension = root / "extensions" / "sd-webui-depth2img"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "lib_depth", extension / "lib_depth", ignore=ignore)
    shutil.copy(ROOT / "depth2img-cli.py", extension)
    real_ldm = importlib.util.find_spec("ldm").submodule_search_locations[0]
    ldm = root / "repositories" / "stable-diffusion-stability-ai" / "ldm"
    ldm.mkdir(parents=True)
    (ldm / "__init__.py").write_text(
        f"import sys\nprint({MARKER!r}, file=sys.stderr)\n__path__.append({real_ldm!r})\n", encoding="utf-8"
    )
    models = root / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    shutil.copy(depth_checkpoint, models / "512-depth-ema.safetensors")
    write_safetensors(models / "v2-1_512-ema-pruned.safetensors", state_dict("sd2"))
    make_scene(96, 64, 3).save(root / "photo.png")
    return root


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_from_the_webui_folder(webui):
    script = Path("extensions") / "sd-webui-depth2img" / "depth2img-cli.py"
    result = run(webui, script, "doctor")
    assert result.returncode == 0, result.stderr
    assert "512-depth-ema.safetensors" in result.stdout and "v2-1_512-ema-pruned.safetensors" in result.stdout
    result = run(
        webui,
        script,
        "depth",
        "photo.png",
        "--checkpoint",
        "models/Stable-diffusion/512-depth-ema.safetensors",
        "-o",
        "outputs/depth",
    )
    assert result.returncode == 0, result.stderr
    assert MARKER in result.stderr and "Traceback" not in result.stderr
    assert (webui / "outputs" / "depth" / "photo-depth.png").is_file()


def test_from_the_extension_folder(webui):
    extension = webui / "extensions" / "sd-webui-depth2img"
    result = run(extension, "-m", "lib_depth", "doctor")  # finds ../../models/Stable-diffusion
    assert result.returncode == 0, result.stderr
    assert "512-depth-ema.safetensors" in result.stdout
    result = run(
        extension,
        "-m",
        "lib_depth",
        "depth",
        "../../photo.png",
        "--checkpoint",
        "../../models/Stable-diffusion/512-depth-ema.safetensors",
        "-o",
        "../../outputs",
    )
    assert result.returncode == 0, result.stderr
    assert MARKER in result.stderr  # the WebUI's ldm, found without PYTHONPATH


def test_from_anywhere_with_the_script_path(webui, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = webui / "extensions" / "sd-webui-depth2img" / "depth2img-cli.py"
    result = run(elsewhere, script, "doctor", webui / "models" / "Stable-diffusion")
    assert result.returncode == 0, result.stderr
    assert "2 file(s) examined, all fine" in result.stdout


def test_a_missing_module_is_one_line_naming_it(webui):
    """A broken ldm (here: the WebUI's copy without its modules) is named, with what to run."""
    init = webui / "repositories" / "stable-diffusion-stability-ai" / "ldm" / "__init__.py"
    init.write_text("", encoding="utf-8")
    result = run(
        webui,
        Path("extensions") / "sd-webui-depth2img" / "depth2img-cli.py",
        "depth",
        "photo.png",
        "--checkpoint",
        "models/Stable-diffusion/512-depth-ema.safetensors",
        "-o",
        "outputs",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: cannot import ldm.modules" in result.stderr and "depth2img-cli.py" in result.stderr
