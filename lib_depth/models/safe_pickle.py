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
import pickletools
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
    def __init__(self, file: Any, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._file = file

    def load(self) -> Any:
        """torch.load subclasses this class and calls load() itself: the check goes here."""
        if getattr(self._file, "seekable", lambda: False)():
            check_pickle(self._file)
        return super().load()

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is not None:
            return found
        if module == "torch" and name.endswith("Storage"):
            return getattr(torch, name, _placeholder(module, name))
        return _placeholder(module, name)


MAX_MEMO_INDEX = 10_000_000  # a checkpoint's pickle memoises a few objects per tensor
MAX_MARK_DEPTH = 1_000


def check_pickle(file: Any) -> None:
    """Walk a pickle's opcodes without building anything; UnpicklingError for what would make the
    C unpickler allocate without bound (a memo index of billions reserves that many slots) or
    nest absurdly deep. Rewinds the file afterwards."""
    start = file.tell()
    depth = 0
    try:
        for opcode, argument, _ in pickletools.genops(file):
            if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and int(argument) > MAX_MEMO_INDEX:
                raise pickle.UnpicklingError(f"memo index {int(argument):,} is over {MAX_MEMO_INDEX:,}")
            if opcode.name == "MARK":
                depth += 1
                if depth > MAX_MARK_DEPTH:
                    raise pickle.UnpicklingError(f"nested more than {MAX_MARK_DEPTH} levels deep")
            elif pickletools.markobject in opcode.stack_before:
                depth -= 1
    except (ValueError, EOFError) as error:
        raise pickle.UnpicklingError(f"not a valid pickle ({error})") from None
    finally:
        file.seek(start)


def load(file: Any, **kwargs: Any) -> Any:
    return Unpickler(file, **kwargs).load()


# torch.load's legacy format reads several pickles with the module's own names
Pickler = pickle.Pickler
UnpicklingError = pickle.UnpicklingError
