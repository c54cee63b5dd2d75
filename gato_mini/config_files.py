"""Reading a config file: one YAML mapping, safely (no alias bomb, no deep nesting), named by a path or
by a packaged recipe, with ``data: NAME`` standing for another config's data section.

What each section means is parsed beside its dataclass: ``model`` in :mod:`gato_mini.config`,
``data`` in :mod:`gato_mini.data.datacfg`, ``train`` and ``trainer`` in :mod:`gato_mini.train.config`,
the quickstart's own in :mod:`gato_mini.quickstart_plan`. Every one of them reads its file here.

**One rule for paths**: every relative path, in a config file or on the command line, is relative to
the current directory. A config is named by a path or by the name of a packaged recipe (``tiny``,
``mixture``, ...: :func:`recipes`), both for ``--config`` and for ``data: NAME`` inside a config; a
path wins over a recipe of the same name. A training config without ``data.root`` keeps its
tokenizer and shards in ``<train.out>/data`` (:func:`default_root`), so configs never share them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gato_mini.errors import ConfigError, did_you_mean


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
    raise ConfigError(f"config file not found: {name} (relative paths start from the current directory; "
                      f"named recipes: {', '.join(known)}){did_you_mean(stem, known)}")


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
