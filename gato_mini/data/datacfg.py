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

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gato_mini.config import GatoConfig, model_config
from gato_mini.config_files import default_root, read_config_file
from gato_mini.data.sources import KINDS, SourceConfig, builtin_names
from gato_mini.errors import ConfigError, did_you_mean
from gato_mini.options import (
    check_options,
    checked,
    config_number,
    count,
    number,
    numeric_fields,
    section_numbers,
)
from gato_mini.options import seed as seed_rule

DATA_KEYS = {"root", "episodes", "tokenizer", "val_fraction", "prompt_probability", "prompt_fraction",
              "seed", "workers", "val_windows", "sources"}


@dataclass
class DataConfig:
    """Where data lives and how the mixture is sampled (see the module docstring)."""

    sources: list[SourceConfig]
    root: Path = Path("runs/data")
    episodes: Path = Path("runs/episodes")
    tokenizer: Path | None = None  # reuse this tokenizer.json instead of training one
    # held-out share of each source (caption-shapes: its own split)
    val_fraction: float = field(default=0.05, metadata=number("'data.val_fraction'", 0, hi=0.5,
                                                              optional=False))
    # docs/design.md: 25% of control windows get a prompt
    prompt_probability: float = field(default=0.25, metadata=number("'data.prompt_probability'", 0, hi=1,
                                                                    optional=False))
    # a prompt takes at most this share of block_size
    prompt_fraction: float = field(default=0.25, metadata=number("'data.prompt_fraction'", 0, hi=0.9,
                                                                 optional=False))
    seed: int = field(default=0, metadata=seed_rule("'data.seed'"))
    # processes for `prepare`: on 2 cores one is as fast as two (benchmarks/data.py)
    workers: int = field(default_factory=lambda: max(1, min(8, (os.cpu_count() or 1) // 2)),
                         metadata=count("'data.workers'", hi=256))
    val_windows: int = field(default=16, metadata=count("'data.val_windows'", 0))  # per source
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
    weight = float(checked(config_number(raw.pop("weight", 1.0)),
                           number(f"source '{name}': weight", 0, optional=False), ConfigError))
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
    opts = KINDS[kind].complete(name, {**allowed, **raw}, episodes)
    for key in KINDS[kind].required:
        if not opts[key]:
            raise ConfigError(f"source '{name}': kind '{kind}' needs '{key}'")
    for key in KINDS[kind].whole_numbers:
        if opts[key] is not None:
            opts[key] = checked(config_number(opts[key], whole=True), count(f"source '{name}': '{key}'", 0),
                                ConfigError)
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
    numbers = {k: raw[k] for k, _ in numeric_fields(DataConfig) if k in raw}
    return check_options(DataConfig(**kw, **section_numbers(DataConfig, numbers)), error=ConfigError)


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
