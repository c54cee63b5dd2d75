"""One field of one timestep <-> tokens; the order of fields inside a timestep.

docs/design.md fixes the layout of a timestep::

    [text obs tokens] [image patches, raster order] [discrete/continuous obs values] <|sep|> [action]

with each group in sorted key order and values row-major. This module encodes
and decodes whole columns (every timestep of a field at once), so an episode is
tokenized with a handful of vectorized calls rather than a Python loop per step.

Images are cut into patches by the one image codec, :mod:`gato_mini.tokenizers.image`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gato_mini.config import GatoConfig
from gato_mini.errors import TokenizationError
from gato_mini.fields import FieldSpec
from gato_mini.tokenizers import continuous, discrete, vector
from gato_mini.tokenizers.image import grid_shape

_GROUP = {"text": 0, "image": 1, "discrete": 2, "continuous": 2}


def field_order(fields: dict[str, FieldSpec]) -> list[str]:
    """Observation keys in stream order: text fields, then images, then values; sorted inside."""
    return sorted(fields, key=lambda k: (_GROUP[fields[k].modality], k))


# --- values ------------------------------------------------------------------
def field_width(spec: FieldSpec, cfg: GatoConfig, size: tuple[int, int] | None = None) -> int:
    """Tokens one timestep of a fixed-width field takes (text fields vary: an error here)."""
    if spec.modality == "image":
        rows, cols = grid_shape(spec.shape, cfg.patch_size, size)
        return rows * cols
    if spec.modality == "text":
        raise TokenizationError("text fields have no fixed width")
    return 1 if spec.layout == "vector" else spec.size


def _rows_of(column: Any, spec: FieldSpec) -> np.ndarray:
    """A column of numbers ``(T, *shape)`` as ``(T, size)`` rows, or a :class:`TokenizationError` saying
    what is wrong with it."""
    x = np.asarray(column)
    if x.dtype.kind not in "biuf":
        raise TokenizationError(f"values must be numbers, got dtype {x.dtype}")
    if x.ndim == 0:
        raise TokenizationError("values need one row per step, got a single value")
    if math.prod(x.shape[1:]) != spec.size:
        raise TokenizationError(f"each row must hold {spec.size} value(s) (shape {spec.shape}), "
                                f"got rows of shape {x.shape[1:]}")
    return x.reshape(x.shape[0], spec.size)


def encode_values(column: Any, spec: FieldSpec, cfg: GatoConfig, name: str = "field") -> np.ndarray:
    """A discrete or continuous column ``(T, *shape)`` -> ids ``(T, width)`` (int64)."""
    try:
        x = _rows_of(column, spec)
        if spec.modality == "continuous":
            ids = continuous.encode(x, cfg, spec.mu_law)
        elif spec.modality == "discrete":
            x = x.astype(np.float64 if x.dtype.kind == "f" else np.int64)  # wide enough for the offset
            ids = discrete.encode(x - spec.offset, cfg)
        else:
            raise TokenizationError(f"{spec.modality} is not a value modality")
    except TokenizationError as exc:
        raise TokenizationError(f"{name}: {exc}") from None
    return np.asarray(ids, dtype=np.int64)


def encode_vector(column: Any, spec: FieldSpec, cfg: GatoConfig, name: str = "field") -> np.ndarray:
    """A ``vector`` field's column ``(T, *shape)`` -> slot payloads ``(T, P*P*C)`` uint8
    (:mod:`gato_mini.tokenizers.vector`); bad rows are one :class:`TokenizationError` naming the field."""
    try:
        return vector.encode(_rows_of(column, spec), spec.mean, spec.std, cfg)
    except TokenizationError as exc:
        raise TokenizationError(f"{name}: {exc}") from None


def decode_values(ids: Any, spec: FieldSpec, cfg: GatoConfig) -> np.ndarray:
    """Inverse of :func:`encode_values` for ids ``(..., width)`` -> values ``(..., *shape)``."""
    ids = np.asarray(ids)
    if spec.modality == "continuous":
        out = np.asarray(continuous.decode(ids, cfg, spec.mu_law), dtype=np.float32)
    else:
        out = np.asarray(discrete.decode(ids, cfg)) + spec.offset
    return out.reshape((*ids.shape[:-1], *spec.shape))


def legal_range(spec: FieldSpec, cfg: GatoConfig) -> tuple[int, int]:
    """[lo, hi) ids an action element of this field may take (docs/design.md: an action is decoded among
    its legal ids)."""
    if spec.modality == "discrete":
        return cfg.discrete_offset, cfg.discrete_offset + max(spec.n, 1)
    return cfg.continuous_offset, cfg.continuous_offset + cfg.continuous_bins
