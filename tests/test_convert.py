"""diffusers depth pipeline -> WebUI depth checkpoint, checked against Stability's ldm model.

Small diffusers/transformers components with random weights (the DPT-Hybrid at its real
architecture; UNet, VAE and text encoder shrunk the same way on both sides) are converted, loaded
into ldm's LatentDepth2ImageDiffusion built from the written config, and compared on the same inputs.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import diffusers
import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, DPTConfig, DPTForDepthEstimation

from lib_depth.cli.main import main as cli_main
from lib_depth.models.convert import ConversionError, convert_pipeline, write_checkpoint
from lib_depth.models.doctor import examine

pytestmark = pytest.mark.slow  # builds tiny pipelines plus a full-size DPT-Hybrid

TINY_ARCH = "depth2img-test-tiny"  # an OpenCLIP config whose text tower is the tiny CLIP's plus one layer


def jitter(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights everywhere, also where diffusers initialises to zero or one."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return model.eval()


def build_components():
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=5,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=(1, 2),
        use_linear_projection=True,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64),
        layers_per_block=1,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        sample_size=64,
    )
    text = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=32,
            intermediate_size=128,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=49408,
            max_position_embeddings=77,
            hidden_act="gelu",
            projection_dim=32,
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dpt = DPTForDepthEstimation(
            DPTConfig(
                is_hybrid=True,
                hidden_size=768,
                reassemble_factors=[1, 1, 1, 0.5],
                neck_hidden_sizes=[256, 512, 768, 768],
                readout_type="project",
                use_batch_norm_in_fusion_residual=False,
                patch_size=16,
                image_size=384,
            )
        ).eval()
    with torch.no_grad():  # a positive head, so the depth has structure instead of ReLU zeros
        dpt.head.head[4].bias.fill_(0.5)
    return jitter(unet, 1), jitter(vae, 2), jitter(text, 3), dpt


@pytest.fixture(scope="module")
def tiny_arch():
    import open_clip.factory

    open_clip.factory._MODEL_CONFIGS[TINY_ARCH] = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 3},
    }
    yield TINY_ARCH
    open_clip.factory._MODEL_CONFIGS.pop(TINY_ARCH, None)


def save_pipeline(folder: Path, components, class_name="StableDiffusionDepth2ImgPipeline") -> Path:
    for name, model in zip(("unet", "vae", "text_encoder", "depth_estimator"), components, strict=True):
        model.save_pretrained(folder / name)
    index = {
        "_class_name": class_name,
        "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "depth_estimator": ["transformers", "DPTForDepthEstimation"],
    }
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    components = build_components()
    return save_pipeline(tmp_path_factory.mktemp("pipeline"), components), components


@pytest.fixture(scope="module")
def converted(pipeline, tiny_arch, tmp_path_factory):
    folder, _ = pipeline
    state, config = convert_pipeline(folder, text_arch=tiny_arch)
    out = tmp_path_factory.mktemp("out") / "depth-finetune.safetensors"
    write_checkpoint(state, config, out)
    return out, state, config


def build_ldm_model(config):
    """ldm's LatentDepth2ImageDiffusion from the written config; MiDaS built without a weights file."""
    import ldm.modules.midas.api as midas_api
    from ldm.util import instantiate_from_config
    from omegaconf import OmegaConf

    from lib_depth.depth.midas import offline_load_model

    original = midas_api.load_model
    midas_api.load_model = offline_load_model(original, original, midas_api.ISL_PATHS, lambda: True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return instantiate_from_config(OmegaConf.create(config).model).eval()
    finally:
        midas_api.load_model = original


@pytest.fixture(scope="module")
def ldm_model(converted):
    from safetensors.torch import load_file

    path, _, config = converted
    model = build_ldm_model(config)
    result = model.load_state_dict(load_file(str(path)), strict=False)
    return model, result


def close(actual, expected, tolerance=1e-5):
    error = (actual - expected).abs().max().item()
    assert error <= tolerance * max(1.0, expected.abs().max().item()), error


def test_loads_into_the_reference_model_with_nothing_unexpected(ldm_model):
    _, result = ldm_model
    assert result.unexpected_keys == []
    allowed = (
        "depth_model.model.pretrained.model.head.",
        "cond_stage_model.model.transformer.resblocks.2.",
        "cond_stage_model.model.text_projection",
        "cond_stage_model.model.logit_scale",
        "cond_stage_model.model.visual.",
        "betas",
        "alphas_cumprod",
        "sqrt_",
        "log_one_minus",
        "posterior_",
        "logvar",
        "model_ema",
        "lvlb_weights",
    )
    assert [k for k in result.missing_keys if not k.startswith(allowed)] == []


@torch.no_grad()
def test_unet_eps_equal(pipeline, ldm_model):
    (unet, _, _, _), (model, _) = pipeline[1], ldm_model
    x, t, context = torch.randn(2, 5, 8, 8), torch.tensor([10, 700]), torch.randn(2, 77, 32)
    close(model.model.diffusion_model(x, t, context=context), unet(x, t, encoder_hidden_states=context).sample)


@torch.no_grad()
def test_vae_decode_equal(pipeline, ldm_model):
    (_, vae, _, _), (model, _) = pipeline[1], ldm_model
    z = torch.randn(1, 4, 8, 8)
    close(model.first_stage_model.decode(z), vae.decode(z).sample)


@torch.no_grad()
def test_text_embeddings_equal(pipeline, ldm_model):
    (_, _, text, _), (model, _) = pipeline[1], ldm_model
    tokens = torch.randint(0, 49408, (2, 77), generator=torch.Generator().manual_seed(4))
    close(model.cond_stage_model.encode_with_transformer(tokens), text(tokens).last_hidden_state)


@torch.no_grad()
def test_depth_equal(pipeline, ldm_model):
    """At the DPT's native 384x384 (transformers' DPT refuses other sizes; ldm resizes its position
    embedding for them with the same code it runs on the real weights)."""
    (_, _, _, dpt), (model, _) = pipeline[1], ldm_model
    x = torch.randn(1, 3, 384, 384, generator=torch.Generator().manual_seed(5))
    expected = dpt(pixel_values=x).predicted_depth
    assert expected.abs().max() > 0
    close(model.depth_model(x)[:, 0], expected)


def test_doctor_recognises_the_converted_checkpoint(converted):
    path, _, _ = converted
    row = examine(path)
    assert row.ok and row.kind.startswith("SD 2 depth") and row.config == "ok", row


def test_half_and_never_overwrite(converted, tmp_path):
    _, state, config = converted
    path, yaml_path = write_checkpoint(state, config, tmp_path / "half.safetensors", half=True)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as file:
        assert file.get_tensor("model.diffusion_model.out.2.weight").dtype == torch.float16
    with pytest.raises(ConversionError, match="already exist"):
        write_checkpoint(state, config, path)
    with pytest.raises(ConversionError, match=".safetensors file"):
        write_checkpoint(state, config, tmp_path / "model.ckpt")


def test_cli_convert(pipeline, tiny_arch, tmp_path, capsys):
    folder, _ = pipeline
    assert cli_main(["convert", str(folder), str(tmp_path / "out.safetensors"), "--text-arch", tiny_arch]) == 0
    assert "load it as a depth model" in capsys.readouterr().out
    assert (tmp_path / "out.yaml").is_file()
    assert cli_main(["convert", str(folder), str(tmp_path / "out.safetensors"), "--text-arch", tiny_arch]) == 2
    assert "already exist" in capsys.readouterr().err


def test_sd2_text_encoder_needs_its_arch(pipeline, tmp_path):
    folder, _ = pipeline
    with pytest.raises(ConversionError, match="not the text tower of OpenCLIP ViT-H-14.*--text-arch"):
        convert_pipeline(folder)


def test_not_a_depth_pipeline(tmp_path, pipeline):
    folder, components = pipeline
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionInpaintPipeline"}))
    with pytest.raises(
        ConversionError, match="a StableDiffusionInpaintPipeline, not a StableDiffusionDepth2ImgPipeline"
    ):
        convert_pipeline(tmp_path)
    with pytest.raises(ConversionError, match="nowhere: no such folder"):
        convert_pipeline(tmp_path / "nowhere")
    with pytest.raises(ConversionError, match="no model_index.json"):
        convert_pipeline(folder / "unet")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionDepth2ImgPipeline"}))
    with pytest.raises(ConversionError, match="missing component folder"):
        convert_pipeline(plain)


def test_unused_and_missing_tensors_are_listed(pipeline, tiny_arch, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    folder, _ = pipeline
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    weights = copy / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    state["extra_block.weight"] = torch.zeros(3)
    del state["conv_out.bias"]
    save_file(state, str(weights))
    with pytest.raises(ConversionError) as raised:
        convert_pipeline(copy, text_arch=tiny_arch)
    message = str(raised.value)
    assert "source tensors no rule maps (1): unet/extra_block.weight" in message
    assert "depth model tensors not produced (1): model.diffusion_model.out.2.bias" in message
