"""Checkpoint inspection: formats, kinds, precision, damage, and code that must never run."""

from __future__ import annotations

import pickle

import pytest
import torch
from checkpoints import (
    RunsCode,
    state_dict,
    truncate,
    write_ckpt,
    write_lightning_ckpt,
    write_safetensors,
)

from lib_depth.models.checkpoint import depth_model_state_dict, inspect_checkpoint


@pytest.mark.parametrize(
    "kind,expected,description",
    [
        ("depth", "depth", "SD 2 depth (512-depth)"),
        ("sd1", "sd1", "SD 1.x"),
        ("sd2", "sd2", "SD 2.x (512-base or 768-v)"),
        ("sd2-inpainting", "sd2-inpainting", "SD 2.x inpainting (9-channel)"),
        ("sd1-inpainting", "sd1-inpainting", "SD 1.x inpainting (9-channel)"),
        ("sdxl", "sdxl", "SDXL"),
    ],
)
@pytest.mark.parametrize("writer", [write_safetensors, write_ckpt])
def test_kinds_in_both_formats(tmp_path, kind, expected, description, writer):
    path = writer(tmp_path / f"model{'.safetensors' if writer is write_safetensors else '.ckpt'}", state_dict(kind))
    report = inspect_checkpoint(path)
    assert report.readable, report.problem
    assert (report.kind, report.description) == (expected, description)
    assert report.is_depth == (kind == "depth")
    assert report.format == ("safetensors" if writer is write_safetensors else "ckpt")


def test_depth_weights_with_wrong_unet_is_flagged(tmp_path):
    report = inspect_checkpoint(write_safetensors(tmp_path / "odd.safetensors", state_dict("depth-4ch")))
    assert report.is_depth and not report.readable
    assert "UNet takes 4 input channels, a depth model needs 5" in report.problem


@pytest.mark.parametrize("dtype,name", [(torch.float16, "fp16"), (torch.float32, "fp32"), (torch.bfloat16, "bf16")])
def test_precision(tmp_path, dtype, name):
    assert (
        inspect_checkpoint(write_safetensors(tmp_path / "m.safetensors", state_dict("depth", dtype))).precision == name
    )
    assert inspect_checkpoint(write_ckpt(tmp_path / "m.ckpt", state_dict("depth", dtype))).precision == name


def test_mixed_precision_names_the_majority(tmp_path):
    tensors = state_dict("depth", torch.float16)
    tensors["first_stage_model.decoder.conv_out.bias"] = torch.zeros(3)
    assert (
        inspect_checkpoint(write_safetensors(tmp_path / "m.safetensors", tensors)).precision
        == "fp16 (mixed: fp16, fp32)"
    )


def test_legacy_and_lightning_ckpt(tmp_path):
    legacy = inspect_checkpoint(write_ckpt(tmp_path / "legacy.ckpt", state_dict(), legacy=True))
    assert legacy.readable and legacy.is_depth and legacy.format == "ckpt (legacy)"
    path = write_lightning_ckpt(tmp_path / "lightning.ckpt", state_dict())
    with pytest.raises(pickle.UnpicklingError):  # what the restricted loader is there for
        torch.load(path, weights_only=True)
    lightning = inspect_checkpoint(path)
    assert lightning.readable and lightning.is_depth, lightning.problem


def test_pickle_that_would_run_code_is_read_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    path = write_ckpt(tmp_path / "evil.ckpt", state_dict(), extra={"payload": RunsCode(f"touch '{marker}'")})
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    report = inspect_checkpoint(path)
    assert not marker.exists()
    assert report.readable and report.is_depth
    weights = depth_model_state_dict(path)
    assert not marker.exists() and set(weights) == {"pretrained.act_postprocess3.0.project.0.bias"}
    torch.load(path, weights_only=False)  # an unrestricted load runs the payload: the test is live
    assert marker.exists()


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_truncated_files(tmp_path, suffix):
    writer = write_safetensors if suffix == ".safetensors" else write_ckpt
    path = truncate(writer(tmp_path / f"cut{suffix}", state_dict()), keep=0.6)
    report = inspect_checkpoint(path)
    assert not report.readable and "truncated" in report.problem


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "readme.ckpt"
    text.write_text("hello, not weights")
    assert inspect_checkpoint(text).problem.startswith("not a checkpoint")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    assert "corrupt" in inspect_checkpoint(garbage).problem
    empty = write_ckpt(tmp_path / "empty.ckpt", {})
    assert inspect_checkpoint(empty).problem == "not a checkpoint: it holds no tensors"
    assert inspect_checkpoint(tmp_path / "absent.ckpt").problem == "not found"


def test_depth_weights_from_both_formats_are_the_same(tmp_path):
    tensors = state_dict()
    tensors["depth_model.model.scratch.output_conv.4.bias"] = torch.tensor([0.5])
    from_safetensors = depth_model_state_dict(write_safetensors(tmp_path / "d.safetensors", tensors))
    from_ckpt = depth_model_state_dict(write_ckpt(tmp_path / "d.ckpt", tensors))
    assert (
        set(from_safetensors)
        == set(from_ckpt)
        == {
            "pretrained.act_postprocess3.0.project.0.bias",
            "scratch.output_conv.4.bias",
        }
    )
    for name, value in from_ckpt.items():
        assert torch.equal(value, from_safetensors[name])
    with pytest.raises(ValueError, match="holds no MiDaS depth weights"):
        depth_model_state_dict(write_safetensors(tmp_path / "sd2.safetensors", state_dict("sd2")))
