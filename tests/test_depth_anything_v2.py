"""Depth Anything V2 in plain torch against transformers' DepthAnythingForDepthEstimation (the oracle),
both weight layouts from real files, input preparation against the MiDaS reference transforms."""

from __future__ import annotations

import math
import pickle
import re
import zipfile

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ldm.modules.midas.midas.transforms import NormalizeImage, PrepareForNet, Resize
from safetensors.torch import save_file
from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

from lib_depth.depth.estimator import run_depth_model
from lib_depth.depth.estimators.dav2_weights import (
    hf_to_original,
    load_depth_anything_v2,
    original_to_hf,
)
from lib_depth.depth.estimators.depth_anything_v2 import (
    CONFIGS,
    DAv2Config,
    DepthAnythingV2,
    dav2_input_size,
    prepare_dav2_input,
)

TINY = DAv2Config("tiny", 32, 4, 2, 16, (8, 16, 24, 32), (0, 1, 2, 3), head_features=8)
# the released sizes as transformers' configs (config.json of depth-anything/Depth-Anything-V2-*-hf)
HF_SIZES = {
    "vits": dict(hidden=384, heads=6, layers=12, out=[3, 6, 9, 12], neck=[48, 96, 192, 384], fusion=64),
    "vitb": dict(hidden=768, heads=12, layers=12, out=[3, 6, 9, 12], neck=[96, 192, 384, 768], fusion=128),
    "vitl": dict(hidden=1024, heads=16, layers=24, out=[5, 12, 18, 24], neck=[256, 512, 1024, 1024], fusion=256),
}


def hf_config(hidden, heads, layers, out, neck, fusion, head_hidden=32) -> DepthAnythingConfig:
    backbone = Dinov2Config(
        image_size=518,
        patch_size=14,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_hidden_layers=layers,
        out_indices=out,
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    return DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=hidden,
        neck_hidden_sizes=neck,
        fusion_hidden_size=fusion,
        head_hidden_size=head_hidden,
        patch_size=14,
    )


TINY_HF = dict(hidden=32, heads=2, layers=4, out=[1, 2, 3, 4], neck=[8, 16, 24, 32], fusion=16, head_hidden=8)


def randomised(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Seeded weights with real structure: fan-in scaled matrices, norms and layer scales near 1,
    and a positive last bias so the final ReLU leaves a map to compare."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state.items():
        noise = torch.randn(value.shape, generator=generator)
        if key.endswith(("lambda1", "gamma")) or ("norm" in key and key.endswith("weight")):
            out[key] = 1 + 0.1 * noise
        elif value.ndim >= 2 and "embed" not in key and "token" not in key:
            out[key] = noise / math.sqrt(max(1, value[0].numel()))
        else:
            out[key] = 0.3 * noise
    out["head.conv3.bias"] = torch.full_like(out["head.conv3.bias"], 2.0)
    return out


def oracle(config: DepthAnythingConfig, seed: int) -> tuple[DepthAnythingForDepthEstimation, dict]:
    model = DepthAnythingForDepthEstimation(config).eval()
    state = randomised(model.state_dict(), seed)
    model.load_state_dict(state)
    return model, state


def close(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).abs().max() / expected.abs().max()).item()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The oracle with a small random config, and its weights as a real -hf safetensors file."""
    model, state = oracle(hf_config(**TINY_HF), seed=1)
    path = tmp_path_factory.mktemp("tiny") / "model.safetensors"
    save_file(state, str(path))
    return model, state, path


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The oracle with Depth-Anything-V2-Small-hf's config and seeded random weights."""
    model, state = oracle(hf_config(**HF_SIZES["vits"]), seed=2)
    path = tmp_path_factory.mktemp("small") / "depth_anything_v2_vits-hf.safetensors"
    save_file(state, str(path))
    return model, state, path


def pixels(height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("height,width", [(518, 518), (196, 280), (322, 168), (266, 364), (70, 518)])
def test_tiny_matches_transformers(tiny, height, width):
    hf, _, path = tiny
    ours = load_depth_anything_v2(path, config=TINY)
    assert ours.pos_embed_mode == "transformers"  # the -hf layout's own reference
    x = pixels(height, width)
    with torch.no_grad():
        expected = hf(pixel_values=x).predicted_depth
        actual = ours(x)
    assert actual.shape == (2, 1, height, width)
    assert (expected > 0).float().mean() > 0.3  # a real map, not a ReLU-flattened one
    assert close(actual[:, 0], expected) < 1e-4


@pytest.mark.parametrize("height,width", [(518, 518), (364, 518)])
def test_small_config_matches_transformers(small, height, width):
    hf, _, path = small
    ours = load_depth_anything_v2(path, encoder="vits")
    assert ours.config == CONFIGS["vits"]
    x = pixels(height, width, seed=3)[:1]
    with torch.no_grad():
        expected = hf(pixel_values=x).predicted_depth
        actual = ours(x)
    assert (expected > 0).float().mean() > 0.3
    assert close(actual[:, 0], expected) < 1e-4


def test_original_layout_file_gives_the_same_numbers(tiny, tmp_path):
    """The HF weights rewritten to the release's keys and saved as a .pth load to the same model."""
    hf, state, path = tiny
    original, unmapped = hf_to_original(state)
    assert not unmapped and all(k.startswith(("pretrained.", "depth_head.")) for k in original)
    pth = tmp_path / "depth_anything_v2_tiny.pth"
    torch.save(original, pth)
    from_hf = load_depth_anything_v2(path, config=TINY)
    from_pth = load_depth_anything_v2(pth, config=TINY, pos_embed_mode="transformers")
    for height, width in [(518, 518), (196, 280), (322, 168)]:
        x = pixels(height, width, seed=4)
        with torch.no_grad():
            assert torch.equal(from_pth(x), from_hf(x))
    # by default a .pth reproduces the original release, which resamples position embeddings
    # differently (see depth_anything_v2's doc) except at the trained 518x518 grid
    release = load_depth_anything_v2(pth, config=TINY)
    assert release.pos_embed_mode == "original"
    with torch.no_grad():
        assert torch.equal(release(pixels(518, 518)), from_hf(pixels(518, 518)))
        assert not torch.allclose(release(pixels(196, 280)), from_hf(pixels(196, 280)))



def test_legacy_and_wrapped_pth_files_load(tiny, tmp_path):
    """Not every .pth can be memory-mapped (pre-zip format), and some wrap the state dict."""
    hf, state, _ = tiny
    original, _ = hf_to_original(state)
    legacy = tmp_path / "legacy.pth"
    torch.save(original, legacy, _use_new_zipfile_serialization=False)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": original}, wrapped)
    x = pixels(196, 196, seed=6)
    with torch.no_grad():
        expected = hf(pixel_values=x).predicted_depth
        for path in (legacy, wrapped):
            model = load_depth_anything_v2(path, config=TINY, pos_embed_mode="transformers")
            assert close(model(x)[:, 0], expected) < 1e-4

def webui_style_torch_load(original):
    """The WebUI's replacement for torch.load (modules/safe.py, v1.10.1): it vets the zip's record names
    against the records torch wrote in 2022 and, for any other, logs and returns None instead of loading."""
    allowed = re.compile(r"^([^/]+)/((data/\d+)|version|byteorder|.data/serialization_id|(data\.pkl))$")

    def load(filename, *args, **kwargs):
        with zipfile.ZipFile(filename) as archive:
            if not all(allowed.match(name) for name in archive.namelist()):
                return None
        return original(filename, *args, **kwargs)

    return load


def test_pth_saved_by_current_torch_loads_under_the_webuis_torch_load(tiny, tmp_path, monkeypatch):
    """Live WebUI: depth_anything_v2_vits.pth saved by torch 2.14 came back as None ("got NoneType")."""
    hf, state, _ = tiny
    original, _ = hf_to_original(state)
    pth = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(original, pth)
    monkeypatch.setattr(torch, "load", webui_style_torch_load(torch.load))
    if torch.load(pth, map_location="cpu", weights_only=True) is not None:
        pytest.skip("this torch writes only the zip records of 2022; the WebUI's check passes it")
    x = pixels(196, 196, seed=7)
    with torch.no_grad():
        model = load_depth_anything_v2(pth, config=TINY, pos_embed_mode="transformers")
        assert close(model(x)[:, 0], hf(pixel_values=x).predicted_depth) < 1e-4


def test_key_table_round_trips_and_covers_every_released_size():
    for encoder, sizes in HF_SIZES.items():
        with torch.device("meta"):
            hf_state = DepthAnythingForDepthEstimation(hf_config(**sizes)).state_dict()
            ours = DepthAnythingV2(CONFIGS[encoder]).state_dict()
        converted, unmapped = hf_to_original(hf_state)
        assert not unmapped
        assert {k: v.shape for k, v in converted.items()} == {k: v.shape for k, v in ours.items()}, encoder
        back = original_to_hf(converted)
        assert {k: v.shape for k, v in back.items()} == {k: v.shape for k, v in hf_state.items()}


def test_qkv_fusion_keeps_query_key_value_order(tiny):
    _, state, _ = tiny
    converted, _ = hf_to_original(state)
    qkv = converted["pretrained.blocks.2.attn.qkv.weight"]
    query, key, value = qkv.chunk(3)
    assert torch.equal(query, state["backbone.encoder.layer.2.attention.attention.query.weight"])
    assert torch.equal(key, state["backbone.encoder.layer.2.attention.attention.key.weight"])
    assert torch.equal(value, state["backbone.encoder.layer.2.attention.attention.value.weight"])
    assert original_to_hf(converted).keys() == state.keys()


def test_original_mode_resamples_position_embeddings_as_the_release():
    """The release: bicubic with scale_factor (n + 0.1) / 37, so samples sit 37 / (n + 0.1) apart."""
    model = DepthAnythingV2(TINY, "original")
    torch.nn.init.normal_(model.pretrained.pos_embed)
    grid = model.pretrained.pos_embed[:, 1:].reshape(1, 37, 37, -1).permute(0, 3, 1, 2)
    for rows, cols in [(14, 20), (23, 12), (37, 50), (73, 37)]:
        expected = F.interpolate(grid, scale_factor=((rows + 0.1) / 37, (cols + 0.1) / 37), mode="bicubic")
        actual = model.pretrained.position_embedding(rows, cols, torch.float32)
        assert torch.equal(actual[0, 1:].reshape(rows, cols, -1).permute(2, 0, 1), expected[0])
        assert torch.equal(actual[0, 0], model.pretrained.pos_embed[0, 0])
    with pytest.raises(ValueError, match="pos_embed_mode"):
        model.pos_embed_mode = "nearest"


# --- loading errors -------------------------------------------------------------------------------


def test_missing_unused_and_misshapen_keys_are_named(tiny, tmp_path):
    _, state, _ = tiny
    original, _ = hf_to_original(state)
    broken = dict(original)
    del broken["pretrained.blocks.3.mlp.fc2.bias"]
    broken["depth_head.scratch.extra.weight"] = torch.zeros(1)
    broken["pretrained.norm.weight"] = torch.zeros(7)
    pth = tmp_path / "broken.pth"
    torch.save(broken, pth)
    with pytest.raises(ValueError) as error:
        load_depth_anything_v2(pth, config=TINY)
    message = str(error.value)
    assert message.startswith("broken.pth: does not fit Depth Anything V2 tiny")
    assert "1 missing keys: pretrained.blocks.3.mlp.fc2.bias" in message
    assert "1 unused keys: depth_head.scratch.extra.weight" in message
    assert "pretrained.norm.weight (file (7,), model (32,))" in message


def test_hf_key_without_rule_is_named(tiny, tmp_path):
    _, state, _ = tiny
    path = tmp_path / "model.safetensors"
    save_file({**state, "neck.bogus.weight": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match=r"model.safetensors: Hugging Face layout with 1 unused keys: neck.bogus"):
        load_depth_anything_v2(path, config=TINY)


def test_wrong_size_and_foreign_files_are_refused_clearly(small, tmp_path):
    _, _, path = small
    with pytest.raises(ValueError, match="holds a Depth Anything V2 vits model, but vitb was asked for"):
        load_depth_anything_v2(path, encoder="vitb")
    other = tmp_path / "other.safetensors"
    save_file({"model.diffusion_model.x": torch.zeros(1)}, str(other))
    with pytest.raises(ValueError, match="other.safetensors: not a Depth Anything V2 weights file.*model"):
        load_depth_anything_v2(other)
    with pytest.raises(ValueError, match="weights file not found"):
        load_depth_anything_v2(tmp_path / "absent.pth")
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ValueError, match="damaged.safetensors: not a readable safetensors file"):
        load_depth_anything_v2(damaged)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="truncated.pth: not a readable torch weights file"):
        load_depth_anything_v2(truncated)


class Payload:
    """Stands for code hidden in a pickle; loading must never construct it."""

    constructed = False

    def __reduce__(self):
        return (Payload._construct, ())

    @staticmethod
    def _construct():
        Payload.constructed = True
        return Payload()


def test_pth_with_code_is_refused_without_running_it(tmp_path):
    pth = tmp_path / "depth_anything_v2_vits.pth"
    with pth.open("wb") as file:
        torch.save({"pretrained.pos_embed": torch.zeros(1), "payload": Payload()}, file, pickle_protocol=2)
    Payload.constructed = False
    with pytest.raises(ValueError, match="depth_anything_v2_vits.pth: refused; it holds more than plain tensors"):
        load_depth_anything_v2(pth)
    assert not Payload.constructed
    assert pickle.dumps(Payload())  # the payload itself is an ordinary picklable object


# --- input preparation ----------------------------------------------------------------------------


def reference_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    resize = Resize(
        resolution,
        resolution,
        resize_target=False,
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resize_method="lower_bound",
        image_interpolation_method=cv2.INTER_CUBIC,
    )
    new_width, new_height = resize.get_size(width, height)
    return int(new_height), int(new_width)


@pytest.mark.parametrize("resolution", [518, 266, 1022])
@pytest.mark.parametrize("height,width", [(64, 64), (512, 512), (512, 768), (768, 1024), (1080, 1920), (333, 90)])
def test_input_size_is_the_reference_lower_bound_rule(height, width, resolution):
    size = dav2_input_size(height, width, resolution)
    assert size == reference_size(height, width, resolution)
    assert min(size) >= resolution and size[0] % 14 == 0 and size[1] % 14 == 0


@pytest.mark.parametrize("height,width", [(512, 512), (300, 451), (777, 500)])
def test_prepared_input_equals_the_reference_pipeline(height, width):
    """The release's image2tensor: RGB / 255, cv2 INTER_CUBIC to the lower-bound size, ImageNet
    mean/std (same MiDaS transforms as ldm's)."""
    rgb = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    new_height, new_width = reference_size(height, width, 518)
    resized = cv2.resize(rgb / 255.0, (new_width, new_height), interpolation=cv2.INTER_CUBIC)
    sample = NormalizeImage(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])({"image": resized})
    expected = torch.from_numpy(PrepareForNet()(sample)["image"])
    images = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 127.5 - 1  # as the WebUI makes them
    actual = prepare_dav2_input(images)
    assert actual.dtype == torch.float32 and actual.shape == (1, 3, new_height, new_width)
    assert (actual[0] - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("model_dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("image_dtype", [torch.float16, torch.bfloat16])
def test_any_dtype_pairing_gives_finite_float32(tiny, model_dtype, image_dtype):
    _, _, path = tiny
    model = load_depth_anything_v2(path, config=TINY)
    images = (torch.rand(1, 3, 100, 150, generator=torch.Generator().manual_seed(5)) * 2 - 1).to(image_dtype)
    reference = run_depth_model(model, prepare_dav2_input(images.float(), 140))
    depth = run_depth_model(model.to(model_dtype), prepare_dav2_input(images, 140))
    assert depth.dtype == torch.float32 and depth.shape == (1, 1, 140, 210)
    assert torch.isfinite(depth).all()
    assert close(depth, reference) < 0.1
