"""A diffusers depth pipeline folder -> one checkpoint the WebUI loads as a depth model.

Reads the pipeline's configs and weights, renames every tensor with the rule tables of
convert_keys.py, checks the result against the model the WebUI builds for the config (every source
tensor used, every target tensor produced, or conversion fails saying which), and writes the
checkpoint with its config beside it, never over an existing file.
"""

from __future__ import annotations

import errno
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch

from ..io.files import new_file_mode
from .convert_keys import (
    COMPONENTS,
    DEPTH_PIPELINE,
    DPT_FUSED,
    DPT_RULES,
    NOT_WEIGHTS,
    PREFIXES,
    TEXT_FUSED,
    TEXT_RULES,
    UNET_RULES,
    UNUSED_TARGETS,
    VAE_RULES,
    Geometry,
    map_keys,
)


class ConversionError(ValueError):
    """The folder is not a depth pipeline, or its tensors do not map one-to-one."""


def _read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file that must hold an object; ConversionError naming the file otherwise."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConversionError(f"{path}: not a JSON text file") from None
    except json.JSONDecodeError as error:
        raise ConversionError(f"{path}: invalid JSON ({error.msg} at line {error.lineno})") from None
    except RecursionError:
        raise ConversionError(f"{path}: invalid JSON (nested too deeply)") from None
    except OSError as error:
        raise ConversionError(f"{path}: cannot read ({error.strerror or error})") from None
    if not isinstance(value, dict):
        raise ConversionError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def read_config(folder: Path, component: str) -> dict[str, Any]:
    path = folder / component / "config.json"
    if not path.is_file():
        raise ConversionError(f"{folder}: no {component}/config.json")
    return _read_json_object(path)


def read_weights(folder: Path, component: str) -> dict[str, torch.Tensor]:
    """A component's tensors: *.safetensors preferred, else *.bin read with weights_only.
    ConversionError naming the file when one is not what its name says."""
    directory = folder / component
    files = sorted(directory.glob("*.safetensors")) or sorted(directory.glob("*.bin"))
    if not files:
        raise ConversionError(f"{folder}: no weights in {component}/ (expected .safetensors or .bin)")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(_read_weights_file(file))
    return state


def _read_weights_file(file: Path) -> dict[str, torch.Tensor]:
    import pickle

    from .checkpoint import inspect_checkpoint

    if file.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        report = inspect_checkpoint(file)  # header checked first: a clear reason for a bad file
        if report.problem and report.problem != "not a checkpoint: it holds no tensors":
            raise ConversionError(f"{file}: {report.problem}")
        try:
            return load_file(str(file))
        except (SafetensorError, OSError, ValueError) as error:
            raise ConversionError(f"{file}: not a readable safetensors file ({str(error)[:200]})") from None
    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ConversionError(
            f"{file}: holds Python objects besides tensors, which are not loaded (they could run code); "
            "save the component with safetensors (save_pretrained(..., safe_serialization=True))"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0][:200] if str(error) else error.__class__.__name__
        raise ConversionError(f"{file}: not a readable PyTorch weights file ({reason})") from None
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ConversionError(f"{file}: not a state dict of tensors")
    return loaded


def check_pipeline(folder: Path) -> dict[str, Any]:
    """model_index.json of a depth pipeline; ConversionError naming what the folder is instead."""
    if not folder.is_dir():
        raise ConversionError(f"{folder}: no such folder")
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ConversionError(f"{folder}: not a diffusers pipeline folder (no model_index.json)")
    index = _read_json_object(index_path)
    kind = index.get("_class_name", "?")
    if kind != DEPTH_PIPELINE:
        raise ConversionError(f"{folder}: a {str(kind)[:80]}, not a {DEPTH_PIPELINE}; only depth pipelines convert")
    missing = [c for c in COMPONENTS if not (folder / c).is_dir()]
    if missing:
        raise ConversionError(f"{folder}: missing component folder(s): {', '.join(missing)}")
    channels = read_config(folder, "unet").get("in_channels")
    if channels != 5:
        raise ConversionError(f"{folder}: the UNet takes {str(channels)[:20]} input channels; a depth UNet takes 5")
    return index


def geometry_of(unet: dict[str, Any], vae: dict[str, Any]) -> Geometry:
    up_types = unet.get("up_block_types") or ()
    return Geometry(
        unet_layers=int(unet.get("layers_per_block", 2)),
        unet_up_attention=tuple("CrossAttn" in t for t in up_types),
        vae_blocks=len(vae.get("block_out_channels") or ()),
    )


def text_arch_for(text: dict[str, Any], requested: str | None) -> str:
    """The OpenCLIP model whose text tower the diffusers text encoder is (SD 2: ViT-H-14, whose last
    layer the pipeline drops because SD 2 reads the penultimate one)."""
    import open_clip

    arch = requested or "ViT-H-14"
    config = open_clip.get_model_config(arch)
    if config is None:
        raise ConversionError(f"--text-arch: {arch} is not an OpenCLIP model name")
    tower = config["text_cfg"]
    layers = int(text.get("num_hidden_layers", 0))
    fits = (tower.get("width"), tower.get("heads"), tower.get("layers")) == (
        text.get("hidden_size"),
        text.get("num_attention_heads"),
        layers + 1,
    )
    if not fits:
        raise ConversionError(
            f"text_encoder: {text.get('hidden_size')} wide, {text.get('num_attention_heads')} heads, {layers} layers "
            f"is not the text tower of OpenCLIP {arch} minus its last layer"
            + ("" if requested else "; pass --text-arch with the OpenCLIP model it comes from")
        )
    return arch


def depth_config(unet: dict[str, Any], vae: dict[str, Any], text_arch: str) -> dict[str, Any]:
    """Our SD 2 depth config with the sizes of the converted model."""
    import yaml

    from .model_config import BUNDLED_CONFIG

    config = yaml.safe_load(BUNDLED_CONFIG.read_text(encoding="utf-8"))
    params = config["model"]["params"]
    channels = list(unet["block_out_channels"])
    heads = unet.get("attention_head_dim", 8)
    heads = heads[0] if isinstance(heads, list) else heads
    depth = unet.get("transformer_layers_per_block", 1)
    params["unet_config"]["params"].update(
        model_channels=channels[0],
        channel_mult=[c // channels[0] for c in channels],
        num_res_blocks=int(unet.get("layers_per_block", 2)),
        attention_resolutions=[2**k for k, t in enumerate(unet["down_block_types"]) if "CrossAttn" in t],
        num_head_channels=channels[0] // heads,
        context_dim=int(unet["cross_attention_dim"]),
        use_linear_in_transformer=bool(unet.get("use_linear_projection", False)),
        transformer_depth=depth[0] if isinstance(depth, list) else depth,
    )
    vae_channels = list(vae["block_out_channels"])
    first_stage = params["first_stage_config"]["params"]
    first_stage["embed_dim"] = int(vae.get("latent_channels", 4))
    first_stage["ddconfig"].update(
        ch=vae_channels[0],
        ch_mult=[c // vae_channels[0] for c in vae_channels],
        num_res_blocks=int(vae.get("layers_per_block", 2)),
        z_channels=int(vae.get("latent_channels", 4)),
    )
    params["scale_factor"] = float(vae.get("scaling_factor", 0.18215))
    # no pretrained download: the checkpoint holds the text encoder
    params["cond_stage_config"]["params"].update(arch=text_arch, version=None)
    return config


def target_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every tensor the WebUI's model for `config` has, with shapes, built on the meta device.

    ldm prints notes while it imports and builds ("No module 'xformers'", "making attention of
    type ..."): they say nothing about the conversion, so they are kept out of the user's output.
    """
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return _target_shapes(config)


def _target_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    import open_clip
    from ldm.models.autoencoder import AutoencoderKL
    from ldm.modules.diffusionmodules.openaimodel import UNetModel
    from open_clip.model import CLIP

    from ..depth.midas import import_dpt_depth_model

    params = config["model"]["params"]
    vae = params["first_stage_config"]["params"]
    with torch.device("meta"):
        parts = {
            PREFIXES["unet"]: UNetModel(**params["unet_config"]["params"]),
            PREFIXES["vae"]: AutoencoderKL(vae["ddconfig"], {"target": "torch.nn.Identity"}, vae["embed_dim"]),
            PREFIXES["text_encoder"]: CLIP(**open_clip.get_model_config(params["cond_stage_config"]["params"]["arch"])),
            PREFIXES["depth_estimator"]: import_dpt_depth_model()(
                path=None, backbone="vitb_rn50_384", non_negative=True
            ),
        }
    return {prefix + k: tuple(v.shape) for prefix, module in parts.items() for k, v in module.state_dict().items()}


def require_model_code() -> None:
    """ldm and open_clip build the target model; say so before any weight is read if missing."""
    import importlib.util

    missing = [name for name in ("ldm", "open_clip") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConversionError(
            f"convert needs {' and '.join(missing)} (the WebUI has them): run it with the WebUI's Python from "
            "the extension folder, e.g. ../../venv/bin/python depth2img-cli.py convert ..."
        )


def convert_pipeline(
    folder: str | Path, *, text_arch: str | None = None, progress: Callable[[str], None] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(WebUI state dict, config) for a depth pipeline folder; ConversionError lists any tensor
    that did not map, any target left unproduced, and any shape that differs."""
    folder = Path(folder)
    check_pipeline(folder)
    require_model_code()
    configs = {c: read_config(folder, c) for c in COMPONENTS}
    try:
        geometry = geometry_of(configs["unet"], configs["vae"])
        arch = text_arch_for(configs["text_encoder"], text_arch)
        config = depth_config(configs["unet"], configs["vae"], arch)
        layers = int(configs["text_encoder"]["num_hidden_layers"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
        if isinstance(error, ConversionError):
            raise
        raise ConversionError(
            f"{folder}: a component's config.json lacks or mangles a value the conversion needs "
            f"({error.__class__.__name__}: {str(error)[:100]})"
        ) from None
    tables = {
        "unet": (UNET_RULES, None),
        "vae": (VAE_RULES, None),
        "text_encoder": (TEXT_RULES, TEXT_FUSED),
        "depth_estimator": (DPT_RULES, DPT_FUSED),
    }
    state: dict[str, torch.Tensor] = {}
    unused: list[str] = []
    for component in COMPONENTS:
        if progress:
            progress(component)
        rules, fused = tables[component]
        converted, left = map_keys(
            read_weights(folder, component), rules, geometry, fused, NOT_WEIGHTS.get(component, ())
        )
        unused += [f"{component}/{key}" for key in left]
        for key, value in converted.items():
            if component == "vae" and ".attn_1." in key and key.endswith(".weight") and value.ndim == 2:
                value = value[:, :, None, None]  # diffusers' linear attention -> ldm's 1x1 convolutions
            state[PREFIXES[component] + key] = value
    expected = target_shapes(config)
    skipped = re.compile("|".join(UNUSED_TARGETS + (rf"^cond_stage_model\.model\.transformer\.resblocks\.{layers}\.",)))
    missing = sorted(k for k in expected if k not in state and not skipped.search(k))
    unknown = sorted(k for k in state if k not in expected)
    wrong = sorted(
        f"{k} {tuple(v.shape)} != {expected[k]}"
        for k, v in state.items()
        if k in expected and tuple(v.shape) != expected[k]
    )
    problems = [
        (unused, "source tensors no rule maps"),
        (unknown, "produced tensors the depth model does not have"),
        (missing, "depth model tensors not produced"),
        (wrong, "shape mismatches"),
    ]
    report = [
        f"{title} ({len(items)}): {', '.join(items[:12])}{' ...' if len(items) > 12 else ''}"
        for items, title in problems
        if items
    ]
    if report:
        raise ConversionError(f"{folder}: cannot convert exactly:\n  " + "\n  ".join(report))
    return state, config


def check_output(output: str | Path) -> tuple[Path, Path]:
    """(checkpoint, yaml) paths if they can be written: a .safetensors name, neither file present,
    a writable folder. Checked before any weight is read; ConversionError naming the file if not."""
    from ..io.files import check_writable_folder
    from .model_config import config_path_for

    output = Path(output)
    if output.suffix.lower() != ".safetensors":
        raise ConversionError(f"{output}: the output must be a .safetensors file")
    yaml_path = config_path_for(output)
    existing = [str(p) for p in (output, yaml_path) if os.path.lexists(p)]
    if existing:
        raise ConversionError(f"{', '.join(existing)} already exist(s); choose another name or move it away")
    try:
        check_writable_folder(output.parent, "output")
    except ValueError as error:
        raise ConversionError(str(error)) from None
    return output, yaml_path


def write_checkpoint(
    state: dict[str, torch.Tensor], config: dict[str, Any], output: str | Path, *, half: bool = False
) -> tuple[Path, Path]:
    """Write OUT.safetensors and OUT.yaml; never overwrites (ConversionError if either exists).

    The checkpoint is written under a temporary name and linked into place, which fails rather
    than replace a file that appeared meanwhile; both files get the umask's permissions.
    """
    import yaml
    from safetensors.torch import save_file

    output, yaml_path = check_output(output)
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    header = "# sd-webui-depth2img: converted from a diffusers StableDiffusionDepth2ImgPipeline\n"
    config_text = (header + yaml.safe_dump(config, sort_keys=False)).encode("utf-8")
    temporary = output.with_name(f".{output.name}.partial-{os.getpid()}")
    try:
        save_file({k: v.contiguous() for k, v in state.items()}, str(temporary), metadata={"format": "pt"})
        os.chmod(temporary, new_file_mode())
        _link_new(temporary, output)
        try:
            with yaml_path.open("xb") as file:
                file.write(config_text)
        except BaseException:
            output.unlink(missing_ok=True)  # ours, written a moment ago: no half-installed model
            raise
    except FileExistsError as error:
        raise ConversionError(f"{error.filename}: appeared while converting; nothing was replaced") from None
    except OSError as error:
        raise ConversionError(f"{output}: cannot write ({error.strerror or error})") from None
    except Exception as error:  # safetensors reports I/O failures as its own error type
        raise ConversionError(f"{output}: cannot write ({error})") from None
    finally:
        temporary.unlink(missing_ok=True)
    return output, yaml_path


def _link_new(source: Path, target: Path) -> None:
    """Give `source` the name `target` only if no file has it (a hard link fails on an existing
    name; where links are unsupported, check and rename)."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from None
        os.rename(source, target)
