"""The depth cache: hits skip the model, bounds evict the least recently used."""

from __future__ import annotations

import pytest
import torch
from conftest import CountingModule

from lib_depth import DepthCache, DepthEstimator, image_digest


def entry(value: float, side: int = 16) -> torch.Tensor:
    return torch.full((1, side, side), value)  # 1 KiB at side 16


def test_second_generation_with_same_image_runs_no_model(dpt_head, scene_batch):
    counting = CountingModule(dpt_head)
    cache = DepthCache()
    estimator = DepthEstimator(counting, cache=cache)
    images = scene_batch(128, 128, seeds=(1, 2))
    first = estimator.estimate(images)
    second = estimator.estimate(images)
    assert counting.batch_sizes == [2]
    assert torch.equal(first, second)
    stats = cache.stats()
    assert (stats.entries, stats.hits) == (2, 2)


def test_partial_hit_estimates_only_the_new_image(dpt_head, scene_batch):
    counting = CountingModule(dpt_head)
    estimator = DepthEstimator(counting, cache=DepthCache())
    a, b, c = scene_batch(128, 128, seeds=(1, 2, 3))
    estimator.estimate(torch.stack([a, b]))
    depth = estimator.estimate(torch.stack([b, c, a]))
    assert counting.batch_sizes == [2, 1]
    assert torch.equal(depth[2], estimator.estimate(a[None])[0])


def test_key_separates_weights_model_dtype_and_image_content(dpt_head, scene_batch):
    counting = CountingModule(dpt_head)
    cache = DepthCache()
    images = scene_batch(128, 128)
    DepthEstimator(counting, key="ckpt-a", cache=cache).estimate(images)
    DepthEstimator(counting, key="ckpt-b", cache=cache).estimate(images)
    counting.to(torch.float64)
    DepthEstimator(counting, key="ckpt-a", cache=cache).estimate(images)
    shifted = images.clone()
    shifted[0, 0, 0, 0] += 0.05
    DepthEstimator(counting, key="ckpt-a", cache=cache).estimate(shifted)
    assert counting.batch_sizes == [1, 1, 1, 1]
    assert cache.stats().entries == 4


def test_digest_is_of_the_8_bit_picture_and_its_shape():
    pixels = torch.randint(0, 256, (3, 64, 64), generator=torch.Generator().manual_seed(0))
    image = pixels / 255.0 * 2 - 1  # as the WebUI makes it: 8-bit / 255, then * 2 - 1
    assert image_digest(image) == image_digest(image.clone())
    assert image_digest(image) == image_digest(image.half())  # same picture, any precision
    assert image_digest(image) == image_digest(image.bfloat16())
    assert image_digest(image) != image_digest(image.reshape(3, 32, 128))
    changed = image.clone()
    changed[0, 0, 0] += 2 / 255  # one 8-bit step is a different picture
    assert image_digest(image) != image_digest(changed)


def test_eviction_by_entry_count_is_least_recently_used():
    cache = DepthCache(max_entries=2)
    cache.put(("a",), entry(1))
    cache.put(("b",), entry(2))
    assert cache.get(("a",)) is not None  # a becomes most recent
    cache.put(("c",), entry(3))
    assert ("b",) not in cache and ("a",) in cache and ("c",) in cache


def test_eviction_by_bytes_and_oversized_entries():
    cache = DepthCache(max_entries=100, max_bytes=2500)
    for name in "abc":
        cache.put((name,), entry(1))
    assert cache.stats().entries == 2 and cache.stats().bytes == 2048
    assert ("a",) not in cache
    cache.put(("huge",), entry(1, side=64))  # 16 KiB never fits
    assert ("huge",) not in cache and cache.stats().entries == 2
    cache.resize(max_entries=1, max_bytes=2500)
    assert cache.stats().entries == 1 and ("c",) in cache
    cache.clear()
    assert cache.stats().entries == 0 and cache.stats().bytes == 0


def test_entries_are_cpu_float32_copies():
    cache = DepthCache()
    value = entry(1).half()
    cache.put(("k",), value)
    value.fill_(5)
    stored = cache.get(("k",))
    assert stored.dtype == torch.float32 and stored.device.type == "cpu" and stored.eq(1).all()


def test_zero_sized_cache_stores_nothing_and_negative_limits_are_rejected():
    cache = DepthCache(max_entries=0)
    cache.put(("k",), entry(1))
    assert cache.get(("k",)) is None
    with pytest.raises(ValueError, match="negative"):
        DepthCache(max_entries=-1)
