"""The `<checkpoint>.yaml` beside a depth checkpoint: check it, and on request write ours.

The WebUI uses a yaml with the checkpoint's basename, when present, instead of detecting the
model. A wrong one (v2-inference.yaml renamed by mistake) fails late with size-mismatch errors,
so it is recognised here; fixing it moves the user's file aside, never overwrites it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..io.files import write_atomically

BUNDLED_CONFIG = Path(__file__).resolve().parent / "configs" / "sd2-depth-inference.yaml"
DEPTH_TARGET = "ldm.models.diffusion.ddpm.LatentDepth2ImageDiffusion"
MAX_CONFIG_BYTES = 1 * 2**20  # a model config is a few KiB


@dataclass(frozen=True)
class ConfigStatus:
    path: Path
    state: str  # ok | missing | wrong | unreadable
    message: str
    context_dim: int | None = None  # the UNet's context_dim the config declares


def config_path_for(checkpoint: str | os.PathLike) -> Path:
    """Where the WebUI looks for a checkpoint's own config (sd_models_config.py)."""
    return Path(os.path.splitext(os.fspath(checkpoint))[0] + ".yaml")


def check_depth_config(checkpoint: str | os.PathLike) -> ConfigStatus:
    path = config_path_for(checkpoint)
    if not path.exists():
        return ConfigStatus(path, "missing", f"no {path.name}; the WebUI detects the depth model by its weights")
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            return ConfigStatus(
                path, "unreadable", f"{path.name} is over {MAX_CONFIG_BYTES:,} bytes: not a model config"
            )
        with path.open("r", encoding="utf-8") as file:
            config = yaml.safe_load(file)
    except RecursionError:  # a crafted, deeply nested file; pyyaml composes recursively
        return ConfigStatus(path, "unreadable", f"{path.name} cannot be read (nested too deeply)")
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as error:
        return ConfigStatus(path, "unreadable", f"{path.name} cannot be read ({error.__class__.__name__})")
    problem = _depth_config_problem(config)
    if problem:
        return ConfigStatus(path, "wrong", f"{path.name} {problem}")
    context_dim = _section(_section(_section(config["model"], "params"), "unet_config"), "params").get("context_dim")
    context_dim = context_dim if isinstance(context_dim, int) and not isinstance(context_dim, bool) else None
    return ConfigStatus(path, "ok", f"{path.name} describes a depth model", context_dim)


def _depth_config_problem(config: object) -> str | None:
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict):
        return "is not a model config (no 'model' section)"
    params = _section(model, "params")
    unet = _section(_section(params, "unet_config"), "params")
    target = _short(model.get("target", "?"))
    found = []
    if target != DEPTH_TARGET:
        found.append(f"model {target.rsplit('.', 1)[-1]}")
    if "depth_stage_config" not in params:
        found.append("no depth_stage_config")
    if unet.get("in_channels") != 5:
        found.append(f"UNet in_channels {_short(unet.get('in_channels', '?'))} (depth needs 5)")
    if params.get("conditioning_key") != "hybrid":
        found.append(f"conditioning_key {_short(params.get('conditioning_key', '?'))} (depth needs hybrid)")
    if not found:
        return None
    return "describes another model: " + ", ".join(found)


def _short(value: object) -> str:
    """A config value for a message; a crafted one (an alias bomb) is never turned into text."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = str(value)
        return text if len(text) <= 80 else text[:77] + "..."
    return f"<{type(value).__name__}>"


def _section(mapping: dict, key: str) -> dict:
    value = mapping.get(key)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class ConfigFix:
    written: Path | None  # our config, where it was written
    backup: Path | None  # where the user's previous file went


def fix_depth_config(checkpoint: str | os.PathLike, *, now: float | None = None) -> ConfigFix:
    """Write our config beside a depth checkpoint if it is missing, wrong or unreadable.

    A present file is first renamed to `<name>.yaml.bak-<timestamp>`. Raises ValueError with what
    to do by hand when the folder cannot be written.
    """
    status = check_depth_config(checkpoint)
    if status.state == "ok":
        return ConfigFix(None, None)
    target = status.path
    backup = None
    try:
        mode = None  # a new file: the umask's mode
        if status.state != "missing":
            mode = target.stat().st_mode  # the replaced file's, so whoever could read it still can
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
            backup = target.with_name(f"{target.name}.bak-{stamp}")
            counter = 1
            while backup.exists():
                counter += 1
                backup = target.with_name(f"{target.name}.bak-{stamp}-{counter}")
            target.rename(backup)
        write_atomically(target, BUNDLED_CONFIG.read_bytes(), mode=mode)
    except OSError as error:
        raise ValueError(
            f"cannot write {target} ({error.strerror or error.__class__.__name__}); make the folder writable "
            f"or copy {BUNDLED_CONFIG} there by hand as {target.name}"
        ) from None
    return ConfigFix(target, backup)
