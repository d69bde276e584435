"""Inspect Stable Diffusion checkpoints without loading them, and tell depth models apart.

`.safetensors` are read from their JSON header alone; `.ckpt` files are opened with
`torch.load(mmap=True, weights_only=True)` so tensors stay on disk, falling back to a restricted
unpickler (lib_depth.safe_pickle) for Lightning checkpoints that hold non-tensor objects.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import safe_pickle

DEPTH_KEY = "depth_model.model.pretrained.act_postprocess3.0.project.0.bias"
UNET_INPUT_KEY = "model.diffusion_model.input_blocks.0.0.weight"
CONTEXT_KEY = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
SDXL_KEY = "conditioner.embedders.1.model.ln_final.weight"
SDXL_REFINER_KEY = "conditioner.embedders.0.model.ln_final.weight"
DEPTH_PREFIX = "depth_model.model."
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
DEPTH_UNET_CHANNELS = 5
DEPTH_CONTEXT_DIM = 1024

_SAFETENSORS_DTYPES = {
    "F64": "fp64",
    "F32": "fp32",
    "F16": "fp16",
    "BF16": "bf16",
    "F8_E4M3": "fp8",
    "F8_E5M2": "fp8",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}
_TORCH_DTYPES = {torch.float64: "fp64", torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
_MAX_HEADER_BYTES = 100 * 2**20


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: str  # fp32, fp16, bf16, ...


@dataclass
class CheckpointReport:
    """What a checkpoint file is, read without loading its weights."""

    path: Path
    format: str = "unknown"  # safetensors | ckpt | ckpt (legacy)
    kind: str = "unknown"  # depth | sd1 | sd1-inpainting | sd2 | sd2-inpainting | sdxl | sdxl-refiner | ...
    description: str = ""
    precision: str = "-"
    problem: str | None = None  # set when the file cannot be used at all
    context_dim: int | None = None  # width of the text conditioning the UNet cross-attends to
    tensors: dict[str, TensorInfo] = field(default_factory=dict, repr=False)

    @property
    def readable(self) -> bool:
        return self.problem is None

    @property
    def is_depth(self) -> bool:
        return self.kind == "depth"

    @property
    def has_depth_weights(self) -> bool:
        return DEPTH_KEY in self.tensors


def read_safetensors_header(path: Path) -> dict[str, TensorInfo]:
    """Tensor names, shapes and dtypes from the header; ValueError if truncated or corrupt."""
    size = path.stat().st_size
    with path.open("rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise ValueError("truncated: shorter than a safetensors header")
        (header_size,) = struct.unpack("<Q", prefix)
        if header_size > min(size - 8, _MAX_HEADER_BYTES):
            raise ValueError("corrupt or truncated: header length exceeds the file")
        try:
            header = json.loads(file.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"corrupt: unreadable safetensors header ({error.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise ValueError("corrupt: safetensors header is not an object")
    tensors = {}
    data_end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            shape = tuple(int(s) for s in entry["shape"])
            start, end = (int(v) for v in entry["data_offsets"])
            dtype = _SAFETENSORS_DTYPES.get(entry["dtype"], str(entry["dtype"]).lower())
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"corrupt: bad header entry for {name!r}") from None
        data_end = max(data_end, end)
        tensors[name] = TensorInfo(shape, dtype)
    available = size - 8 - header_size
    if data_end > available:
        raise ValueError(
            f"truncated: {available:,} bytes of tensor data, the header needs {data_end:,} "
            "(an interrupted download? download the file again)"
        )
    return tensors


def read_ckpt_tensors(path: Path) -> tuple[str, dict[str, TensorInfo]]:
    """(format, tensors) of a torch checkpoint, without executing code from the file."""
    is_zip = zipfile.is_zipfile(path)
    if not is_zip:
        with path.open("rb") as file:
            head = file.read(2)
        if head[:1] != b"\x80":  # legacy torch files start with a pickle protocol marker
            if head[:2] == b"PK":
                raise ValueError("corrupt or truncated: broken zip archive (an interrupted download?)")
            raise ValueError("not a checkpoint: neither a safetensors nor a PyTorch file")
    file_format = "ckpt" if is_zip else "ckpt (legacy)"
    loaded = _load_without_code(path, mmap=is_zip)
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict):
        raise ValueError("not a checkpoint: the file holds no state dict")
    tensors = {
        str(name): TensorInfo(tuple(value.shape), _dtype_name(value.dtype))
        for name, value in state.items()
        if isinstance(value, torch.Tensor)
    }
    return file_format, tensors


def _dtype_name(dtype: torch.dtype) -> str:
    return _TORCH_DTYPES.get(dtype, str(dtype).replace("torch.", ""))


def _load_without_code(path: Path, *, mmap: bool) -> object:
    try:
        try:
            return torch.load(path, map_location="cpu", mmap=mmap, weights_only=True)
        except pickle.UnpicklingError:
            # weights_only refuses non-tensor objects (Lightning callbacks); ours admits them inertly
            return torch.load(path, map_location="cpu", mmap=mmap, weights_only=False, pickle_module=safe_pickle)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError) as error:
        message = str(error).splitlines()[0] if str(error) else error.__class__.__name__
        raise ValueError(f"corrupt or truncated: {message}") from None


def classify(tensors: dict[str, TensorInfo]) -> tuple[str, str, str | None]:
    """(kind, description, problem) from tensor names and shapes."""
    unet = tensors.get(UNET_INPUT_KEY)
    channels = unet.shape[1] if unet and len(unet.shape) == 4 else None
    context_dim = context_dim_of(tensors)
    if DEPTH_KEY in tensors:
        if channels != DEPTH_UNET_CHANNELS:
            problem = f"UNet takes {channels} input channels, a depth model needs {DEPTH_UNET_CHANNELS}"
            return "depth", "SD 2 depth (512-depth)", problem
        return "depth", "SD 2 depth (512-depth)", None
    if SDXL_KEY in tensors:
        return ("sdxl-inpainting", "SDXL inpainting", None) if channels == 9 else ("sdxl", "SDXL", None)
    if SDXL_REFINER_KEY in tensors:
        return "sdxl-refiner", "SDXL refiner", None
    if channels is None:
        return "unknown", "not a Stable Diffusion checkpoint (no UNet)", None
    if channels == DEPTH_UNET_CHANNELS:
        return "unknown", "5-channel UNet without MiDaS weights (an incomplete depth model?)", None
    sd2 = context_dim == 1024
    family = "SD 2.x" if sd2 else "SD 1.x"
    kind = "sd2" if sd2 else "sd1"
    if channels == 9:
        return f"{kind}-inpainting", f"{family} inpainting (9-channel)", None
    if channels == 8:
        return "instruct-pix2pix", "InstructPix2Pix (8-channel)", None
    if sd2:
        return kind, "SD 2.x (512-base or 768-v)", None
    return kind, family, None


def context_dim_of(tensors: dict[str, TensorInfo]) -> int | None:
    context = tensors.get(CONTEXT_KEY)
    return context.shape[1] if context and len(context.shape) == 2 else None


def precision_of(tensors: dict[str, TensorInfo]) -> str:
    """fp16 / fp32 / bf16, or 'mixed (...)' when the floating tensors disagree."""
    counts = Counter(t.dtype for t in tensors.values() if t.dtype in ("fp16", "fp32", "bf16", "fp64", "fp8"))
    if not counts:
        return "-"
    if len(counts) == 1:
        return next(iter(counts))
    main = counts.most_common(1)[0][0]
    return f"{main} (mixed: {', '.join(sorted(counts))})"


def inspect_checkpoint(path: str | os.PathLike) -> CheckpointReport:
    """Read a checkpoint's tensor list and say what it is; never raises for a bad file."""
    report = CheckpointReport(Path(path))
    try:
        if not report.path.is_file():
            raise ValueError("not found")
        if report.path.suffix.lower() == ".safetensors":
            report.format, report.tensors = "safetensors", read_safetensors_header(report.path)
        else:
            report.format, report.tensors = read_ckpt_tensors(report.path)
    except ValueError as error:
        report.problem = str(error)
        return report
    except PermissionError:
        report.problem = "cannot read: permission denied"
        return report
    if not report.tensors:
        report.problem = "not a checkpoint: it holds no tensors"
        return report
    report.kind, report.description, report.problem = classify(report.tensors)
    report.precision = precision_of(report.tensors)
    report.context_dim = context_dim_of(report.tensors)
    return report


def depth_model_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The MiDaS weights inside a depth checkpoint, keyed as DPTDepthModel expects."""
    path = Path(path)
    report = inspect_checkpoint(path)
    if report.problem:
        raise ValueError(f"{path.name}: {report.problem}")
    if not report.has_depth_weights:
        raise ValueError(f"{path.name}: holds no MiDaS depth weights ({report.description})")
    if report.format == "safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as file:
            return {k[len(DEPTH_PREFIX) :]: file.get_tensor(k) for k in file.keys() if k.startswith(DEPTH_PREFIX)}  # noqa: SIM118
    loaded = _load_without_code(path, mmap=report.format == "ckpt")
    state = loaded.get("state_dict", loaded)
    return {k[len(DEPTH_PREFIX) :]: v for k, v in state.items() if k.startswith(DEPTH_PREFIX)}
