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

**One rule for paths**: every relative path, in a config file or on the command
line, is relative to the current directory. A config is named by a path or by
the name of a packaged recipe (``tiny``, ``mixture``, ...: :func:`recipes`),
both for ``--config`` and for ``data: NAME`` inside a config; a path wins over a
recipe of the same name. A training config without ``data.root`` keeps its
tokenizer and shards in ``<train.out>/data``, so configs never share them.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gato_mini.catalog import BUILTIN_TASKS, task_dataset
from gato_mini.config import GatoConfig
from gato_mini.data.sources import KINDS, SourceConfig, builtin_names
from gato_mini.errors import ConfigError

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
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; built-in sources: {', '.join(known)}"
            raise ConfigError(f"unknown source '{name}' (give it a 'kind' if it is your own){hint}")
    if kind not in KINDS:
        close = difflib.get_close_matches(str(kind), list(KINDS), n=1)
        hint = f"did you mean '{close[0]}'? known" if close else "known"
        raise ConfigError(f"source '{name}': unknown kind '{kind}'; {hint}: {', '.join(KINDS)}")
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
        close = difflib.get_close_matches(unknown[0], sorted(DATA_KEYS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
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


def model_config(raw: Any) -> GatoConfig:
    """The ``model`` section: a size name, or a mapping with ``name`` plus overrides."""
    if raw is None:
        return GatoConfig.from_name("tiny")
    if isinstance(raw, str):
        return GatoConfig.from_name(raw)
    if isinstance(raw, dict):
        raw = dict(raw)
        name = raw.pop("name", "tiny")
        return GatoConfig.from_name(name, **raw)
    raise ConfigError(f"'model' must be a size name or a mapping, got {raw!r}")


def _recipe_folder() -> Path:
    from importlib import resources

    return Path(str(resources.files("gato_mini.configs")))


def recipes() -> dict[str, str]:
    """The packaged recipes (``configs/*.yaml``): name -> the first line of its header comment."""
    out = {}
    for f in sorted(_recipe_folder().glob("*.yaml")):
        first = f.read_text(encoding="utf-8").splitlines()[:1]
        out[f.stem] = first[0].lstrip("# ").strip() if first and first[0].startswith("#") else ""
    return out


def resolve_config(name: str | Path) -> Path:
    """The config file ``name`` stands for: a path from the current directory, else a packaged recipe
    (``tiny`` or ``tiny.yaml``). Neither is a :class:`ConfigError` naming the recipes."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    known = recipes()
    if len(path.parts) == 1 and stem in known:
        return _recipe_folder() / f"{stem}.yaml"
    close = difflib.get_close_matches(stem, list(known), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"config file not found: {name} (relative paths start from the current directory; "
                      f"named recipes: {', '.join(known)}){hint}")


#: The most values a config may hold once its aliases are expanded: a config is a few hundred; a
#: "billion laughs" document (each alias ten of the one before) expands to billions.
MAX_YAML_VALUES = 100_000


def _expanded_values(node: Any, seen: dict[int, int]) -> int:
    """How many values ``node`` (a composed YAML node) holds once every alias in it is expanded, counted
    over the node graph (each node once, its count reused where an alias repeats it)."""
    if id(node) in seen:
        return seen[id(node)]
    seen[id(node)] = 1  # a recursive alias counts once where it loops back
    if isinstance(node, yaml.MappingNode):
        n = 1 + sum(_expanded_values(k, seen) + _expanded_values(v, seen) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        n = 1 + sum(_expanded_values(v, seen) for v in node.value)
    else:
        n = 1
    seen[id(node)] = n
    return n


def safe_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` of one document, refusing one whose aliases expand past
    :data:`MAX_YAML_VALUES` values (a :class:`ConfigError` naming ``where``) before anything is built
    from it: the walks over a config (overrides, fingerprints, the saved copy) would expand them all."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_values(node, {}) > MAX_YAML_VALUES:
            raise ConfigError(f"{where}: its aliases expand to more than {MAX_YAML_VALUES:,} values; a "
                              "config is not that large (a YAML alias bomb?)")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from a file; a missing or malformed file is a :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = safe_yaml(path.read_text(encoding="utf-8"), str(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config file's mapping (``path``: a file or a recipe name, :func:`resolve_config`), with
    ``data: NAME`` replaced by the data section that config names, found by the same rule."""
    path = resolve_config(path)
    raw = read_yaml(path)
    if isinstance(raw.get("data"), str):  # "data: mixture": another config's data section
        name = raw["data"]
        beside = path.parent / name
        if not Path(name).expanduser().is_file() and beside.is_file() and \
                beside.resolve().parent != _recipe_folder().resolve():
            raise ConfigError(f"{path}: 'data: {name}' is read from the current directory, like every path "
                              f"in a config; the file beside the config is '{beside}': write that")
        try:
            inner = read_yaml(resolve_config(name))
        except ConfigError as exc:
            raise ConfigError(f"{path}: data: {exc}") from None
        raw["data"] = inner.get("data", inner)
    return raw


RUN_OUT = "runs/gato"  # a training config's train.out when it sets none


def default_root(raw: dict[str, Any]) -> Path:
    """Where a config's tokenizer and shards go when its data section sets no ``root``: a training
    config's ``<train.out>/data`` (so configs never share them), else ``runs/data``."""
    if "data" not in raw:  # a data config alone
        return Path("runs/data")
    return Path((raw.get("train") or {}).get("out") or RUN_OUT) / "data"


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
