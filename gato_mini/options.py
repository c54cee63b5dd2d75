"""Checking the numbers a command takes: one rule per numeric option, one place that applies them.

Every command builds one options dataclass (``EvalOptions``, ``CollectOptions``, ``Sampling``, ...)
from its command line; each numeric field names its rule in the field's metadata
(``field(default=..., metadata=number(...))``) and :func:`check_options` walks them all, so a NaN,
an infinity, a negative count or a zero where zero means nothing is one line naming the flag (exit
2) before any work starts, never a traceback from PyTorch or Lightning. Config sections that are
free mappings (``trainer:``) use :func:`checked` with the same rules.

>>> from dataclasses import dataclass, field
>>> @dataclass
... class Demo:
...     episodes: int = field(default=10, metadata=number("--episodes", lo=1, integer=True))
>>> check_options(Demo(episodes=0))
Traceback (most recent call last):
...
gato_mini.errors.GatoError: --episodes must be at least 1 (a whole number, at most 1,000,000,000), got 0
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from gato_mini.errors import GatoError

#: The largest count any option accepts (episodes, envs, steps, tokens): past it a value is a typo.
MAX_COUNT = 10**9


@dataclass(frozen=True)
class Number:
    """What a numeric option accepts: finite, at least ``lo`` (above it when ``open_lo``), at most
    ``hi``; a whole number when ``integer``; None when ``optional``."""

    flag: str
    lo: float | None = None
    open_lo: bool = False
    hi: float | None = None
    integer: bool = False
    optional: bool = True
    says: str = ""  # what it accepts, in words, where the bounds alone do not say it

    def explain(self) -> str:
        """What the option accepts, in words: "at least 1 (a whole number, at most 1000000000)"."""
        if self.says:
            return self.says
        if self.lo is None:
            bound = f"at most {_show(self.hi)}" if self.hi is not None else "finite"
        else:
            bound = f"{'above' if self.open_lo else 'at least'} {_show(self.lo)}"
        notes = (["a whole number"] if self.integer else []) + \
            ([f"at most {_show(self.hi)}"] if self.hi is not None and self.lo is not None else [])
        return bound + (f" ({', '.join(notes)})" if notes else "")

    def check(self, value: Any, error: type[GatoError] = GatoError) -> None:
        """Raise ``error`` (a :class:`GatoError`; a config's checks pass :class:`ConfigError`) naming the
        flag unless ``value`` is accepted."""
        if value is None and self.optional:
            return
        bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        if not bad and self.integer and value != int(value):
            bad = True
        if not bad and self.lo is not None:
            bad = value <= self.lo if self.open_lo else value < self.lo
        if not bad and self.hi is not None:
            bad = value > self.hi
        if bad:
            raise error(f"{self.flag} must be {self.explain()}, got {value!r}")


def _show(x: float) -> str:
    """1000000000 as 1,000,000,000; 0.5 as 0.5."""
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def number(flag: str, lo: float | None = None, *, open_lo: bool = False, hi: float | None = None,
           integer: bool = False, optional: bool = True, says: str = "") -> dict[str, Number]:
    """Field metadata naming a numeric option's rule (see the module's example). Counts get
    :data:`MAX_COUNT` as their upper bound unless ``hi`` says otherwise."""
    if integer and hi is None:
        hi = MAX_COUNT
    return {"number": Number(flag, lo, open_lo, hi, integer, optional, says)}


def count(flag: str, lo: int = 1, **kw: Any) -> dict[str, Number]:
    """A whole number at least ``lo`` (1 unless said): episodes, environments, steps, tokens."""
    return number(flag, lo, integer=True, **kw)


def seed(flag: str = "--seed") -> dict[str, Number]:
    """A seed: a whole number from 0 to 2**32 - 1 (what numpy's generators take)."""
    return number(flag, 0, hi=2**32 - 1, integer=True)


def checked(value: Any, meta: dict[str, Number], error: type[GatoError] = GatoError) -> Any:
    """``value`` once the rule in ``meta`` (what :func:`number`, :func:`count` or :func:`seed` return)
    accepts it: for a number that is not a dataclass field (a flag read once, a config's free
    ``trainer:`` section)."""
    meta["number"].check(value, error)
    return value


def config_number(value: Any, whole: bool = False) -> Any:
    """A config file's value as a number where it reads as one, the one place that does it: YAML reads
    ``1e-3`` and ``1e3`` (no dot) as strings. An int where ``whole`` and the value is one; anything
    else comes back as it is, for its rule to refuse by name.

    >>> config_number("1e-3"), config_number("2e3", whole=True), config_number("many")
    (0.001, 2000, 'many')
    """
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if whole and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def section_numbers(cls: Any, raw: dict[str, Any]) -> dict[str, Any]:
    """A config section's mapping with each numeric field of the options dataclass ``cls`` read by
    :func:`config_number` (whole where its rule wants one); other keys as they are."""
    rules = dict(numeric_fields(cls))
    return {k: config_number(v, rules[k].integer) if k in rules else v for k, v in raw.items()}


class Checked:
    """A base for options dataclasses: :meth:`checked` checks every numeric field (:func:`check_options`)."""

    def checked(self) -> Any:
        """These options, every number checked (one :class:`GatoError` naming the flag)."""
        return check_options(self)


def numeric_fields(cls_or_obj: Any) -> list[tuple[str, Number]]:
    """(field name, rule) of every numeric option of an options dataclass."""
    return [(f.name, f.metadata["number"]) for f in dataclasses.fields(cls_or_obj) if "number" in f.metadata]


def check_options(obj: Any, where: str | None = None, error: type[GatoError] = GatoError) -> Any:
    """Check every numeric field of the options dataclass ``obj`` against its rule; returns ``obj``.
    ``where``: the options were read from a config section, so a refused value is named by its key
    there (``quickstart.collect.atari-pong.episodes``), not by its command-line flag."""
    for name, rule in numeric_fields(obj):
        if where is not None:
            rule = dataclasses.replace(rule, flag=f"{where}.{name}")
        rule.check(getattr(obj, name), error)
    return obj
