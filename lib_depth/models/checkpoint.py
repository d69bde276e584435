"""Inspect Stable Diffusion checkpoints without loading them, and tell depth models apart.

`.safetensors` are read from their JSON header alone; `.ckpt` files are opened with
`torch.load(mmap=True, weights_only=True)` so tensors stay on disk, falling back to a restricted
unpickler (lib_depth.safe_pickle) for Lightning checkpoints that hold non-tensor objects.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import struct
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
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


_DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "C64": 8,
}  # fmt: skip
_MAX_JSON_DEPTH = 8  # a safetensors header is 3 deep: {name: {"shape": [...]}}
_MAX_TENSORS = 1_000_000  # SD checkpoints hold about 1,000 to 3,000
_MAX_DIMENSIONS = 16
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_WEB_PAGE = "not a checkpoint (this looks like a web page: the download saved an HTML page instead of the file)"


def text_content_problem(head: bytes) -> str | None:
    """What a would-be checkpoint is when its first bytes are text: a web page, a Git LFS pointer,
    other text; None for binary data. A binary checkpoint never starts with 8 printable bytes."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if len(start) < 8 or any(byte < 9 or 13 < byte < 32 or byte > 126 for byte in start[:8]):
        return None
    lowered = start[:1024].lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--", b"<meta", b"<script")) or (
        lowered.startswith(b"<") and b"<html" in lowered
    ):
        return _WEB_PAGE
    if lowered.startswith(b"version https://git-lfs"):
        return "not a checkpoint: a Git LFS pointer file (run git lfs pull, or download the file itself)"
    first_line = start.split(b"\n", 1)[0][:60].decode("ascii", "replace")
    return f"not a checkpoint: a text file (it starts with {first_line!r}); the download saved something else"


def _json_depth(data: bytes) -> int:
    """Deepest bracket nesting of JSON text, strings skipped; no recursion, linear time."""
    skeleton = np.frombuffer(_JSON_STRING.sub(b'""', data), dtype=np.uint8)
    steps = np.zeros(skeleton.shape, dtype=np.int64)
    steps[(skeleton == ord("{")) | (skeleton == ord("["))] = 1
    steps[(skeleton == ord("}")) | (skeleton == ord("]"))] = -1
    return int(np.cumsum(steps).max()) if steps.size else 0


def _whole_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_safetensors_header(path: Path) -> dict[str, TensorInfo]:
    """Tensor names, shapes and dtypes from the header; ValueError if truncated or corrupt.

    Everything is bounded before it is trusted: header length, JSON nesting, tensor count, shape
    values, dtypes, offsets (inside the data, matching the tensor's size, not overlapping).
    """
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(1024)
        text = text_content_problem(head)
        if text:
            raise ValueError(text)
        if len(head) < 8:
            raise ValueError("truncated: shorter than a safetensors header")
        (header_size,) = struct.unpack("<Q", head[:8])
        if header_size > size - 8:
            raise ValueError("corrupt or truncated: header length exceeds the file")
        if header_size > _MAX_HEADER_BYTES:
            raise ValueError(f"corrupt: a {header_size:,}-byte header (over {_MAX_HEADER_BYTES:,} bytes)")
        file.seek(8)
        data = file.read(header_size)
    if _json_depth(data) > _MAX_JSON_DEPTH:
        raise ValueError(f"corrupt: safetensors header nested more than {_MAX_JSON_DEPTH} levels deep")
    try:
        header = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"corrupt: unreadable safetensors header ({error.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise ValueError("corrupt: safetensors header is not an object")
    if len(header) > _MAX_TENSORS:
        raise ValueError(f"corrupt: {len(header):,} tensors in the header (over {_MAX_TENSORS:,})")
    available = size - 8 - header_size
    tensors = {}
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        tensors[name] = _header_entry(name, entry)
        spans.append((*entry["data_offsets"], name))
    data_end = max((end for _, end, _ in spans), default=0)
    if data_end > available:
        raise ValueError(
            f"truncated: {available:,} bytes of tensor data, the header needs {data_end:,} "
            "(an interrupted download? download the file again)"
        )
    spans.sort(key=lambda span: span[:2])
    for (_, previous_end, previous), (start, end, name) in zip(spans, spans[1:], strict=False):
        if start < previous_end and end > start:
            raise ValueError(f"corrupt: tensors {previous!r} and {name!r} overlap in the file")
    return tensors


def _header_entry(name: str, entry: object) -> TensorInfo:
    """One header entry, checked: shape of sane whole numbers, a known dtype, offsets that hold
    exactly that many bytes."""
    label = name if len(name) <= 80 else name[:77] + "..."
    if not isinstance(entry, dict):
        raise ValueError(f"corrupt: bad header entry for {label!r}")
    shape, dtype, offsets = entry.get("shape"), entry.get("dtype"), entry.get("data_offsets")
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_DIMENSIONS
        or not all(_whole_number(s) and 0 <= s < 2**40 for s in shape)
    ):
        raise ValueError(f"corrupt: tensor {label!r} has an impossible shape {str(shape)[:60]}")
    if not isinstance(dtype, str) or dtype not in _DTYPE_BYTES:
        raise ValueError(f"corrupt or unsupported: tensor {label!r} has an unknown dtype {str(dtype)[:20]!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_whole_number(v) and 0 <= v < 2**62 for v in offsets)
        or offsets[0] > offsets[1]
    ):
        raise ValueError(f"corrupt: tensor {label!r} has impossible data offsets {str(offsets)[:60]}")
    elements = 1
    for dimension in shape:
        elements *= dimension
    if elements * _DTYPE_BYTES[dtype] != offsets[1] - offsets[0]:
        raise ValueError(
            f"corrupt: tensor {label!r} ({dtype} {tuple(shape)}) needs {elements * _DTYPE_BYTES[dtype]:,} bytes, "
            f"its offsets hold {offsets[1] - offsets[0]:,}"
        )
    return TensorInfo(tuple(shape), _SAFETENSORS_DTYPES.get(dtype, dtype.lower()))


def read_ckpt_tensors(path: Path) -> tuple[str, dict[str, TensorInfo]]:
    """(format, tensors) of a torch checkpoint, without executing code from the file."""
    with path.open("rb") as file:
        head = file.read(1024)
    text = text_content_problem(head)
    if text:
        raise ValueError(text)
    is_zip = zipfile.is_zipfile(path)
    if not is_zip and head[:1] != b"\x80":  # legacy torch files start with a pickle protocol marker
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
        raise ValueError(f"corrupt or truncated: {message[:300]}") from None
    except (MemoryError, RecursionError, OverflowError, KeyError, TypeError, AttributeError, IndexError) as error:
        raise ValueError(f"corrupt: a crafted or damaged pickle ({error.__class__.__name__})") from None


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
    except OSError as error:
        report.problem = f"cannot read: {(error.strerror or error.__class__.__name__).lower()}"
        return report
    except Exception as error:  # noqa: BLE001  the contract: a file gets a verdict, the scan goes on
        report.problem = f"corrupt: unreadable ({error.__class__.__name__})"
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
