"""Every writer: never over an existing file, permissions from the umask or the replaced file."""

from __future__ import annotations

import os
import stat
import sys

import numpy as np
import pytest
import torch
from checkpoints import state_dict, write_safetensors
from PIL import Image
from test_model_config import SD2_INFERENCE

from lib_depth.io.depthmap import save_png
from lib_depth.io.files import create_new_file, unused_path, write_atomically
from lib_depth.models.convert import ConversionError, check_output, write_checkpoint
from lib_depth.models.model_config import config_path_for, fix_depth_config

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_unused_path_numbers_taken_names(tmp_path):
    target = tmp_path / "map.png"
    assert unused_path(target) == target
    target.write_bytes(b"x")
    (tmp_path / "map-1.png").write_bytes(b"x")
    assert unused_path(target) == tmp_path / "map-2.png"


def test_create_new_file_never_opens_an_existing_file(tmp_path):
    target = tmp_path / "a.png"
    target.write_bytes(b"user data")
    written = create_new_file(target, lambda file: file.write(b"new"))
    assert written == tmp_path / "a-1.png" and written.read_bytes() == b"new"
    assert target.read_bytes() == b"user data"


def test_failed_write_leaves_no_partial_file(tmp_path):
    def fail(file):
        file.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        create_new_file(tmp_path / "a.png", fail)
    assert list(tmp_path.iterdir()) == []


def test_save_png_keeps_the_existing_file(tmp_path):
    target = tmp_path / "depth.png"
    Image.new("I;16", (8, 8), 1234).save(target)
    before = target.read_bytes()
    written = save_png(Image.new("L", (8, 8), 7), target)
    assert written == tmp_path / "depth-1.png"
    assert target.read_bytes() == before and np.asarray(Image.open(written)).max() == 7


@posix_only
def test_new_files_get_the_umask_mode(tmp_path, umask_022):
    assert mode(save_png(Image.new("L", (8, 8)), tmp_path / "p.png")) == 0o644
    assert mode(write_atomically(tmp_path / "c.yaml", b"a: 1\n")) == 0o644
    os.umask(0o027)
    assert mode(write_atomically(tmp_path / "d.yaml", b"a: 1\n")) == 0o640


@posix_only
def test_doctor_fix_keeps_the_replaced_files_mode(tmp_path, umask_022):
    checkpoint = write_safetensors(tmp_path / "d.safetensors", state_dict("depth"))
    wrong = config_path_for(checkpoint)
    wrong.write_text(SD2_INFERENCE)
    wrong.chmod(0o664)
    fixed = fix_depth_config(checkpoint)
    assert fixed.written == wrong and mode(wrong) == 0o664  # not a temporary file's 0600
    assert fixed.backup.read_text() == SD2_INFERENCE


@posix_only
def test_doctor_fix_writes_a_missing_config_readable_by_others(tmp_path, umask_022):
    checkpoint = write_safetensors(tmp_path / "d.safetensors", state_dict("depth"))
    assert mode(fix_depth_config(checkpoint).written) == 0o644


def test_convert_output_checks_come_before_any_weight(tmp_path):
    (tmp_path / "taken.yaml").write_text("mine")
    with pytest.raises(ConversionError, match="taken.yaml already exist"):
        check_output(tmp_path / "taken.safetensors")
    with pytest.raises(ConversionError, match="model.ckpt: the output must be a .safetensors file"):
        check_output(tmp_path / "model.ckpt")


def test_convert_output_folder_unwritable_is_named(tmp_path, monkeypatch):
    """Root ignores permission bits, so the refusal is injected at the OS call."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("lib_depth.io.files.tempfile.mkstemp", refuse)
    with pytest.raises(ConversionError, match=r"output: cannot write to .*out \(Permission denied\)"):
        check_output(tmp_path / "out" / "model.safetensors")


@posix_only
def test_write_checkpoint_gets_umask_mode_and_leaves_no_temporary(tmp_path, umask_022):
    state = {"a": torch.zeros(3)}
    path, yaml_path = write_checkpoint(state, {"model": {}}, tmp_path / "m.safetensors")
    assert mode(path) == 0o644 and mode(yaml_path) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "m.yaml"]


def test_write_checkpoint_does_not_replace_a_file_that_appears(tmp_path, monkeypatch):
    """A file created between the check and the write is left alone."""
    target = tmp_path / "m.safetensors"
    import lib_depth.models.convert as convert

    real_check = convert.check_output

    def check_then_someone_writes(output):
        paths = real_check(output)
        target.write_bytes(b"someone else's")
        return paths

    monkeypatch.setattr(convert, "check_output", check_then_someone_writes)
    with pytest.raises(ConversionError, match="appeared while converting; nothing was replaced"):
        write_checkpoint({"a": torch.zeros(3)}, {"model": {}}, target)
    assert target.read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
