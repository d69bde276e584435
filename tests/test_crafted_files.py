"""Crafted and odd files: every file gets its own verdict, nothing raises out of the reader,
a bad file never hides the good ones, unreadable folders are reported."""

from __future__ import annotations

import json
import os
import pickle
import struct
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from checkpoints import state_dict, write_ckpt, write_safetensors

from lib_depth.cli import main as cli
from lib_depth.models import checkpoint as checkpoint_module
from lib_depth.models.checkpoint import inspect_checkpoint
from lib_depth.models.doctor import examine, scan_checkpoints
from lib_depth.models.model_config import check_depth_config, config_path_for

WEB_PAGE = "this looks like a web page: the download saved an HTML page instead of the file"


def safetensors_with_header(path: Path, header: object | bytes, data: bytes = b"") -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def entry(shape, dtype="F32", offsets=None):
    size = 4
    for s in shape:
        size *= s
    return {"shape": shape, "dtype": dtype, "data_offsets": offsets if offsets is not None else [0, size]}


CRAFTED_HEADERS = {
    "infinite-shape": (b'{"w": {"shape": [1e999], "dtype": "F32", "data_offsets": [0, 4]}}', "impossible shape"),
    "nan-shape": (b'{"w": {"shape": [NaN], "dtype": "F32", "data_offsets": [0, 4]}}', "impossible shape"),
    "absurd-shape": ({"w": entry([2**50, 2**50], offsets=[0, 4])}, "impossible shape"),
    "negative-shape": ({"w": entry([-3], offsets=[0, 4])}, "impossible shape"),
    "bool-shape": ({"w": entry([True], offsets=[0, 4])}, "impossible shape"),
    "string-shape": ({"w": {"shape": "big", "dtype": "F32", "data_offsets": [0, 4]}}, "impossible shape"),
    "unknown-dtype": ({"w": entry([1], dtype="F128")}, "unknown dtype 'F128'"),
    "list-dtype": ({"w": entry([1], dtype=["F32"])}, "unknown dtype"),
    "offsets-past-the-data": ({"w": entry([1], offsets=[0, 4000])}, "needs 4 bytes, its offsets hold 4,000"),
    "offsets-out-of-range": ({"w": entry([1000], offsets=[0, 4000])}, "truncated"),
    "negative-offsets": ({"w": entry([1], offsets=[-4, 0])}, "impossible data offsets"),
    "reversed-offsets": ({"w": entry([0], offsets=[4, 0])}, "impossible data offsets"),
    "huge-offsets": ({"w": entry([1], offsets=[2**64, 2**64 + 4])}, "impossible data offsets"),
    "overlapping": ({"a": entry([2], offsets=[0, 8]), "b": entry([2], offsets=[4, 12])}, "overlap"),
    "entry-not-object": ({"w": [1, 2]}, "bad header entry"),
    "list-header": ([1, 2, 3], "not an object"),
    "string-header": ("weights", "not an object"),
    "number-header": (12, "not an object"),
    "deep-json": (b"[" * 100_000 + b"]" * 100_000, "nested more than"),
    "deep-metadata": (b'{"__metadata__": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested more than"),
    "not-json": (b"\x00\xff binary", "unreadable safetensors header"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED_HEADERS))
def test_crafted_safetensors_headers_get_a_verdict(tmp_path, case):
    header, message = CRAFTED_HEADERS[case]
    path = safetensors_with_header(tmp_path / f"{case}.safetensors", header, b"\x00" * 16)
    report = inspect_checkpoint(path)
    assert report.problem and message in report.problem, report.problem


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path):
    metadata = {"ss_json": "[" * 500 + '\\" ]]] {{{'}
    tensors = {"w": entry([2], offsets=[0, 8]), "__metadata__": metadata}
    report = inspect_checkpoint(safetensors_with_header(tmp_path / "m.safetensors", tensors, b"\x00" * 8))
    assert report.problem == "not a Stable Diffusion checkpoint (no UNet)" or report.readable, report.problem


def test_huge_header_length_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.safetensors"
    with path.open("wb") as file:
        file.write(struct.pack("<Q", 200 * 2**20))
        file.truncate(201 * 2**20)  # sparse: a 201 MiB file without writing it
    assert "over 104,857,600 bytes" in inspect_checkpoint(path).problem
    path.write_bytes(struct.pack("<Q", 2**63) + b"{}")
    assert "header length exceeds the file" in inspect_checkpoint(path).problem


def test_tensor_count_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_module, "_MAX_TENSORS", 10)
    header = {f"t{i}": entry([1], offsets=[4 * i, 4 * i + 4]) for i in range(11)}
    path = safetensors_with_header(tmp_path / "many.safetensors", header, b"\x00" * 44)
    assert "11 tensors in the header (over 10)" in inspect_checkpoint(path).problem


HTML = b"<!DOCTYPE html>\n<html lang='en'><head><title>Sign in</title></head><body>...</body></html>\n"


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
@pytest.mark.parametrize(
    "content, message",
    [
        (HTML, WEB_PAGE),
        (b"\n\n  <html><body>Not found</body></html>", WEB_PAGE),
        (b"\xef\xbb\xbf<!doctype html><html></html>", WEB_PAGE),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 5\n", "Git LFS pointer"),
        (b'{"error": "Repository not found"}', 'a text file (it starts with \'{"error"'),
    ],
)
def test_text_saved_as_a_checkpoint_is_named(tmp_path, suffix, content, message):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content)
    problem = inspect_checkpoint(path).problem
    assert problem.startswith("not a checkpoint") and message in problem, problem


def _legacy_ckpt(path: Path, main_pickle: bytes) -> Path:
    """A legacy-format torch file (magic number, protocol, sys info) with a crafted main pickle."""
    header = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
    info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    path.write_bytes(header + pickle.dumps(info, protocol=2) + main_pickle)
    return path


def _zip_ckpt(path: Path, data_pickle: bytes) -> Path:
    """A zip-format torch file whose data.pkl is replaced by a crafted pickle."""
    torch.save({"x": 1}, path)
    with zipfile.ZipFile(path) as source:
        records = {info.filename: source.read(info.filename) for info in source.infolist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as target:
        for name, data in records.items():
            target.writestr(name, data_pickle if name.endswith("/data.pkl") else data)
    return path


NOT_PLAIN = b"c__main__\nThing\n)\x81"  # an object weights_only refuses: the restricted unpickler runs
CRAFTED_PICKLES = {
    "huge-memo": b"\x80\x02" + NOT_PLAIN + b"r" + struct.pack("<I", 2**31) + b".",
    "deep-marks": b"\x80\x02" + NOT_PLAIN + b"0" + b"(" * 200_000 + b"t" * 200_000 + b".",
    "deep-lists": b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b".",
    "self-reference": b"\x80\x02}q\x00X\n\x00\x00\x00state_dicth\x00s.",
    "garbage": b"\x80\x02\xff\xfe\xfd",
}


@pytest.mark.parametrize("layout", ["legacy", "zip"])
@pytest.mark.parametrize("case", sorted(CRAFTED_PICKLES))
def test_crafted_pickles_get_a_verdict_quickly(tmp_path, layout, case):
    make = _legacy_ckpt if layout == "legacy" else _zip_ckpt
    path = make(tmp_path / f"{case}.ckpt", CRAFTED_PICKLES[case])
    start = time.monotonic()
    report = inspect_checkpoint(path)
    assert report.problem, report
    assert time.monotonic() - start < 30


def test_memo_and_depth_bounds_name_the_reason(tmp_path):
    huge = inspect_checkpoint(_zip_ckpt(tmp_path / "m.ckpt", CRAFTED_PICKLES["huge-memo"])).problem
    deep = inspect_checkpoint(_legacy_ckpt(tmp_path / "d.ckpt", CRAFTED_PICKLES["deep-marks"])).problem
    assert "memo index 2,147,483,648" in huge and "nested more than 1000 levels" in deep


def test_deeply_nested_yaml_beside_a_depth_checkpoint(tmp_path):
    checkpoint = write_safetensors(tmp_path / "d.safetensors", state_dict("depth"))
    config_path_for(checkpoint).write_text("model: " + "[" * 20_000 + "]" * 20_000 + "\n")
    assert check_depth_config(checkpoint).state == "unreadable"
    row = examine(checkpoint)
    assert not row.ok and "nested too deeply" in row.config


def test_yaml_alias_bomb_is_never_expanded_into_a_message(tmp_path):
    checkpoint = write_safetensors(tmp_path / "d.safetensors", state_dict("depth"))
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 30)]
    lines += ["model:", "  target: *a29", "  params: {conditioning_key: *a29}"]
    config_path_for(checkpoint).write_text("\n".join(lines) + "\n")
    status = check_depth_config(checkpoint)
    assert status.state == "wrong" and "model <list>" in status.message and len(status.message) < 300


def test_oversized_yaml_is_not_parsed(tmp_path):
    checkpoint = write_safetensors(tmp_path / "d.safetensors", state_dict("depth"))
    config_path_for(checkpoint).write_text("# padding\n" * 200_000)
    status = check_depth_config(checkpoint)
    assert status.state == "unreadable" and "over 1,048,576 bytes" in status.message


def _mixed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    (folder / "sub").mkdir(parents=True)
    write_safetensors(folder / "a-good.safetensors", state_dict("sd2"))
    for case in ("deep-json", "infinite-shape", "unknown-dtype", "overlapping", "list-header"):
        header, _ = CRAFTED_HEADERS[case]
        safetensors_with_header(folder / f"b-{case}.safetensors", header, b"\x00" * 16)
    (folder / "c-page.safetensors").write_bytes(HTML)
    _zip_ckpt(folder / "d-memo.ckpt", CRAFTED_PICKLES["huge-memo"])
    depth = write_safetensors(folder / "sub" / "e-depth.safetensors", state_dict("depth"))
    config_path_for(depth).write_text("model: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n")
    write_ckpt(folder / "sub" / "f-good.ckpt", state_dict("sd1"))
    return folder


def test_doctor_gives_every_file_its_row(tmp_path, capsys):
    folder = _mixed_folder(tmp_path)
    assert cli.main(["doctor", str(folder)]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(str(folder))}
    assert len(rows) == 10
    assert "SD 2.x" in rows[str(folder / "a-good.safetensors")]
    assert "SD 1.x" in rows[str(folder / "sub" / "f-good.ckpt")]
    assert WEB_PAGE in rows[str(folder / "c-page.safetensors")]
    assert "nested too deeply" in rows[str(folder / "sub" / "e-depth.safetensors")]
    assert "10 item(s) examined, 8 with problems" in out


def test_doctor_json_for_crafted_files(tmp_path, capsys):
    folder = _mixed_folder(tmp_path)
    assert cli.main(["doctor", "--json", str(folder)]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 10 and sum(row["ok"] for row in rows) == 2


def test_unreadable_subfolder_is_reported_even_as_root(tmp_path, monkeypatch, capsys):
    """Root reads any folder, so the refusal is injected at os.scandir, which the doctor uses."""
    folder = _mixed_folder(tmp_path)
    real_scandir = os.scandir

    def scandir(path):
        if Path(path) == folder / "sub":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    files, unreadable = scan_checkpoints([folder])
    assert unreadable == [(folder / "sub", "cannot list this folder: permission denied")]
    assert folder / "a-good.safetensors" in files
    assert cli.main(["doctor", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "unreadable folder" in out and "cannot list this folder: permission denied" in out
    assert "all fine" not in out


def test_unreadable_top_folder_is_not_no_files(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "models"
    folder.mkdir()

    def scandir(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", scandir)
    assert cli.main(["doctor", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "cannot list this folder: permission denied" in out and "no .safetensors" not in out


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root ignores permission bits")
def test_unreadable_subfolder_with_real_permissions(tmp_path, capsys):
    folder = _mixed_folder(tmp_path)
    (folder / "sub").chmod(0)
    try:
        assert cli.main(["doctor", str(folder)]) == 1
        assert "cannot list this folder: permission denied" in capsys.readouterr().out
    finally:
        (folder / "sub").chmod(0o755)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root ignores permission bits")
def test_unreadable_file_with_real_permissions(tmp_path):
    path = write_safetensors(tmp_path / "m.safetensors", state_dict("sd2"))
    path.chmod(0)
    try:
        assert inspect_checkpoint(path).problem == "cannot read: permission denied"
    finally:
        path.chmod(0o644)


def test_folder_link_loops_end(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    write_safetensors(folder / "m.safetensors", state_dict("sd2"))
    try:
        (folder / "loop").symlink_to(folder, target_is_directory=True)
    except OSError:
        pytest.skip("no symlinks here")
    files, unreadable = scan_checkpoints([folder])
    assert files == [folder / "m.safetensors"] and unreadable == []
