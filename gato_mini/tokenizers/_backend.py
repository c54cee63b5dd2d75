"""Tiny numpy/torch dispatch so each tokenizer is written once for both.

Tokenizers accept numpy arrays or torch tensors and return the same kind; the
few operations they need are picked from the matching module here.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from gato_mini.errors import TokenizationError

Array = Any  # np.ndarray | torch.Tensor


def torch_module() -> Any:
    """torch if this process has imported it, else None. The tokenizers never import it themselves: a
    tensor can only exist once torch is loaded, and an environment's process (which tokenizes nothing
    but builds its fields from these modules) then starts without torch's seconds of import."""
    return sys.modules.get("torch")


def is_torch(x: Array) -> bool:
    """True for a torch tensor."""
    torch = torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


def as_array(x: Any) -> Array:
    """Lists and scalars become numpy arrays; arrays and tensors pass through."""
    return x if is_torch(x) or isinstance(x, np.ndarray) else np.asarray(x)


def xp(x: Array) -> Any:
    """The array module (``numpy`` or ``torch``) that owns ``x``."""
    return torch_module() if is_torch(x) else np


def to_int64(x: Array) -> Array:
    """Cast to int64 in the same library."""
    return x.to(torch_module().int64) if is_torch(x) else x.astype(np.int64)


def to_float(x: Array) -> Array:
    """Cast to float: float32 for torch (float64 stays), float64 for numpy."""
    if is_torch(x):
        torch = torch_module()
        return x if x.dtype in (torch.float32, torch.float64) else x.to(torch.float32)
    return x.astype(np.float64)


def is_integer_dtype(x: Array) -> bool:
    """True for integer or boolean element types."""
    if is_torch(x):
        return not (x.dtype.is_floating_point or x.dtype.is_complex)
    return x.dtype.kind in "iub"


def first_index(mask: Array) -> tuple[int, ...]:
    """Index of the first True element of a boolean array (for error messages)."""
    m = mask.cpu().numpy() if is_torch(mask) else np.asarray(mask)
    return tuple(int(i) for i in np.argwhere(m)[0])


def item(x: Array, index: tuple[int, ...]) -> Any:
    """One element as a Python scalar."""
    v = x[index] if index else x
    return v.item() if hasattr(v, "item") else v


def as_ids(ids: Any, what: str) -> Array:
    """Token ids as int64; anything but integers (floats, strings, objects) is a TokenizationError."""
    x = as_array(ids)
    if not is_integer_dtype(x):
        raise TokenizationError(f"{what} ids must be integers, got dtype {x.dtype}")
    if not is_torch(x) and x.dtype == np.uint64 and x.size and int(x.max()) > np.iinfo(np.int64).max:
        raise TokenizationError(f"{what} id {int(x.max())} is out of range")
    return to_int64(x)
