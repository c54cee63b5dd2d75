"""Discrete values: integers 0..1023 (button presses, discrete observations).

Shifted to ``[discrete_offset, discrete_offset + 1024)``. Anything that is not
an integer in that range is an error naming the value (docs/design.md keeps discrete
ids apart from text ids, so no id has two meanings).

>>> import numpy as np
>>> from gato_mini.config import GatoConfig
>>> cfg = GatoConfig.from_name("tiny")
>>> encode(np.array([0, 3, 1023]), cfg).tolist()
[4096, 4099, 5119]
>>> decode(encode(np.array([[1, 2]]), cfg), cfg).tolist()
[[1, 2]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gato_mini.config import GatoConfig
from gato_mini.errors import TokenizationError
from gato_mini.tokenizers._backend import (
    Array,
    as_array,
    as_ids,
    first_index,
    is_integer_dtype,
    is_torch,
    item,
    to_int64,
    xp,
)


def encode(values: Any, cfg: GatoConfig) -> Array:
    """Integers in ``[0, discrete_bins)`` (any shape) -> token ids."""
    x = as_array(values)
    if not is_torch(x) and x.dtype.kind not in "biuf":
        raise TokenizationError(f"discrete values must be integers, got dtype {x.dtype}")
    if not is_integer_dtype(x):
        lib = xp(x)
        not_int = ~lib.isfinite(x) | (lib.floor(x) != x)
        if bool(not_int.any()):
            idx = first_index(not_int)
            raise TokenizationError(
                f"discrete value {item(x, idx)} at index {list(idx)} is not an integer"
            )
    bad = (x < 0) | (x >= cfg.discrete_bins)  # before the cast, which would wrap huge values
    if bool(bad.any()):
        idx = first_index(bad)
        raise TokenizationError(
            f"discrete value {item(x, idx)} at index {list(idx)} is outside "
            f"0..{cfg.discrete_bins - 1}"
        )
    return to_int64(x) + cfg.discrete_offset


def decode(ids: Any, cfg: GatoConfig) -> Array:
    """Token ids -> the integers they encode."""
    ids = as_ids(ids, "discrete-value")
    x = ids - cfg.discrete_offset
    bad = (x < 0) | (x >= cfg.discrete_bins)
    if bool(bad.any()):
        idx = first_index(bad)
        raise TokenizationError(
            f"id {item(ids, idx)} at index {list(idx)} is not a discrete-value id "
            f"[{cfg.discrete_offset}, {cfg.discrete_offset + cfg.discrete_bins})"
        )
    return x if not isinstance(x, np.ndarray) else x.astype(np.int64)
