"""A pickle module for torch.load that rebuilds tensors and plain data and executes nothing else.

Checkpoints saved by PyTorch Lightning also hold callbacks and other objects that
`torch.load(weights_only=True)` refuses. Passed as `pickle_module`, this admits tensors,
storages and plain containers; every other global becomes an inert placeholder whose
construction runs no code, so a malicious pickle (e.g. one that calls os.system) does nothing.
"""

from __future__ import annotations

import _codecs
import collections
import pickle
from typing import Any

import numpy as np
import torch

try:
    from numpy._core.multiarray import scalar as _numpy_scalar
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import scalar as _numpy_scalar

_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): torch.Size,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("_codecs", "encode"): _codecs.encode,  # numpy scalars store their bytes through it
    ("numpy", "dtype"): np.dtype,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "scalar")] = _numpy_scalar
for _dtype in ("float32", "float16", "bfloat16", "float64", "int64", "int32", "uint8", "bool"):
    _ALLOWED[("torch", _dtype)] = getattr(torch, _dtype)


class Inert:
    """Stands in for any global a checkpoint names that is not plain data. Runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Inert:
        return Inert()


def _placeholder(module: str, name: str) -> type:
    return type(name, (Inert,), {"__module__": f"inert.{module}", "__qualname__": name})


class Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is not None:
            return found
        if module == "torch" and name.endswith("Storage"):
            return getattr(torch, name, _placeholder(module, name))
        return _placeholder(module, name)


def load(file: Any, **kwargs: Any) -> Any:
    return Unpickler(file, **kwargs).load()


# torch.load's legacy format reads several pickles with the module's own names
Pickler = pickle.Pickler
UnpicklingError = pickle.UnpicklingError
