"""The doctor knows the official files: by size, by the WebUI's cached hash or its own, with --hash;
damaged copies and unfinished downloads are reported with what to do."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import diskcache
import pytest
from checkpoints import state_dict, write_ckpt, write_safetensors

from lib_depth.cli import main as cli
from lib_depth.models import model_files
from lib_depth.models.model_files import ModelFile, model_file

ROOT = Path(__file__).resolve().parents[1]
FP16 = model_file(variant="fp16")


@pytest.fixture(autouse=True)
def private_caches(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SD_WEBUI_CACHE_DIR", raising=False)
    monkeypatch.delenv("SD_WEBUI_CACHE_FILE", raising=False)


def doctor(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "lib_depth", "doctor", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def sparse_depth_file(path: Path, size: int) -> Path:
    """A readable depth checkpoint header, extended (sparse, no disk used) to an official file's size."""
    write_safetensors(path, state_dict("depth"))
    os.truncate(path, size)
    return path


def test_official_damaged_other_and_unfinished_from_the_webui_cache(tmp_path):
    models = tmp_path / "models" / "Stable-diffusion"
    models.mkdir(parents=True)
    official = sparse_depth_file(models / "512-depth-ema-fp16.safetensors", FP16.size)
    damaged = sparse_depth_file(models / "copy.safetensors", FP16.size)
    unknown = sparse_depth_file(models / "unhashed.safetensors", FP16.size)
    write_safetensors(models / "finetune.safetensors", state_dict("depth"))
    write_ckpt(models / "sd15.ckpt", state_dict("sd1"))
    (models / "512-depth-ema.safetensors.part").write_bytes(b"\0" * 1500)
    (models / "other.safetensors.part-bad").write_bytes(b"\0" * 10)
    store = diskcache.Cache(str(tmp_path / "cache" / "hashes"), size_limit=2**32, disk_min_file_size=2**18)
    store["checkpoint/512-depth-ema-fp16.safetensors"] = {"mtime": official.stat().st_mtime, "sha256": FP16.sha256}
    store["checkpoint/copy.safetensors"] = {"mtime": damaged.stat().st_mtime, "sha256": "0" * 64}
    store.close()

    result = doctor("--json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    rows = {Path(row["file"]).name: row for row in json.loads(result.stdout)}
    assert rows["512-depth-ema-fp16.safetensors"]["build"] == "official 512-depth-ema (fp16 safetensors)"
    assert rows["512-depth-ema-fp16.safetensors"]["ok"] and rows["512-depth-ema-fp16.safetensors"]["sha256"]
    copy = rows["copy.safetensors"]
    assert copy["build"] == "damaged copy of the official 512-depth-ema (fp16 safetensors)" and not copy["ok"]
    assert copy["action"] == (
        f"damaged: download again (move this file away, then python -m lib_depth download --variant fp16 --to {models})"
    )
    assert (
        rows["unhashed.safetensors"]["build"]
        == "size of the official 512-depth-ema (fp16 safetensors); --hash checks it"
    )
    assert rows["finetune.safetensors"]["build"] == "another depth model (fine-tune or conversion)"
    assert rows["sd15.ckpt"]["build"] == "-"
    part = rows["512-depth-ema.safetensors.part"]
    assert part["kind"] == "unfinished download (1.50 kB of 5.71 GB)" and not part["ok"]
    assert part["action"] == f"resume with `python -m lib_depth download --variant fp32 --to {models}`"
    bad = rows["other.safetensors.part-bad"]
    assert bad["kind"] == "failed download" and "delete it" in bad["action"] and "--url" in bad["action"]
    assert unknown.stat().st_blocks * 512 < 10**7  # the test really used sparse files

    table = doctor(cwd=tmp_path)
    header = table.stdout.splitlines()[0].split()
    assert header == ["file", "kind", "build", "precision", "config", "action"]
    assert "official 512-depth-ema (fp16 safetensors)" in table.stdout


def test_hash_identifies_and_remembers(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "models"
    folder.mkdir()
    good = write_safetensors(folder / "tiny.safetensors", state_dict("depth"))
    data = bytearray(good.read_bytes())
    data[-10] ^= 0xFF  # a wrong byte in the tensor data: the header still reads fine
    (folder / "tiny-copy.safetensors").write_bytes(bytes(data))
    write_safetensors(folder / "sd1.safetensors", state_dict("sd1"))
    entry = ModelFile(
        name="tiny-fp32",
        model="tiny",
        variant="fp32",
        filename="tiny.safetensors",
        size=good.stat().st_size,
        sha256=hashlib.sha256(good.read_bytes()).hexdigest(),
        kind="checkpoint",
        description="fp32 safetensors",
        licence="test",
        mirrors=(),
    )
    monkeypatch.setattr(model_files, "MODEL_FILES", (entry,))

    assert cli.main(["doctor", str(folder), "--json"]) == 0
    rows = {Path(row["file"]).name: row for row in json.loads(capsys.readouterr().out)}
    assert rows["tiny.safetensors"]["build"] == "size of the official tiny (fp32 safetensors); --hash checks it"

    assert cli.main(["doctor", str(folder), "--json", "--hash"]) == 1
    captured = capsys.readouterr()
    rows = {Path(row["file"]).name: row for row in json.loads(captured.out)}
    assert rows["tiny.safetensors"]["build"] == "official tiny (fp32 safetensors)"
    assert rows["tiny-copy.safetensors"]["build"] == "damaged copy of the official tiny (fp32 safetensors)"
    assert rows["sd1.safetensors"]["sha256"] is None  # nothing to learn from hashing it: not hashed
    assert f"hashing {folder / 'tiny.safetensors'}" in captured.err and "100.0%" in captured.err

    assert cli.main(["doctor", str(folder), "--json"]) == 1  # remembered: no --hash needed any more
    rows = {Path(row["file"]).name: row for row in json.loads(capsys.readouterr().out)}
    assert rows["tiny.safetensors"]["build"] == "official tiny (fp32 safetensors)"
