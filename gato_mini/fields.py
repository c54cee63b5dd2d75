"""How each observation key (and the action) is tokenized: `FieldSpec`.

A *field* is one observation key or the action. Its modality and, for
continuous fields, the mu-law choice are decided once from its gymnasium space
(docs/design.md: observation dicts are flattened in sorted key order):

==========================================  ==========================================
space                                       field
==========================================  ==========================================
``Box`` of uint8, shape (H, W) or (H, W, C)  ``image`` (C in 1, 3; H, W >= 8)
other ``Box``                               ``continuous``; mu-law unless inside [-1, 1]
``Discrete(n)``, n <= 1024                  ``discrete``, one value (start subtracted)
``MultiDiscrete``, ``MultiBinary``          ``discrete``, one value per element
``Text``                                    ``text``
``Dict``                                    one field per key, sorted
==========================================  ==========================================

Anything else (``Tuple``, ``Graph``, ``Discrete`` with more than 1024 values,
...) raises :class:`UnsupportedSpaceError` naming the space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from gato_mini.errors import GatoError
from gato_mini.tokenizers.continuous import needs_mu_law

MAX_DISCRETE = 1024  # docs/design.md: discrete ids hold ints 0..1023


class UnsupportedSpaceError(GatoError, TypeError):
    """A gymnasium space that gato-mini cannot tokenize."""


@dataclass(frozen=True)
class FieldSpec:
    """One field: modality, element shape, and how its values map to tokens."""

    modality: str  # "image" | "continuous" | "discrete" | "text"
    shape: tuple[int, ...]
    mu_law: bool = False  # continuous only: mu-law the whole field first
    offset: int = 0  # discrete only: subtracted before tokenizing (Discrete.start)
    n: int = 0  # discrete only: number of values per element (the legal id range)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (stored with datasets and models)."""
        return {"modality": self.modality, "shape": list(self.shape), "mu_law": self.mu_law,
                "offset": self.offset, "n": self.n}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FieldSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(d["modality"], tuple(d["shape"]), bool(d["mu_law"]), int(d["offset"]), int(d["n"]))


def _is_image(space: spaces.Box) -> bool:
    shape = space.shape
    if space.dtype != np.uint8 or len(shape) not in (2, 3):
        return False
    if len(shape) == 3 and shape[2] not in (1, 3):
        return False
    return shape[0] >= 8 and shape[1] >= 8


def field_spec(space: spaces.Space, name: str = "observation") -> FieldSpec:
    """The :class:`FieldSpec` of one non-dict space."""
    if isinstance(space, spaces.Box):
        if _is_image(space):
            return FieldSpec("image", tuple(space.shape))
        if not np.issubdtype(space.dtype, np.number):
            raise UnsupportedSpaceError(f"field '{name}': Box of dtype {space.dtype} is not supported")
        return FieldSpec("continuous", tuple(space.shape), mu_law=needs_mu_law(space.low, space.high))
    if isinstance(space, spaces.Discrete):
        if space.n > MAX_DISCRETE:
            raise UnsupportedSpaceError(
                f"field '{name}': {space} has {space.n} values; at most {MAX_DISCRETE} fit the discrete ids")
        return FieldSpec("discrete", (), offset=int(space.start), n=int(space.n))
    if isinstance(space, spaces.MultiDiscrete):
        nvec = np.asarray(space.nvec)
        if nvec.max(initial=0) > MAX_DISCRETE:
            raise UnsupportedSpaceError(
                f"field '{name}': {space} has an element with more than {MAX_DISCRETE} values")
        if np.any(np.asarray(space.start) != 0):
            raise UnsupportedSpaceError(f"field '{name}': {space} with a non-zero start is not supported")
        return FieldSpec("discrete", tuple(space.shape), n=int(nvec.max(initial=1)))
    if isinstance(space, spaces.MultiBinary):
        return FieldSpec("discrete", tuple(np.atleast_1d(space.n)), n=2)
    if isinstance(space, spaces.Text):
        return FieldSpec("text", ())
    raise UnsupportedSpaceError(f"field '{name}': space {space} is not supported "
                                "(Box, Discrete, MultiDiscrete, MultiBinary, Text or a Dict of them)")


def observation_fields(space: spaces.Space) -> dict[str, FieldSpec]:
    """Field specs of an observation space, keys sorted; a non-dict space is one field 'observation'."""
    if isinstance(space, spaces.Dict):
        out = {}
        for key in sorted(space.spaces):
            sub = space.spaces[key]
            if isinstance(sub, spaces.Dict):
                raise UnsupportedSpaceError(f"field '{key}': nested Dict spaces are not supported")
            out[key] = field_spec(sub, key)
        return out
    return {"observation": field_spec(space)}


def action_field(space: spaces.Space) -> FieldSpec:
    """Field spec of an action space (images and text are not actions Gato emits here)."""
    spec = field_spec(space, "action")
    if spec.modality not in ("continuous", "discrete"):
        raise UnsupportedSpaceError(f"action space {space} is not supported; actions must be "
                                    "continuous or discrete")
    return spec


def as_observation_dict(obs: Any, space: spaces.Space) -> dict[str, Any]:
    """An observation as a dict keyed like :func:`observation_fields`."""
    if isinstance(space, spaces.Dict):
        return {k: obs[k] for k in sorted(space.spaces)}
    return {"observation": obs}
