"""The files this extension can download: one table of names, sizes, hashes and mirrors.

Stability AI removed the Stable Diffusion 2 repositories from the Hugging Face Hub in November
2025; copies survive in other Hub repositories. Sizes and SHA-256 are the published ones (the
Git LFS pointers of the mirror repositories), so a download is verified against them and the
doctor can tell an official file from a fine-tune or a damaged copy. A client (WebUI route) may
only name an entry of this table, never a URL or a path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from ..depth.estimators import ESTIMATORS
from .first_download import recorded_first_sha256

DEFAULT_ENDPOINT = "https://huggingface.co"
SD2_LICENCE = (
    "CreativeML Open RAIL++-M (https://huggingface.co/stabilityai/stable-diffusion-2/blob/main/LICENSE-MODEL): "
    "use restrictions apply; read it before use"
)
# where each kind of file goes, relative to the WebUI's folder (or its --models-dir parent)
KIND_FOLDERS = {
    "checkpoint": Path("models") / "Stable-diffusion",
    "estimator": Path("models") / "depth2img",
}


def hub_endpoint() -> str:
    """`HF_ENDPOINT` (a Hub mirror or proxy, as huggingface_hub honours it), else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE_VALUES = ("1", "ON", "YES", "TRUE")  # huggingface_hub's constants.ENV_VARS_TRUE_VALUES


def hub_offline() -> str | None:
    """`HF_HUB_OFFLINE=1` (or its fallback TRANSFORMERS_OFFLINE), read as huggingface_hub reads it
    (`_is_true(HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)`, any case of 1/on/yes/true): the setting that
    turned offline mode on, as `NAME=value`, or None when downloads may connect."""
    for name in OFFLINE_VARIABLES:
        value = os.environ.get(name)
        if value:  # the first one set decides, as in huggingface_hub
            return f"{name}={value}" if value.upper() in _TRUE_VALUES else None
    return None


@dataclass(frozen=True)
class Mirror:
    """One Hub repository that holds a copy of a file."""

    name: str  # what --mirror takes
    repo: str
    path: str

    def url(self, endpoint: str | None = None) -> str:
        return f"{endpoint or hub_endpoint()}/{self.repo}/resolve/main/{self.path}"

    def page(self) -> str:
        """The human-readable file page (for manual downloads), always on huggingface.co."""
        return f"{DEFAULT_ENDPOINT}/{self.repo}/blob/main/{self.path}"


@dataclass(frozen=True)
class ModelFile:
    name: str  # unique, what routes and the CLI accept: 512-depth-ema-fp16
    model: str  # 512-depth-ema
    variant: str  # fp16 | fp32 | ckpt | ...
    filename: str  # the file name it gets on disk
    size: int | None  # exact bytes, None where no published number is known
    sha256: str | None  # None: no published hash; the first download records one (hashes.py)
    kind: str  # checkpoint | estimator (a key of KIND_FOLDERS)
    description: str  # "fp16 safetensors"
    licence: str
    mirrors: tuple[Mirror, ...]

    @property
    def title(self) -> str:
        """How the doctor names an identified file: official 512-depth-ema (fp16 safetensors)."""
        return f"official {self.model} ({self.description})"

    def size_text(self) -> str:
        return format_bytes(self.size) if self.size is not None else "size unknown"


_WEBUI = "webui/stable-diffusion-2-depth"
_COMMUNITY = "sd2-community/stable-diffusion-2-depth"

MODEL_FILES: tuple[ModelFile, ...] = (
    ModelFile(
        name="512-depth-ema-fp16",
        model="512-depth-ema",
        variant="fp16",
        filename="512-depth-ema-fp16.safetensors",
        size=2_853_737_366,
        sha256="1edad0394713bc4393bbdc06f1940c77ed78c6be4cc8c3a25da972caf5003903",
        kind="checkpoint",
        description="fp16 safetensors",
        licence=SD2_LICENCE,
        mirrors=(Mirror("webui", _WEBUI, "512-depth-ema-fp16.safetensors"),),
    ),
    ModelFile(
        name="512-depth-ema-fp32",
        model="512-depth-ema",
        variant="fp32",
        filename="512-depth-ema.safetensors",
        size=5_707_256_711,
        sha256="59cb052d4409654936139693b57e4632d119bdd38df9a3cdf30d4a63799a4853",
        kind="checkpoint",
        description="fp32 safetensors",
        licence=SD2_LICENCE,
        mirrors=(Mirror("webui", _WEBUI, "512-depth-ema.safetensors"),),
    ),
    ModelFile(
        name="512-depth-ema-ckpt",
        model="512-depth-ema",
        variant="ckpt",
        filename="512-depth-ema.ckpt",
        size=5_707_592_867,
        sha256="ece79d931a1f3c27fb98a0c0bc6aa7d61168879cd52b4ad7b26e3106f9748ef1",
        kind="checkpoint",
        description="original ckpt",
        licence=SD2_LICENCE,
        mirrors=(Mirror("sd2-community", _COMMUNITY, "512-depth-ema.ckpt"),),
    ),
)


def _estimator_files() -> tuple[ModelFile, ...]:
    """The weights of the estimators that need a file (estimators/__init__.py), as table entries
    named like the estimator: the first file with a published SHA-256, else the first file (its
    first download records the hash it measured, and later downloads are checked against that)."""
    entries = []
    for spec in ESTIMATORS.values():
        if not spec.weights:
            continue
        weights = next((w for w in spec.weights if w.sha256), spec.weights[0])
        entries.append(
            ModelFile(
                name=spec.name,
                model=spec.name,
                variant="weights",
                filename=weights.file_name,
                size=weights.size,
                sha256=weights.sha256,
                kind="estimator",
                description=f"{spec.label} weights",
                licence=spec.licence + ("" if spec.commercial_use else " (non-commercial use only)"),
                mirrors=(Mirror("hub", weights.hub_repo, weights.hub_path),),
            )
        )
    return tuple(entries)


MODEL_FILES += _estimator_files()
DEFAULT_MODEL = "512-depth-ema"
DEFAULT_VARIANT = "fp16"


def model_file(model: str = DEFAULT_MODEL, variant: str = DEFAULT_VARIANT) -> ModelFile:
    for entry in MODEL_FILES:
        if entry.model == model and entry.variant == variant:
            return entry
    known = ", ".join(f"{e.model} {e.variant}" for e in MODEL_FILES)
    raise ValueError(f"no downloadable file for {model} {variant}; known: {known}")


def model_file_named(name: str) -> ModelFile:
    """The entry with this exact name; anything else (a URL, a path) is refused."""
    for entry in MODEL_FILES:
        if entry.name == name:
            return entry
    raise ValueError(f"unknown model file {name!r}; choose one of: {', '.join(e.name for e in MODEL_FILES)}")


def estimator_file(name: str) -> ModelFile:
    """The weights entry of an estimator that needs a file, or a ValueError saying what there is."""
    entry = next((e for e in MODEL_FILES if e.kind == "estimator" and e.name == name), None)
    if entry is None:
        known = ", ".join(e.name for e in MODEL_FILES if e.kind == "estimator")
        raise ValueError(f"--estimator: no downloadable weights for {name!r}; known: {known}")
    if entry.sha256 is None:
        recorded = recorded_first_sha256(entry.name)
        if recorded:
            return replace(entry, sha256=recorded)
    return entry


def variants(model: str = DEFAULT_MODEL) -> list[str]:
    return [entry.variant for entry in MODEL_FILES if entry.model == model]


def mirror_names() -> list[str]:
    return sorted({mirror.name for entry in MODEL_FILES for mirror in entry.mirrors})


def official_by_sha256(sha256: str) -> ModelFile | None:
    sha256 = sha256.lower()
    return next((entry for entry in MODEL_FILES if entry.sha256 == sha256), None)


def official_by_size(size: int) -> list[ModelFile]:
    return [entry for entry in MODEL_FILES if entry.size == size]


def official_by_filename(filename: str) -> list[ModelFile]:
    return [entry for entry in MODEL_FILES if entry.filename == filename]


def format_bytes(count: float) -> str:
    """Decimal units, as the Hub and file managers show sizes: 2.85 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{int(count)} B"
