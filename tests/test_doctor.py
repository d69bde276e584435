"""`python -m lib_depth doctor`: tables, JSON, exit status and --fix on real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from checkpoints import state_dict, truncate, write_ckpt, write_safetensors
from test_model_config import SD2_INFERENCE

from lib_depth.models.doctor import examine, find_checkpoints
from lib_depth.models.model_config import BUNDLED_CONFIG, config_path_for

ROOT = Path(__file__).resolve().parents[1]


def doctor(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env_path = {"PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "lib_depth", "doctor", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, **env_path},
    )


def models_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "models" / "Stable-diffusion"
    (folder / "sub").mkdir(parents=True)
    write_safetensors(folder / "512-depth-ema.safetensors", state_dict("depth"))
    write_ckpt(folder / "sub" / "sd15.ckpt", state_dict("sd1"))
    write_safetensors(folder / "vae.vae.safetensors", state_dict("sd1"))  # VAEs are not listed, as in the WebUI
    return folder


def test_healthy_folder_exits_0_with_a_table(tmp_path):
    folder = models_folder(tmp_path)
    result = doctor(str(folder))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["file", "kind", "build", "precision", "config", "action"]
    assert any(
        "512-depth-ema.safetensors" in line and "SD 2 depth" in line and "missing (fine)" in line for line in lines
    )
    assert any("sd15.ckpt" in line and "SD 1.x" in line for line in lines)
    assert "vae.vae" not in result.stdout
    assert "2 file(s) examined, all fine" in result.stdout


def test_default_folder_from_a_webui_root(tmp_path):
    models_folder(tmp_path)
    result = doctor(cwd=tmp_path)
    assert result.returncode == 0 and "512-depth-ema" in result.stdout
    elsewhere = doctor(cwd=tmp_path / "models")
    assert elsewhere.returncode == 2
    assert "no models/Stable-diffusion here" in elsewhere.stderr and "Traceback" not in elsewhere.stderr


def test_wrong_config_fails_then_fix_repairs_it(tmp_path):
    folder = models_folder(tmp_path)
    config = config_path_for(folder / "512-depth-ema.safetensors")
    config.write_text(SD2_INFERENCE)
    result = doctor(str(folder), "--json")
    assert result.returncode == 1
    rows = {Path(row["file"]).name: row for row in json.loads(result.stdout)}
    depth = rows["512-depth-ema.safetensors"]
    assert not depth["ok"] and depth["config"].startswith("wrong: 512-depth-ema.yaml describes another model")
    assert "--fix" in depth["action"]
    assert config.read_text() == SD2_INFERENCE  # without --fix nothing is written

    fixed = doctor(str(folder), "--fix")
    assert fixed.returncode == 0, fixed.stdout
    assert "ok (fixed)" in fixed.stdout and "moved the old one to 512-depth-ema.yaml.bak-" in fixed.stdout
    backups = list(folder.glob("512-depth-ema.yaml.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == SD2_INFERENCE
    assert not config_path_for(folder / "sub" / "sd15.ckpt").exists()  # non-depth configs untouched


def test_damaged_and_foreign_files_exit_1(tmp_path):
    folder = models_folder(tmp_path)
    truncate(write_safetensors(folder / "half-downloaded.safetensors", state_dict("depth")), keep=0.5)
    (folder / "notes.ckpt").write_text("not a model")
    result = doctor(str(folder))
    assert result.returncode == 1
    assert "truncated" in result.stdout and "not a checkpoint" in result.stdout
    assert "2 with problems" in result.stdout


def test_usage_errors(tmp_path):
    missing = doctor(str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = doctor(str(tmp_path / "empty"))
    assert empty.returncode == 2 and "no .safetensors or .ckpt files" in empty.stderr


def test_examine_depth_checkpoint_with_wrong_unet(tmp_path):
    path = write_safetensors(tmp_path / "odd.safetensors", state_dict("depth-4ch"))
    row = examine(path)
    assert not row.ok and row.action.startswith("not usable: UNet takes 4 input channels")
    assert find_checkpoints([tmp_path]) == [path]


def test_depth_model_with_another_text_encoder_needs_its_own_config(tmp_path):
    tensors = state_dict("depth")
    tensors["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] = torch.zeros(32, 512)
    path = write_safetensors(tmp_path / "tiny-depth.safetensors", tensors)
    row = examine(path, fix=True)
    assert not row.ok and "text context is 512-wide" in row.action
    assert not config_path_for(path).exists()  # ours (1024) would not fit: nothing written
    own = BUNDLED_CONFIG.read_text().replace("context_dim: 1024", "context_dim: 512")
    config_path_for(path).write_text(own)
    assert examine(path).ok
    assert examine(write_safetensors(tmp_path / "sd2-depth.safetensors", state_dict("depth"))).ok


def test_default_folder_from_the_extension_folder(tmp_path):
    models_folder(tmp_path)
    extension = tmp_path / "extensions" / "sd-webui-depth2img"
    extension.mkdir(parents=True)
    result = doctor(cwd=extension)
    assert result.returncode == 0 and "512-depth-ema" in result.stdout
