"""Hashes: the WebUI's own cache (a real diskcache store written the way v1.10.1 writes it, and the
older cache.json), our cache, and hashing with progress."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import diskcache
import pytest

from lib_depth.models.hashes import (
    file_sha256,
    known_sha256,
    our_cached_sha256,
    remember_sha256,
    sha256_file,
    webui_cached_sha256,
    webui_root_of,
    webui_title,
)

SHA_A = "a" * 64


@pytest.fixture(autouse=True)
def private_cache_env(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SD_WEBUI_CACHE_DIR", raising=False)
    monkeypatch.delenv("SD_WEBUI_CACHE_FILE", raising=False)


def webui_with_checkpoint(tmp_path: Path, relative: str = "sub/model.safetensors", data: bytes = b"x" * 5000) -> Path:
    path = tmp_path / "webui" / "models" / "Stable-diffusion" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def webui_store(root: Path, **settings) -> diskcache.Cache:
    """The store exactly as modules/cache.py make_cache opens it."""
    options = {"size_limit": 2**32, "disk_min_file_size": 2**18, **settings}
    return diskcache.Cache(os.path.join(root, "cache", "hashes"), **options)


def test_sha256_file_with_progress(tmp_path):
    path = tmp_path / "f.bin"
    data = os.urandom(3 * 1024 + 17)
    path.write_bytes(data)
    seen: list[tuple[int, int]] = []
    assert (
        sha256_file(path, progress=lambda d, t: seen.append((d, t)), chunk_size=1024)
        == hashlib.sha256(data).hexdigest()
    )
    assert seen == [(1024, len(data)), (2048, len(data)), (3072, len(data)), (len(data), len(data))]


def test_webui_title_and_root(tmp_path):
    path = webui_with_checkpoint(tmp_path)
    root = tmp_path / "webui"
    assert webui_root_of(path) == root
    assert webui_title(path, root) == f"checkpoint/sub{os.sep}model.safetensors"
    elsewhere = tmp_path / "loose.safetensors"
    assert webui_root_of(elsewhere) is None
    assert webui_title(elsewhere, root) == "checkpoint/loose.safetensors"


def test_reads_the_webui_diskcache_with_its_mtime_rule(tmp_path):
    path = webui_with_checkpoint(tmp_path)
    store = webui_store(tmp_path / "webui")
    store["checkpoint/sub/model.safetensors"] = {"mtime": os.path.getmtime(path), "sha256": SHA_A}
    store.close()
    assert webui_cached_sha256(path) == SHA_A
    assert known_sha256(path).source == "WebUI cache"
    later = os.path.getmtime(path) + 10
    os.utime(path, (later, later))  # the file changed after it was hashed: the entry no longer counts
    assert webui_cached_sha256(path) is None


def test_reads_a_value_diskcache_kept_in_a_file(tmp_path):
    path = webui_with_checkpoint(tmp_path, "big.safetensors")
    store = webui_store(tmp_path / "webui", disk_min_file_size=0)  # every value goes to its own file
    store["checkpoint/big.safetensors"] = {"mtime": os.path.getmtime(path) + 1, "sha256": SHA_A}
    store.close()
    assert any(p.suffix == ".val" for p in (tmp_path / "webui" / "cache" / "hashes").rglob("*"))
    assert webui_cached_sha256(path) == SHA_A


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_names_code_is_not_executed(tmp_path):
    path = webui_with_checkpoint(tmp_path, "evil.safetensors")
    marker = tmp_path / "pwned"
    store = webui_store(tmp_path / "webui")
    store["checkpoint/evil.safetensors"] = {"mtime": 2e9, "sha256": SHA_A, "x": Evil(marker)}
    store.close()
    assert webui_cached_sha256(path) is None
    assert not marker.exists()


def test_reads_the_older_cache_json_and_the_environment_overrides(tmp_path, monkeypatch):
    path = webui_with_checkpoint(tmp_path, "old.safetensors")
    cache_json = tmp_path / "elsewhere.json"
    cache_json.write_text(json.dumps({"hashes": {"checkpoint/old.safetensors": {"mtime": 2e9, "sha256": SHA_A}}}))
    assert webui_cached_sha256(path) is None
    monkeypatch.setenv("SD_WEBUI_CACHE_FILE", str(cache_json))
    assert webui_cached_sha256(path) == SHA_A

    store = webui_store(tmp_path / "moved")
    store["checkpoint/old.safetensors"] = {"mtime": 2e9, "sha256": "b" * 64}
    store.close()
    monkeypatch.setenv("SD_WEBUI_CACHE_DIR", str(tmp_path / "moved" / "cache"))
    assert webui_cached_sha256(path) == "b" * 64  # the diskcache store comes first, as in v1.10.1


def test_garbage_caches_are_ignored(tmp_path):
    path = webui_with_checkpoint(tmp_path, "g.safetensors")
    (tmp_path / "webui" / "cache.json").write_text("{not json")
    store_dir = tmp_path / "webui" / "cache" / "hashes"
    store_dir.mkdir(parents=True)
    (store_dir / "cache.db").write_bytes(b"not a database" * 100)
    assert webui_cached_sha256(path) is None


def test_our_cache_remembers_by_path_mtime_and_size(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"12345")
    cache = tmp_path / "ours" / "hashes.json"
    remember_sha256(path, SHA_A.upper(), cache)
    assert our_cached_sha256(path, cache) == SHA_A
    path.write_bytes(b"123456")  # another size: stale even if the mtime did not move
    os.utime(path, (0, 0))
    assert our_cached_sha256(path, cache) is None
    cache.write_text("[broken")
    remember_sha256(path, SHA_A, cache)  # a damaged cache is started afresh
    assert json.loads(cache.read_text())[os.path.abspath(path)]["sha256"] == SHA_A


def test_file_sha256_computes_once_then_reuses(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"payload" * 1000)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    first = file_sha256(path)
    assert (first.sha256, first.source) == (expected, "computed")
    second = file_sha256(path, progress=lambda d, t: pytest.fail("hashed again"))
    assert (second.sha256, second.source) == (expected, "our cache")
