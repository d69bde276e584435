"""Depth Anything V2 weights: read a file safely, map its keys, load strictly.

Two layouts exist: the original release (`depth_anything_v2_vits.pth`: `pretrained.*`,
`depth_head.*`, which our model uses as is) and Hugging Face's (`model.safetensors` of
`depth-anything/Depth-Anything-V2-Small-hf`: `backbone.*`, `neck.*`, `head.*`). HF_RULES maps the
second onto the first; the same table read backwards gives the HF layout back. Every tensor of the
file must land on a model parameter of the same shape and every parameter must be filled, or
loading fails naming the file and the keys.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Mapping

import torch

from .depth_anything_v2 import CONFIGS, DAv2Config, DepthAnythingV2, PosEmbedMode

# fmt: off
BLOCK_RENAMES: tuple[tuple[str, str], ...] = (
    # inside backbone.encoder.layer.{i}.  ->  inside pretrained.blocks.{i}.
    ("norm1.",                          "norm1."),
    ("attention.attention.query.",      "attn.qkv[q]."),  # q, k, v are one fused qkv matrix in the original
    ("attention.attention.key.",        "attn.qkv[k]."),
    ("attention.attention.value.",      "attn.qkv[v]."),
    ("attention.output.dense.",         "attn.proj."),
    ("layer_scale1.lambda1",            "ls1.gamma"),
    ("norm2.",                          "norm2."),
    ("mlp.fc1.",                        "mlp.fc1."),
    ("mlp.fc2.",                        "mlp.fc2."),
    ("layer_scale2.lambda1",            "ls2.gamma"),
)
FUSION_RENAMES: tuple[tuple[str, str], ...] = (
    ("projection.",                     "out_conv."),
    ("residual_layer1.convolution1.",   "resConfUnit1.conv1."),
    ("residual_layer1.convolution2.",   "resConfUnit1.conv2."),
    ("residual_layer2.convolution1.",   "resConfUnit2.conv1."),
    ("residual_layer2.convolution2.",   "resConfUnit2.conv2."),
)
# (Hugging Face prefix, original prefix, renames of the rest). {i} is a block/stage number kept as is.
HF_RULES: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("backbone.embeddings.cls_token",                       "pretrained.cls_token", ()),
    ("backbone.embeddings.mask_token",                      "pretrained.mask_token", ()),
    ("backbone.embeddings.position_embeddings",             "pretrained.pos_embed", ()),
    ("backbone.embeddings.patch_embeddings.projection.",    "pretrained.patch_embed.proj.", ()),
    ("backbone.encoder.layer.{i}.",                         "pretrained.blocks.{i}.", BLOCK_RENAMES),
    ("backbone.layernorm.",                                 "pretrained.norm.", ()),
    ("neck.reassemble_stage.layers.{i}.projection.",        "depth_head.projects.{i}.", ()),
    ("neck.reassemble_stage.layers.{i}.resize.",            "depth_head.resize_layers.{i}.", ()),
    ("neck.convs.0.",                                       "depth_head.scratch.layer1_rn.", ()),
    ("neck.convs.1.",                                       "depth_head.scratch.layer2_rn.", ()),
    ("neck.convs.2.",                                       "depth_head.scratch.layer3_rn.", ()),
    ("neck.convs.3.",                                       "depth_head.scratch.layer4_rn.", ()),
    # HF fuses from the deepest stage first: its fusion layer 0 is the original's refinenet4
    ("neck.fusion_stage.layers.0.",                         "depth_head.scratch.refinenet4.", FUSION_RENAMES),
    ("neck.fusion_stage.layers.1.",                         "depth_head.scratch.refinenet3.", FUSION_RENAMES),
    ("neck.fusion_stage.layers.2.",                         "depth_head.scratch.refinenet2.", FUSION_RENAMES),
    ("neck.fusion_stage.layers.3.",                         "depth_head.scratch.refinenet1.", FUSION_RENAMES),
    ("head.conv1.",                                         "depth_head.scratch.output_conv1.", ()),
    ("head.conv2.",                                         "depth_head.scratch.output_conv2.0.", ()),
    ("head.conv3.",                                         "depth_head.scratch.output_conv2.2.", ()),
)
# fmt: on
QKV_PARTS = ("q", "k", "v")
_QKV_PART = re.compile(r"^(.*\.attn\.qkv)\[([qkv])\]\.(weight|bias)$")
SHOWN_KEYS = 8


def _compile(template: str) -> re.Pattern[str]:
    return re.compile(re.escape(template).replace(re.escape("{i}"), r"(?P<i>\d+)"))


_FORWARD = tuple((_compile(hf), orig, renames) for hf, orig, renames in HF_RULES)
_BACKWARD = tuple((_compile(orig), hf, tuple((b, a) for a, b in renames)) for hf, orig, renames in HF_RULES)


def _rename(key: str, rules: tuple) -> str | None:
    for pattern, target, renames in rules:
        match = pattern.match(key)
        if not match:
            continue
        rest = key[match.end() :]
        if renames:
            for old, new in renames:
                if rest.startswith(old):
                    rest = new + rest[len(old) :]
                    break
            else:
                return None
        elif rest not in (("weight", "bias") if target.endswith(".") else ("",)):
            return None
        return target.replace("{i}", match.group("i") if "i" in match.groupdict() else "") + rest
    return None


def hf_to_original(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Hugging Face keys -> original keys (q, k, v fused into qkv). Returns (state, keys no rule took)."""
    converted: dict[str, torch.Tensor] = {}
    parts: dict[str, dict[str, torch.Tensor]] = {}
    unmapped = []
    for key, tensor in state.items():
        new = _rename(key, _FORWARD)
        if new is None:
            unmapped.append(key)
            continue
        fused = _QKV_PART.match(new)
        if fused:
            parts.setdefault(f"{fused.group(1)}.{fused.group(3)}", {})[fused.group(2)] = tensor
        else:
            converted[new] = tensor
    for key, pieces in parts.items():
        if set(pieces) != set(QKV_PARTS):
            unmapped.append(f"{key} (has only {'/'.join(sorted(pieces))} of q/k/v)")
            continue
        converted[key] = torch.cat([pieces[p] for p in QKV_PARTS], dim=0)
    return converted, unmapped


def original_to_hf(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Original keys -> Hugging Face keys (qkv split into query/key/value): HF_RULES read backwards."""
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        names: list[tuple[str, torch.Tensor]] = [(key, tensor)]
        if re.search(r"\.attn\.qkv\.(weight|bias)$", key):
            head, _, kind = key.rpartition(".")
            names = [(f"{head}[{p}].{kind}", chunk) for p, chunk in zip(QKV_PARTS, tensor.chunk(3, dim=0), strict=True)]
        for name, value in names:
            new = _rename(name, _BACKWARD)
            if new is None:
                raise ValueError(f"Depth Anything V2: no Hugging Face name for {name!r}")
            converted[new] = value
    return converted


def detect_layout(state: Mapping[str, torch.Tensor]) -> str:
    """ "original" or "hf", from the key prefixes; ValueError for anything else."""
    prefixes = {key.split(".", 1)[0] for key in state}
    if prefixes and prefixes <= {"pretrained", "depth_head"}:
        return "original"
    if prefixes and prefixes <= {"backbone", "neck", "head"}:
        return "hf"
    shown = ", ".join(sorted(prefixes)[:SHOWN_KEYS]) or "no tensors"
    raise ValueError(
        "not a Depth Anything V2 weights file: expected keys under pretrained./depth_head. (original release) "
        f"or backbone./neck./head. (Hugging Face -hf), found top-level names: {shown}"
    )


def read_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a .safetensors or torch (.pth/.pt/.bin) file, without running any code in it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: weights file not found")
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as error:  # safetensors raises its own error types for a damaged header
            raise ValueError(f"{path.name}: not a readable safetensors file ({error})") from error
    # torch.serialization.load, not torch.load: the WebUI replaces torch.load with a checker that knows only
    # the zip records of 2022 torch; it logs files saved by newer torch (.format_version) and returns None.
    # weights_only=True is torch's own allowlist (tensors and plain containers), so nothing is left unchecked.
    try:
        try:
            loaded = torch.serialization.load(path, map_location="cpu", weights_only=True, mmap=True)
        except (TypeError, RuntimeError) as error:  # torch < 2.1 has no mmap; the legacy format can't be mapped
            if isinstance(error, RuntimeError) and "mmap" not in str(error):
                raise
            loaded = torch.serialization.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path.name}: refused; it holds more than plain tensors (weights_only load failed: "
            f"{str(error).splitlines()[0]}). Use the file as published, or its .safetensors version"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise ValueError(f"{path.name}: not a readable torch weights file ({error})") from error
    if isinstance(loaded, dict) and len(loaded) == 1 and isinstance(next(iter(loaded.values())), dict):
        loaded = next(iter(loaded.values()))  # {"state_dict": {...}} / {"model": {...}}
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(f"{path.name}: expected a dict of tensors (a state dict), got {type(loaded).__name__}")
    return loaded


def infer_config(state: Mapping[str, torch.Tensor]) -> DAv2Config:
    """The release config (vits/vitb/vitl) that these original-layout weights belong to."""
    pos = state.get("pretrained.pos_embed")
    if pos is None:
        raise ValueError("Depth Anything V2 weights: no pretrained.pos_embed, cannot tell the model size")
    dim = pos.shape[-1]
    for config in CONFIGS.values():
        if config.embed_dim == dim:
            return config
    known = ", ".join(f"{c.encoder}={c.embed_dim}" for c in CONFIGS.values())
    raise ValueError(f"Depth Anything V2 weights: embedding width {dim} is none of the released sizes ({known})")


def _listing(label: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS]) + (f", ... ({len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else "")
    return f"{len(keys)} {label}: {shown}"


def load_state_into(model: DepthAnythingV2, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Strict load with one message naming every kind of mismatch (missing, unused, wrong shape)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unused = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k} (file {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    problems = [
        _listing(label, keys)
        for label, keys in (("missing keys", missing), ("unused keys", unused), ("shape mismatches", wrong))
        if keys
    ]
    if problems:
        raise ValueError(f"{source}: does not fit Depth Anything V2 {model.config.encoder}: " + "; ".join(problems))
    model.load_state_dict(dict(state), strict=True)


def load_depth_anything_v2(
    weights: str | os.PathLike | Mapping[str, torch.Tensor],
    *,
    encoder: str | None = None,
    config: DAv2Config | None = None,
    pos_embed_mode: PosEmbedMode | None = None,
) -> DepthAnythingV2:
    """A ready (eval) model from a weights file or state dict in either layout.

    `encoder` ("vits"/"vitb"/"vitl") checks the file is that size; `config` gives an architecture
    outside the released three (tests). `pos_embed_mode` defaults to the numerics of the layout's
    own reference: "original" for the release .pth, "transformers" for the -hf safetensors.
    """
    source = Path(weights).name if isinstance(weights, (str, os.PathLike)) else "state dict"
    state = read_weights_file(weights) if isinstance(weights, (str, os.PathLike)) else dict(weights)
    try:
        layout = detect_layout(state)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    if layout == "hf":
        state, unmapped = hf_to_original(state)
        if unmapped:
            raise ValueError(f"{source}: Hugging Face layout with {_listing('unused keys', sorted(unmapped))}")
    if config is None:
        try:
            config = infer_config(state)
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None
        if encoder is not None and config.encoder != encoder:
            raise ValueError(
                f"{source}: holds a Depth Anything V2 {config.encoder} model, but {encoder} was asked for; "
                "pick the estimator of that size or the matching weights file"
            )
    mode: PosEmbedMode = pos_embed_mode or ("transformers" if layout == "hf" else "original")
    model = DepthAnythingV2(config, mode)
    load_state_into(model, state, source)
    return model.eval()
