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

from gato_mini.config import GatoConfig
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
    # Continuous observations only: "values" (Gato: one token per value, mu-law and bins) or "vector"
    # (one token for the whole field: its values, normalized by ``mean`` and ``std``, through one linear
    # map; docs/design.md, "Observation vectors"). Decided at prepare time, stored with the model.
    layout: str = "values"
    mean: tuple[float, ...] = ()  # "vector" only: per value, from the training data
    std: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (stored with datasets and models); a per-value field's is what it was before
        the vector layout existed, so old model folders read back unchanged."""
        d = {"modality": self.modality, "shape": list(self.shape), "mu_law": self.mu_law,
             "offset": self.offset, "n": self.n}
        if self.layout != "values":
            d.update(layout=self.layout, mean=list(self.mean), std=list(self.std))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FieldSpec:
        """Inverse of :meth:`to_dict`; a vector field's statistics are checked (one line naming the field's
        problem, :class:`~gato_mini.errors.GatoError`, for a missing, short or non-finite one)."""
        spec = cls(d["modality"], tuple(d["shape"]), bool(d["mu_law"]), int(d["offset"]), int(d["n"]))
        layout = d.get("layout", "values")
        if layout == "values":
            return spec
        if layout != "vector" or spec.modality != "continuous":
            raise GatoError(f"a {spec.modality} field cannot have the layout {layout!r}")
        return with_statistics(spec, d.get("mean"), d.get("std"))

    @property
    def size(self) -> int:
        """Values in one row of the field."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    def space_only(self) -> FieldSpec:
        """The field as its gymnasium space gives it (no layout or statistics): what an env must match."""
        return FieldSpec(self.modality, self.shape, self.mu_law, self.offset, self.n)


def becomes_vector(spec: FieldSpec, cfg: GatoConfig) -> bool:
    """Whether ``cfg`` tokenizes this observation field as one vector token (``obs_layout: vector``, a
    continuous field of at most ``vector_width`` values); the statistics come at prepare time."""
    return cfg.obs_layout == "vector" and spec.modality == "continuous" and spec.size <= cfg.vector_width


def with_statistics(spec: FieldSpec, mean: Any, std: Any) -> FieldSpec:
    """``spec`` as one vector token normalized by ``mean`` and ``std`` (one number per value each; every
    ``std`` finite and positive). A missing, short or non-finite statistic is refused in one line."""
    out = []
    for name, values in (("mean", mean), ("std", std)):
        try:
            arr = np.asarray(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise GatoError(f"vector field: its {name} must be a list of numbers, got {values!r}") from None
        if values is None or arr.size != spec.size:
            raise GatoError(f"vector field of {spec.size} value(s): its {name} has "
                            f"{'none' if values is None else arr.size}")
        if not np.all(np.isfinite(arr)) or (name == "std" and not np.all(arr > 0)):
            must = "finite and positive" if name == "std" else "finite"
            raise GatoError(f"vector field: its {name} must be {must}, got {arr.tolist()}")
        out.append(tuple(float(v) for v in arr))
    return FieldSpec(spec.modality, spec.shape, spec.mu_law, spec.offset, spec.n, "vector", out[0], out[1])


def same_spaces(a: tuple[dict[str, FieldSpec], FieldSpec], b: tuple[dict[str, FieldSpec], FieldSpec]) -> bool:
    """Whether two (observation fields, action field) pairs come from the same spaces (layouts and
    statistics aside): an env matches a model trained on it."""
    (fa, aa), (fb, ab) = a, b
    return (fa.keys() == fb.keys() and all(fa[k].space_only() == fb[k].space_only() for k in fa)
            and aa.space_only() == ab.space_only())


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
