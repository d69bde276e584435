"""The config beside a depth checkpoint: detect missing, right, wrong; fix without losing files."""

from __future__ import annotations

import os

import pytest
import yaml
from omegaconf import OmegaConf

from lib_depth.models.model_config import BUNDLED_CONFIG, check_depth_config, config_path_for, fix_depth_config

SD2_INFERENCE = """\
model:
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    conditioning_key: crossattn
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        in_channels: 4
        context_dim: 1024
"""


def test_bundled_config_is_the_sd2_depth_architecture():
    config = OmegaConf.load(BUNDLED_CONFIG)
    params = config.model.params
    assert config.model.target == "ldm.models.diffusion.ddpm.LatentDepth2ImageDiffusion"
    assert params.conditioning_key == "hybrid"
    assert params.depth_stage_config.target == "ldm.modules.midas.api.MiDaSInference"
    assert params.depth_stage_config.params.model_type == "dpt_hybrid"
    unet = params.unet_config.params
    assert (unet.in_channels, unet.out_channels, unet.context_dim, unet.model_channels) == (5, 4, 1024, 320)
    assert params.cond_stage_config.target == "ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder"


def test_bundled_unet_params_build_the_512_depth_ema_shapes():
    """The UNet from our config, built on the meta device, has 512-depth-ema's layer shapes."""
    import torch
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    params = OmegaConf.to_container(OmegaConf.load(BUNDLED_CONFIG).model.params.unet_config.params)
    with torch.device("meta"):
        unet = UNetModel(**params)
    shapes = {name: tuple(p.shape) for name, p in unet.named_parameters()}
    assert shapes["input_blocks.0.0.weight"] == (320, 5, 3, 3)
    assert shapes["input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] == (320, 1024)
    assert shapes["out.2.weight"] == (4, 320, 3, 3)
    # SD 2 base has 865,910,724 UNet parameters; the depth channel adds one 320x3x3 input slice
    assert sum(torch.Size(s).numel() for s in shapes.values()) == 865_910_724 + 320 * 3 * 3


def test_config_path_is_the_checkpoint_basename(tmp_path):
    assert config_path_for(tmp_path / "512-depth-ema.ckpt") == tmp_path / "512-depth-ema.yaml"
    assert config_path_for(tmp_path / "my.v2.safetensors") == tmp_path / "my.v2.yaml"


def test_missing_then_fixed(tmp_path):
    checkpoint = tmp_path / "512-depth-ema.safetensors"
    assert check_depth_config(checkpoint).state == "missing"
    result = fix_depth_config(checkpoint)
    assert result.written == tmp_path / "512-depth-ema.yaml" and result.backup is None
    assert result.written.read_bytes() == BUNDLED_CONFIG.read_bytes()
    assert check_depth_config(checkpoint).state == "ok"
    assert fix_depth_config(checkpoint) == type(result)(None, None)  # nothing more to do


def test_existing_correct_config_is_left_alone(tmp_path):
    checkpoint = tmp_path / "custom-depth.ckpt"
    own = BUNDLED_CONFIG.read_text() + "\n# my own notes\n"
    config_path_for(checkpoint).write_text(own)
    assert check_depth_config(checkpoint).state == "ok"
    fix_depth_config(checkpoint)
    assert config_path_for(checkpoint).read_text() == own


def test_renamed_wrong_config_is_named_and_moved_aside(tmp_path):
    checkpoint = tmp_path / "512-depth-ema.ckpt"
    config_path_for(checkpoint).write_text(SD2_INFERENCE)
    status = check_depth_config(checkpoint)
    assert status.state == "wrong"
    assert "describes another model: model LatentDiffusion, no depth_stage_config, UNet in_channels 4" in status.message
    result = fix_depth_config(checkpoint, now=0)
    assert result.backup.name.startswith("512-depth-ema.yaml.bak-")
    assert result.backup.read_text() == SD2_INFERENCE  # the user's file survives, byte for byte
    assert check_depth_config(checkpoint).state == "ok"
    config_path_for(checkpoint).write_text(SD2_INFERENCE)
    second = fix_depth_config(checkpoint, now=0)  # same second: a second backup, not an overwrite
    assert second.backup != result.backup and second.backup.read_text() == SD2_INFERENCE


def test_unreadable_yaml(tmp_path):
    checkpoint = tmp_path / "d.ckpt"
    config_path_for(checkpoint).write_text("model: [unclosed\n  - : :")
    assert check_depth_config(checkpoint).state == "unreadable"
    config_path_for(checkpoint).write_text("just a string")
    assert "no 'model' section" in check_depth_config(checkpoint).message


def test_yaml_is_read_safely(tmp_path):
    checkpoint = tmp_path / "d.ckpt"
    config_path_for(checkpoint).write_text("model: !!python/object/apply:os.system ['echo hacked']\n")
    assert check_depth_config(checkpoint).state == "unreadable"
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(config_path_for(checkpoint).read_text())


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else False, reason="root ignores permissions")
def test_read_only_folder_gets_a_clear_message(tmp_path):
    _read_only_case(tmp_path)


def test_read_only_folder_message_even_as_root(tmp_path, monkeypatch):
    """Root bypasses folder permissions, so the failing write is simulated at the OS call."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("lib_depth.io.files.tempfile.mkstemp", refuse)
    checkpoint = tmp_path / "d.ckpt"
    with pytest.raises(ValueError, match="cannot write .*d.yaml \\(Permission denied\\); make the folder writable"):
        fix_depth_config(checkpoint)


def _read_only_case(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    checkpoint = folder / "d.ckpt"
    config_path_for(checkpoint).write_text(SD2_INFERENCE)
    folder.chmod(0o555)
    try:
        with pytest.raises(ValueError, match="cannot write"):
            fix_depth_config(checkpoint)
        assert config_path_for(checkpoint).read_text() == SD2_INFERENCE
    finally:
        folder.chmod(0o755)
