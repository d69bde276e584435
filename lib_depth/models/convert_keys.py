"""The key rules of a diffusers depth pipeline -> the WebUI's Stable Diffusion 2 layout.

StableDiffusionDepth2ImgPipeline keeps unet/, vae/, text_encoder/ and depth_estimator/ (transformers
DPTForDepthEstimation, hybrid) in diffusers/transformers layouts; the WebUI loads the original
Stable Diffusion 2 layout. The key rules below map one to the other; each rule is
(diffusers pattern, WebUI target, renames inside the matched block). `{i}` and `{j}` match block
numbers; the target is a function of them and of the model's geometry where numbering differs.
`map_keys` applies a table; convert.py reads the pipeline and checks every tensor is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

DEPTH_PIPELINE = "StableDiffusionDepth2ImgPipeline"
COMPONENTS = ("unet", "vae", "text_encoder", "depth_estimator")
PREFIXES = {
    "unet": "model.diffusion_model.",
    "vae": "first_stage_model.",
    "text_encoder": "cond_stage_model.model.",
    "depth_estimator": "depth_model.model.",
}

Target = str | Callable[..., str]
Rule = tuple[str, Target, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Geometry:
    """Block numbering the UNet and VAE rules need, read from the diffusers configs."""

    unet_layers: int  # resnets per down block (an up block has one more)
    unet_up_attention: tuple[bool, ...]  # which up blocks have attentions
    vae_blocks: int  # VAE resolution levels


UNET_RESNET = (
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("time_emb_proj.", "emb_layers.1."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("conv_shortcut.", "skip_connection."),
)
# fmt: off
UNET_RULES: tuple[Rule, ...] = (
    # diffusers UNet2DConditionModel         ->  ldm UNetModel (model.diffusion_model.)
    ("time_embedding.linear_1.",                 "time_embed.0.", ()),
    ("time_embedding.linear_2.",                 "time_embed.2.", ()),
    ("conv_in.",                                 "input_blocks.0.0.", ()),
    ("conv_norm_out.",                           "out.0.", ()),
    ("conv_out.",                                "out.2.", ()),
    ("down_blocks.{i}.resnets.{j}.",             lambda g, i, j: f"input_blocks.{(g.unet_layers + 1) * i + j + 1}.0.", UNET_RESNET),  # noqa: E501
    ("down_blocks.{i}.attentions.{j}.",          lambda g, i, j: f"input_blocks.{(g.unet_layers + 1) * i + j + 1}.1.", ()),  # noqa: E501
    ("down_blocks.{i}.downsamplers.0.conv.",     lambda g, i: f"input_blocks.{(g.unet_layers + 1) * (i + 1)}.0.op.", ()),
    ("mid_block.resnets.{j}.",                   lambda g, j: f"middle_block.{2 * j}.", UNET_RESNET),
    ("mid_block.attentions.0.",                  "middle_block.1.", ()),
    ("up_blocks.{i}.resnets.{j}.",               lambda g, i, j: f"output_blocks.{(g.unet_layers + 1) * i + j}.0.", UNET_RESNET),  # noqa: E501
    ("up_blocks.{i}.attentions.{j}.",            lambda g, i, j: f"output_blocks.{(g.unet_layers + 1) * i + j}.1.", ()),
    ("up_blocks.{i}.upsamplers.0.",              lambda g, i: f"output_blocks.{(g.unet_layers + 1) * i + g.unet_layers}.{2 if g.unet_up_attention[i] else 1}.", ()),  # noqa: E501
)

VAE_RESNET = (("conv_shortcut.", "nin_shortcut."),)
VAE_ATTENTION = (
    ("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out."),
    ("query.", "q."), ("key.", "k."), ("value.", "v."), ("proj_attn.", "proj_out."),  # older diffusers names
)
VAE_RULES: tuple[Rule, ...] = (
    # diffusers AutoencoderKL                      ->  ldm AutoencoderKL (first_stage_model.)
    ("encoder.conv_in.",                           "encoder.conv_in.", ()),
    ("encoder.conv_norm_out.",                     "encoder.norm_out.", ()),
    ("encoder.conv_out.",                          "encoder.conv_out.", ()),
    ("encoder.down_blocks.{i}.resnets.{j}.",       "encoder.down.{i}.block.{j}.", VAE_RESNET),
    ("encoder.down_blocks.{i}.downsamplers.0.conv.", "encoder.down.{i}.downsample.conv.", ()),
    ("encoder.mid_block.resnets.{j}.",             lambda g, j: f"encoder.mid.block_{j + 1}.", VAE_RESNET),
    ("encoder.mid_block.attentions.0.",            "encoder.mid.attn_1.", VAE_ATTENTION),
    ("decoder.conv_in.",                           "decoder.conv_in.", ()),
    ("decoder.conv_norm_out.",                     "decoder.norm_out.", ()),
    ("decoder.conv_out.",                          "decoder.conv_out.", ()),
    ("decoder.mid_block.resnets.{j}.",             lambda g, j: f"decoder.mid.block_{j + 1}.", VAE_RESNET),
    ("decoder.mid_block.attentions.0.",            "decoder.mid.attn_1.", VAE_ATTENTION),
    ("decoder.up_blocks.{i}.resnets.{j}.",         lambda g, i, j: f"decoder.up.{g.vae_blocks - 1 - i}.block.{j}.", VAE_RESNET),  # noqa: E501
    ("decoder.up_blocks.{i}.upsamplers.0.conv.",   lambda g, i: f"decoder.up.{g.vae_blocks - 1 - i}.upsample.conv.", ()),
    ("quant_conv.",                                "quant_conv.", ()),
    ("post_quant_conv.",                           "post_quant_conv.", ()),
)

TEXT_RULES: tuple[Rule, ...] = (
    # transformers CLIPTextModel                         ->  OpenCLIP text tower (cond_stage_model.model.)
    ("text_model.embeddings.token_embedding.",           "token_embedding.", ()),
    ("text_model.embeddings.position_embedding.weight",  "positional_embedding", ()),
    ("text_model.encoder.layers.{i}.self_attn.out_proj.", "transformer.resblocks.{i}.attn.out_proj.", ()),
    ("text_model.encoder.layers.{i}.layer_norm1.",       "transformer.resblocks.{i}.ln_1.", ()),
    ("text_model.encoder.layers.{i}.layer_norm2.",       "transformer.resblocks.{i}.ln_2.", ()),
    ("text_model.encoder.layers.{i}.mlp.fc1.",           "transformer.resblocks.{i}.mlp.c_fc.", ()),
    ("text_model.encoder.layers.{i}.mlp.fc2.",           "transformer.resblocks.{i}.mlp.c_proj.", ()),
    ("text_model.final_layer_norm.",                     "ln_final.", ()),
)
# q/k/v projections are stacked into one in_proj (OpenCLIP) or qkv (timm) tensor
TEXT_FUSED = ("text_model.encoder.layers.{i}.self_attn.{part}_proj.{kind}", ("q", "k", "v"),
              lambda i, kind: f"transformer.resblocks.{i}.attn.in_proj_{kind}")

DPT_RULES: tuple[Rule, ...] = (
    # transformers DPTForDepthEstimation (hybrid)          ->  ldm/MiDaS DPTDepthModel (depth_model.model.)
    ("dpt.embeddings.cls_token",                           "pretrained.model.cls_token", ()),
    ("dpt.embeddings.position_embeddings",                 "pretrained.model.pos_embed", ()),
    ("dpt.embeddings.projection.",                         "pretrained.model.patch_embed.proj.", ()),
    ("dpt.embeddings.backbone.bit.embedder.convolution.",  "pretrained.model.patch_embed.backbone.stem.conv.", ()),
    ("dpt.embeddings.backbone.bit.embedder.norm.",         "pretrained.model.patch_embed.backbone.stem.norm.", ()),
    ("dpt.embeddings.backbone.bit.encoder.stages.{i}.layers.{j}.", "pretrained.model.patch_embed.backbone.stages.{i}.blocks.{j}.", ()),  # noqa: E501
    ("dpt.encoder.layer.{i}.attention.output.dense.",      "pretrained.model.blocks.{i}.attn.proj.", ()),
    ("dpt.encoder.layer.{i}.intermediate.dense.",          "pretrained.model.blocks.{i}.mlp.fc1.", ()),
    ("dpt.encoder.layer.{i}.output.dense.",                "pretrained.model.blocks.{i}.mlp.fc2.", ()),
    ("dpt.encoder.layer.{i}.layernorm_before.",            "pretrained.model.blocks.{i}.norm1.", ()),
    ("dpt.encoder.layer.{i}.layernorm_after.",             "pretrained.model.blocks.{i}.norm2.", ()),
    ("dpt.layernorm.",                                     "pretrained.model.norm.", ()),
    ("neck.reassemble_stage.readout_projects.{i}.0.",      lambda g, i: f"pretrained.act_postprocess{i + 1}.0.project.0.", ()),  # noqa: E501
    ("neck.reassemble_stage.layers.{i}.projection.",       lambda g, i: f"pretrained.act_postprocess{i + 1}.3.", ()),
    ("neck.reassemble_stage.layers.{i}.resize.",           lambda g, i: f"pretrained.act_postprocess{i + 1}.4.", ()),
    ("neck.convs.{i}.",                                    lambda g, i: f"scratch.layer{i + 1}_rn.", ()),
    ("neck.fusion_stage.layers.{i}.",                      lambda g, i: f"scratch.refinenet{4 - i}.", (
        ("projection.", "out_conv."), ("residual_layer1.", "resConfUnit1."), ("residual_layer2.", "resConfUnit2."),
        ("convolution1.", "conv1."), ("convolution2.", "conv2."))),
    ("head.head.{i}.",                                     "scratch.output_conv.{i}.", ()),
)
DPT_FUSED = ("dpt.encoder.layer.{i}.attention.attention.{part}.{kind}", ("query", "key", "value"),
             lambda i, kind: f"pretrained.model.blocks.{i}.attn.qkv.{kind}")
# fmt: on

# Source tensors that hold no weights (buffers transformers saves), used without a target.
NOT_WEIGHTS = {"text_encoder": ("text_model.embeddings.position_ids",)}
# Target tensors the WebUI's model has but never uses, so a diffusers pipeline does not carry them:
# timm's ImageNet classifier inside MiDaS, OpenCLIP's projection, scale and vision tower, text
# layers after the penultimate one (SD 2 reads the penultimate layer), and schedule buffers the
# model computes from its config.
UNUSED_TARGETS = (
    r"^depth_model\.model\.pretrained\.model\.head\.",
    r"^cond_stage_model\.model\.(text_projection|logit_scale|visual\.|attn_mask)",
)


def _pattern(source: str) -> re.Pattern[str]:
    escaped = re.escape(source).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{j\}", r"(?P<j>\d+)")
    return re.compile("^" + escaped)


def _target(target: Target, match: re.Match[str], geometry: Geometry | None) -> str:
    numbers = {name: int(value) for name, value in match.groupdict().items()}
    if callable(target):
        return target(geometry, **numbers)
    return target.format(**numbers)


def _rename_inside(rest: str, renames: tuple[tuple[str, str], ...]) -> str:
    """Apply a block's inner renames at every dotted position of the rest of a key."""
    out = ""
    while rest:
        for old, new in renames:
            if rest.startswith(old):
                out, rest = out + new, rest[len(old) :]
                break
        else:
            segment, dot, rest = rest.partition(".")
            out += segment + dot
    return out


def map_keys(
    state: dict[str, torch.Tensor],
    rules: Iterable[Rule],
    geometry: Geometry | None = None,
    fused: tuple | None = None,
    not_weights: Iterable[str] = (),
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Apply a rule table; returns (converted tensors, source keys no rule used)."""
    compiled = [(_pattern(source), target, inner) for source, target, inner in rules]
    converted: dict[str, torch.Tensor] = {}
    unused = []
    stacks: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    fused_pattern = None
    if fused:
        template, parts, _ = fused
        fused_pattern = re.compile(
            "^"
            + re.escape(template)
            .replace(r"\{i\}", r"(?P<i>\d+)")
            .replace(r"\{part\}", "(?P<part>" + "|".join(parts) + ")")
            .replace(r"\{kind\}", "(?P<kind>weight|bias)")
            + "$"
        )
    for key, value in state.items():
        if key in not_weights:
            continue
        if fused_pattern and (m := fused_pattern.match(key)):
            stacks.setdefault((int(m["i"]), m["kind"]), {})[m["part"]] = value
            continue
        for pattern, target, inner in compiled:
            if m := pattern.match(key):
                converted[_target(target, m, geometry) + _rename_inside(key[m.end() :], inner)] = value
                break
        else:
            unused.append(key)
    if fused:
        _, parts, name = fused
        for (index, kind), pieces in sorted(stacks.items()):
            if set(pieces) != set(parts):
                unused.extend(f"{index}.{part}.{kind}" for part in pieces)
                continue
            converted[name(index, kind)] = torch.cat([pieces[part] for part in parts])
    return converted, unused
