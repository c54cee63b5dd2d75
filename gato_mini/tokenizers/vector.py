"""Observation vectors: a whole continuous field as one token (the ``vector`` layout).

A field of the ``vector`` layout (:class:`~gato_mini.fields.FieldSpec`, ``layout="vector"``) is one
slot in the id stream, like an image patch: the token is ``<|patch|>``, and the slot's payload row
(the ``patches`` array of a :class:`~gato_mini.data.sequence.TokenSequence`, ``P*P*C`` bytes) holds
the field's values, each normalized by the training data's mean and standard deviation, clipped to
``±CLIP`` and stored as little-endian float32, zero-padded to the row. Its position row
``(VECTOR_SLOT, n, 0, 0)`` says it is a vector of ``n`` values, not an image patch; the model maps the
first ``vector_width`` floats to the width with one linear layer (docs/design.md, "Observation vectors").

>>> import numpy as np
>>> from gato_mini.config import GatoConfig
>>> cfg = GatoConfig.from_name("tiny")
>>> rows = encode(np.array([[1.0, 4.0]]), np.array([0.0, 2.0]), np.array([1.0, 2.0]), cfg)
>>> rows.shape, rows.dtype, payload_values(rows, 2).tolist()
((1, 768), dtype('uint8'), [[1.0, 1.0]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gato_mini.config import GatoConfig
from gato_mini.errors import TokenizationError

#: The first position byte of a vector slot (patch rows and columns are intervals of 0..128).
VECTOR_SLOT = 255
#: Normalized values are clipped to ±CLIP: a state far outside the demonstrations stays a finite input.
CLIP = 10.0


def normalize(values: Any, mean: Any, std: Any) -> np.ndarray:
    """``(values - mean) / std`` clipped to ±:data:`CLIP`, as float32 (T, n); a non-finite value is a
    :class:`~gato_mini.errors.TokenizationError` naming it."""
    x = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise TokenizationError(f"continuous value {x[idx]} at index {list(idx)} is not finite; NaN and "
                                "inf cannot be tokenized")
    z = (x - np.asarray(mean, np.float64)) / np.asarray(std, np.float64)
    return np.clip(z, -CLIP, CLIP).astype(np.float32)


def encode(values: Any, mean: Any, std: Any, cfg: GatoConfig) -> np.ndarray:
    """Rows of a field ``(T, n)`` -> slot payloads ``(T, P*P*C)`` uint8 (see the module docstring)."""
    z = normalize(values, mean, std)
    t, n = z.shape
    if n > cfg.vector_width:
        raise TokenizationError(f"a vector of {n} values is wider than vector_width={cfg.vector_width}")
    ppc = cfg.patch_size ** 2 * cfg.image_channels
    rows = np.zeros((t, ppc // 4), "<f4")
    rows[:, :n] = z
    return rows.view(np.uint8)


def positions(n: int) -> np.ndarray:
    """The position row ``(1, 4)`` of a vector slot of ``n`` values."""
    return np.array([[VECTOR_SLOT, n, 0, 0]], np.uint8)


def payload_values(rows: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` normalized values of payload rows (inverse of :func:`encode`'s packing)."""
    return np.ascontiguousarray(rows).view("<f4")[:, :n]
