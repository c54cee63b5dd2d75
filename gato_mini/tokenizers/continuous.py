"""Continuous values: optional mu-law, clip to [-1, 1], 1024 uniform bins.

Gato App. B: values are mu-law encoded (mu=100, M=256) "if not already" in
[-1, 1], then discretized into 1024 uniform bins. gato-mini makes the mu-law
choice once per *field* (an observation key or the action), from the field's
space: a field whose bounds lie inside [-1, 1] is binned directly, any other is
mu-law encoded as a whole. Deciding per value would send 0.99 and 1.01 to
opposite ends of the id range.

Reconstruction error (decode(encode(x)) vs x):

* direct fields: at most half a bin, ``1 / bins``, for x in [-1, 1]; values
  outside are clipped to ±1 first.
* mu-law fields: half a bin in the encoded space, which is at most
  :func:`mu_law_error_bound` in the original space, a relative error of about
  ``ln(M mu + 1) / (bins mu) * (mu |x| + 1)`` (about 1% of |x| for |x| >> 1/mu);
  values beyond ±M are clipped to ±M.

>>> import numpy as np
>>> from gato_mini.config import GatoConfig
>>> cfg = GatoConfig.from_name("tiny")
>>> ids = encode(np.array([-1.0, 0.0, 1.0]), cfg)
>>> ids.tolist()
[5120, 5632, 6143]
>>> decode(ids, cfg).round(3).tolist()
[-0.999, 0.001, 0.999]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gato_mini.config import GatoConfig
from gato_mini.errors import TokenizationError
from gato_mini.tokenizers._backend import (
    Array,
    as_array,
    as_ids,
    first_index,
    is_torch,
    item,
    to_float,
    to_int64,
    xp,
)


def needs_mu_law(low: Any, high: Any) -> bool:
    """Whether a field with these bounds is mu-law encoded (any bound outside [-1, 1])."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    return not (bool(np.all(low >= -1.0)) and bool(np.all(high <= 1.0)))


def mu_law(x: Array, mu: float = 100.0, m: float = 256.0) -> Array:
    """Gato's mu-law companding: ``sign(x) log(|x| mu + 1) / log(M mu + 1)``."""
    lib = xp(x)
    return lib.sign(x) * lib.log1p(lib.abs(x) * mu) / math.log1p(m * mu)


def inverse_mu_law(y: Array, mu: float = 100.0, m: float = 256.0) -> Array:
    """Inverse of :func:`mu_law` on [-1, 1]."""
    lib = xp(y)
    return lib.sign(y) * lib.expm1(lib.abs(y) * math.log1p(m * mu)) / mu


def mu_law_error_bound(x: Array, cfg: GatoConfig) -> Array:
    """Worst-case ``|decode(encode(x)) - clip(x, -M, M)|`` for a mu-law field.

    Half a bin (``1 / bins``) in encoded space, mapped back through the slope of
    the inverse mu-law at the far end of the bin.
    """
    lib = xp(x)
    c = math.log1p(cfg.mu_m * cfg.mu)
    half_bin = 1.0 / cfg.continuous_bins
    ax = lib.clip(lib.abs(to_float(as_array(x))), 0.0, cfg.mu_m)
    return half_bin * c / cfg.mu * (cfg.mu * ax + 1.0) * math.exp(c * half_bin)


def _check_finite(x: Array) -> None:
    lib = xp(x)
    bad = ~lib.isfinite(x)
    if bool(bad.any()):
        idx = first_index(bad)
        raise TokenizationError(
            f"continuous value {item(x, idx)} at index {list(idx)} is not finite; "
            "NaN and inf cannot be tokenized"
        )


def encode(values: Any, cfg: GatoConfig, mu_law_field: bool = False) -> Array:
    """Continuous values (any shape) -> token ids in ``[continuous_offset, +bins)``.

    ``mu_law_field`` says whether the whole field is mu-law encoded; decide it
    with :func:`needs_mu_law` from the field's space.
    """
    x = as_array(values)
    if x.dtype == object or (not is_torch(x) and x.dtype.kind not in "biuf"):
        raise TokenizationError(f"continuous values must be numbers, got dtype {x.dtype}")
    x = to_float(x)
    _check_finite(x)
    lib = xp(x)
    if mu_law_field:
        x = mu_law(lib.clip(x, -cfg.mu_m, cfg.mu_m), cfg.mu, cfg.mu_m)
    x = lib.clip(x, -1.0, 1.0)
    bins = lib.floor((x + 1.0) * (cfg.continuous_bins / 2.0))
    bins = lib.clip(bins, 0, cfg.continuous_bins - 1)  # x == 1 falls in the last bin
    return to_int64(bins) + cfg.continuous_offset


def decode(ids: Any, cfg: GatoConfig, mu_law_field: bool = False) -> Array:
    """Token ids -> bin centres (undoing mu-law for mu-law fields)."""
    ids = as_ids(ids, "continuous-value")
    bins = ids - cfg.continuous_offset
    bad = (bins < 0) | (bins >= cfg.continuous_bins)
    if bool(bad.any()):
        idx = first_index(bad)
        raise TokenizationError(
            f"id {item(ids, idx)} at index {list(idx)} is not a continuous-value id "
            f"[{cfg.continuous_offset}, {cfg.continuous_offset + cfg.continuous_bins})"
        )
    centres = (to_float(bins) + 0.5) * (2.0 / cfg.continuous_bins) - 1.0
    if mu_law_field:
        centres = inverse_mu_law(centres, cfg.mu, cfg.mu_m)
    return centres
