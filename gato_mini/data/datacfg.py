"""The data config: which sources, with which weights, tokenized how.

A YAML file holds either the data section alone or a training config with
``model:`` and ``data:`` sections (``model`` is a size name or a mapping with
``name`` and overrides; it fixes the id layout the shards are written in)::

    model: tiny
    data:
      root: runs/data              # tokenizer.json and shards/ go here
      episodes: runs/episodes      # default home of logged episodes
      sources:
        atari-pong: {weight: 1.0}  # a task: runs/episodes/atari-pong/expert-v0
        caption-shapes: {weight: 1.0, count: 20000}
        text-pydoc: {weight: 0.5}
        chat-chatterbot: {weight: 0.5}
        my-photos: {kind: caption-folder, path: data/photos, weight: 0.5}

A source is a built-in name (a task from ``gato-mini tasks``, or a source kind's
``builtin`` name: :func:`~gato_mini.data.sources.builtin_names`) or any name
with an explicit ``kind``. Unknown keys, unknown sources and bad weights are
:class:`ConfigError`.

The file is read by :mod:`gato_mini.config_files` (its rule for paths and
recipes is there); the ``model`` section by :func:`gato_mini.config.model_config`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gato_mini.catalog import BUILTIN_TASKS, task_dataset
from gato_mini.config import GatoConfig, model_config
from gato_mini.config_files import default_root, read_config_file
from gato_mini.data.sources import KINDS, SourceConfig, builtin_names
from gato_mini.errors import ConfigError, did_you_mean

DATA_KEYS = {"root", "episodes", "tokenizer", "val_fraction", "prompt_probability", "prompt_fraction",
              "seed", "workers", "val_windows", "sources"}


@dataclass
class DataConfig:
    """Where data lives and how the mixture is sampled (see the module docstring)."""

    sources: list[SourceConfig]
    root: Path = Path("runs/data")
    episodes: Path = Path("runs/episodes")
    tokenizer: Path | None = None  # reuse this tokenizer.json instead of training one
    val_fraction: float = 0.05  # held-out share of each source (caption-shapes: its own split)
    prompt_probability: float = 0.25  # docs/design.md: 25% of control windows get a prompt
    prompt_fraction: float = 0.25  # a prompt takes at most this share of block_size
    seed: int = 0
    # processes for `prepare`: on 2 cores one is as fast as two (benchmarks/data.py)
    workers: int = field(default_factory=lambda: max(1, min(8, (os.cpu_count() or 1) // 2)))
    val_windows: int = 16  # validation windows per source
    weights: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.weights = {s.name: s.weight for s in self.sources}

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise ConfigError(f"no source named {name!r} in the data config")


def _source(name: str, raw: Any, episodes: Path) -> SourceConfig:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"source '{name}': expected a mapping of options, got {raw!r}")
    raw = dict(raw)
    weight = raw.pop("weight", 1.0)
    try:
        weight = float(weight)
    except (TypeError, ValueError):
        raise ConfigError(f"source '{name}': weight must be a number, got {weight!r}") from None
    if not math.isfinite(weight) or weight < 0:
        raise ConfigError(f"source '{name}': weight must be a finite number >= 0, got {weight}")
    kind = raw.pop("kind", None)
    if kind is None:
        kind = builtin_names().get(name)
        if kind is None:
            known = list(builtin_names())
            hint = did_you_mean(name, known) or f"; built-in sources: {', '.join(known)}"
            raise ConfigError(f"unknown source '{name}'{hint} (give it a 'kind' if it is your own)")
    if kind not in KINDS:
        raise ConfigError(f"source '{name}': unknown kind '{kind}'{did_you_mean(kind, KINDS)}; known: "
                          f"{', '.join(KINDS)}")
    allowed = KINDS[kind].defaults
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ConfigError(f"source '{name}': unknown option(s) {', '.join(unknown)} for kind '{kind}'; "
                          f"allowed: weight, kind, {', '.join(allowed)}")
    opts = {**allowed, **raw}
    if kind == "episodes" and opts["dataset"] is None:
        if name not in BUILTIN_TASKS:
            raise ConfigError(f"source '{name}': kind 'episodes' needs 'dataset' (a Minari dataset folder)")
        opts["dataset"] = str(task_dataset(episodes, name))
    for key in KINDS[kind].required:
        if not opts[key]:
            raise ConfigError(f"source '{name}': kind '{kind}' needs '{key}'")
    for key in ("count", "val_count", "max_episodes", "max_modules"):
        v = opts.get(key)
        if v is not None and (not isinstance(v, int) or v < 0):
            raise ConfigError(f"source '{name}': '{key}' must be a whole number >= 0, got {v!r}")
    return SourceConfig(name, kind, weight, opts)


def parse_data_config(raw: dict[str, Any]) -> DataConfig:
    """A :class:`DataConfig` from the ``data`` mapping of a config file."""
    if not isinstance(raw, dict):
        raise ConfigError("the data config must be a mapping")
    unknown = sorted(set(raw) - DATA_KEYS)
    if unknown:
        hint = did_you_mean(unknown[0], sorted(DATA_KEYS))
        raise ConfigError(f"unknown data config key '{unknown[0]}'{hint}")
    sources_raw = raw.get("sources")
    if not isinstance(sources_raw, dict) or not sources_raw:
        raise ConfigError("the data config needs 'sources': a mapping of source name -> options")
    episodes = Path(raw.get("episodes", "runs/episodes"))
    sources = [_source(str(name), opts, episodes) for name, opts in sources_raw.items()]
    if sum(s.weight for s in sources) <= 0:
        raise ConfigError("source weights are all zero; give at least one source a positive weight")
    kw: dict[str, Any] = {"sources": sources, "episodes": episodes}
    for key in ("root", "tokenizer"):
        if raw.get(key) is not None:
            kw[key] = Path(raw[key])
    for key, lo, hi in (("val_fraction", 0.0, 0.5), ("prompt_probability", 0.0, 1.0),
                        ("prompt_fraction", 0.0, 0.9)):
        if key in raw:
            v = raw[key]
            if not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise ConfigError(f"data config '{key}' must be a number in [{lo}, {hi}], got {v!r}")
            kw[key] = float(v)
    for key, lo in (("seed", 0), ("workers", 1), ("val_windows", 0)):
        if key in raw:
            v = raw[key]
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ConfigError(f"data config '{key}' must be a whole number >= {lo}, got {v!r}")
            kw[key] = v
    return DataConfig(**kw)


def data_config_from(raw: dict[str, Any]) -> tuple[DataConfig, GatoConfig]:
    """(data config, model config) from a data-only or a full training config mapping."""
    data = raw["data"] if "data" in raw else raw
    parsed = parse_data_config(data)
    if not isinstance(data, dict) or data.get("root") is None:
        parsed.root = default_root(raw)
    return parsed, model_config(raw.get("model") if "data" in raw else None)


def load_data_config(path: str | Path) -> tuple[DataConfig, GatoConfig]:
    """(data config, model config) from a data-only or a full training YAML file (or recipe name)."""
    raw = read_config_file(path)
    try:
        return data_config_from(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
