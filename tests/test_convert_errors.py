"""`convert` on broken pipeline folders and unwritable outputs: one named message, no traceback,
and checks that need no weights come before any weight is read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_convert import pipeline, tiny_arch  # noqa: F401  (fixtures)

from lib_depth.cli.main import main as cli_main
from lib_depth.models import convert


@pytest.fixture
def copy(pipeline, tmp_path):  # noqa: F811
    folder, _ = pipeline
    return Path(shutil.copytree(folder, tmp_path / "pipeline"))


def run(capsys, *args: str) -> tuple[int, str]:
    code = cli_main(["convert", *map(str, args)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err


@pytest.fixture
def no_weight_reads(monkeypatch):
    """Fails the test if any weights file is read."""

    def refuse(*args, **kwargs):
        raise AssertionError("weights were read before a check that needs none")

    monkeypatch.setattr(convert, "read_weights", refuse)


def test_output_exists_is_checked_before_reading_weights(copy, tmp_path, capsys, no_weight_reads, tiny_arch):  # noqa: F811
    (tmp_path / "out.safetensors").write_bytes(b"mine")
    code, err = run(capsys, copy, tmp_path / "out.safetensors", "--text-arch", tiny_arch)
    assert code == 2 and "out.safetensors already exist" in err
    assert (tmp_path / "out.safetensors").read_bytes() == b"mine"


def test_output_suffix_is_checked_before_reading_weights(copy, tmp_path, capsys, no_weight_reads):
    code, err = run(capsys, copy, tmp_path / "out.ckpt")
    assert code == 2 and "out.ckpt: the output must be a .safetensors file" in err


def test_unwritable_output_folder(copy, tmp_path, capsys, monkeypatch, no_weight_reads):
    """Root writes anywhere, so the refusal is injected where the folder is probed."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("lib_depth.io.files.tempfile.mkstemp", refuse)
    code, err = run(capsys, copy, tmp_path / "ro" / "out.safetensors")
    assert code == 2 and "cannot write to" in err and "ro (Permission denied)" in err


def test_model_index_that_is_not_an_object(copy, tmp_path, capsys):
    for content, message in (("[1, 2]", "expected a JSON object, got list"), ("{oops", "invalid JSON")):
        (copy / "model_index.json").write_text(content)
        code, err = run(capsys, copy, tmp_path / "out.safetensors")
        assert code == 2 and f"{copy / 'model_index.json'}: {message}" in err, err


def test_component_config_invalid_json_names_the_file(copy, tmp_path, capsys):
    (copy / "unet" / "config.json").write_text('{"in_channels": 5,')
    code, err = run(capsys, copy, tmp_path / "out.safetensors")
    assert code == 2 and f"{copy / 'unet' / 'config.json'}: invalid JSON" in err


def test_component_config_missing_a_value(copy, tmp_path, capsys, tiny_arch):  # noqa: F811
    config = json.loads((copy / "vae" / "config.json").read_text())
    del config["block_out_channels"]
    (copy / "vae" / "config.json").write_text(json.dumps(config))
    code, err = run(capsys, copy, tmp_path / "out.safetensors", "--text-arch", tiny_arch)
    assert code == 2 and "lacks or mangles a value" in err and "block_out_channels" in err


def test_weights_file_that_is_not_safetensors(copy, tmp_path, capsys, tiny_arch):  # noqa: F811
    weights = copy / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"<!DOCTYPE html><html><body>Access denied</body></html>")
    code, err = run(capsys, copy, tmp_path / "out.safetensors", "--text-arch", tiny_arch)
    assert code == 2 and f"{weights}: not a checkpoint (this looks like a web page" in err
    weights.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"\xff" * 40)
    code, err = run(capsys, copy, tmp_path / "out.safetensors", "--text-arch", tiny_arch)
    assert code == 2 and f"{weights}: corrupt" in err
    assert not (tmp_path / "out.safetensors").exists()


class NotATensor:
    pass


def test_pickle_bin_refused_by_weights_only(copy, tmp_path, capsys, tiny_arch):  # noqa: F811
    for file in (copy / "text_encoder").glob("*.safetensors"):
        file.unlink()
    binary = copy / "text_encoder" / "pytorch_model.bin"
    torch.save({"weight": torch.zeros(2), "extra": NotATensor()}, binary)
    code, err = run(capsys, copy, tmp_path / "out.safetensors", "--text-arch", tiny_arch)
    assert code == 2 and f"{binary}: holds Python objects besides tensors" in err
    binary.write_bytes(b"PK\x03\x04 broken")
    code, err = run(capsys, copy, tmp_path / "out.safetensors", "--text-arch", tiny_arch)
    assert code == 2 and f"{binary}: not a readable PyTorch weights file" in err


def test_missing_model_code_is_said_before_reading_weights(copy, tmp_path, capsys, monkeypatch, no_weight_reads):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ldm" else real(name, *a))
    code, err = run(capsys, copy, tmp_path / "out.safetensors")
    assert code == 2 and "convert needs ldm" in err and "depth2img-cli.py" in err


def test_no_progress_noise_in_a_log(copy, tmp_path, capfd, tiny_arch):  # noqa: F811
    """Output to a file (not a terminal): the result line only, no bar, no third-party warnings."""
    assert cli_main(["convert", str(copy), str(tmp_path / "out.safetensors"), "--text-arch", tiny_arch]) == 0
    out, err = capfd.readouterr()
    assert out.count("\n") == 1 and "load it as a depth model" in out
    assert err == "", err
