"""What a source is: anything trained on, read and turned into `TokenSequence` units; its config, its
held-out split and the registry of its kinds (the kinds themselves: :mod:`gato_mini.data.sources`).

A source kind is one class, a subclass of :class:`Source`, and holds all
that the rest of gato-mini needs to know of it:

* ``defaults``: the options a config may set, with their defaults (``required``: must be set;
  ``whole_numbers``: read as whole numbers, YAML strings included); :meth:`Source.complete` fills in
  what a built-in name implies (a task's recording);
* ``builtin``: source names that need no ``kind`` (``caption-shapes``, the tasks);
* ``mode``: how windows are sampled (:mod:`gato_mini.data.windows`):
  ``episode`` (timestep boundaries; prompts may be prepended), ``pack`` (whole
  units packed into a window: captions, conversations) or ``stream``
  (documents end to end, windows at any offset);
* ``group`` and ``group_title``: its loss group in training logs (``train/loss_<group>``) and the
  loss figure's panel;
* ``evaluation``: the object that evaluates it, reports it and names its Python entry (a
  :class:`~gato_mini.agent.eval_common.Evaluation` subclass, or its dotted path ``module:Class``,
  imported when first asked for: the evaluators sit above this layer);
* ``fingerprint`` (what its units depend on, to skip work on unchanged inputs),
  ``texts`` (to train the tokenizer), ``units`` (one sequence per episode,
  caption, document or conversation, per split) and ``expected_units``.

A new kind is one new class with ``@register_kind`` and its evaluation (docs/design.md, "A new kind").
Splits: caption-shapes has its own compositional held-out split; every other source holds out the
units whose key hashes below ``val_fraction`` (stable when units are added or reordered), at least one
unit when it has two or more.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gato_mini.config import GatoConfig
from gato_mini.data.sequence import TokenSequence
from gato_mini.errors import ConfigError, FileFormatError
from gato_mini.procs import available_memory
from gato_mini.tokenizers.text import TextTokenizer

Unit = tuple[str, TokenSequence]
ImageCaption = tuple[str, Callable[[], np.ndarray], str]
ImageReferences = tuple[str, Callable[[], np.ndarray], tuple[str, ...]]  # every reference of an image


@dataclass
class SourceConfig:
    """One source of the mixture: its name, kind, weight and options (defaults filled in)."""

    name: str
    kind: str
    weight: float
    options: dict[str, Any]


def in_val(key: str, val_fraction: float) -> bool:
    """Whether a unit with this key is held out (a stable hash of the key)."""
    h = int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big")
    return h / 2.0 ** 64 < val_fraction


def val_keys(keys: list[str], val_fraction: float) -> set[str]:
    """The held-out keys: those hashing below ``val_fraction``; at least one when there are two or more."""
    held = {k for k in keys if in_val(k, val_fraction)}
    if not held and val_fraction > 0 and len(set(keys)) >= 2:
        held = {min(keys, key=lambda k: hashlib.sha1(k.encode("utf-8")).digest())}
    return held


def split_items(items: list[tuple[str, Any]], split: str, val_fraction: float) -> list[tuple[str, Any]]:
    held = val_keys([k for k, _ in items], val_fraction)
    return [(k, v) for k, v in items if (k in held) == (split == "val")]


def split_units(items: list[tuple[str, Any]], build: Callable[..., TokenSequence], split: str,
                 cfg: GatoConfig, tokenizer: TextTokenizer | None, val_fraction: float,
                 skips: Counter | None = None) -> Iterator[Unit]:
    """The (key, sequence) units of one split of a text or chat source, built by ``build``. With
    ``skips`` (a packed source, whose windows cut a unit at ``block_size``), a unit longer than the
    context is counted, so the report says how much of the data is never trained on."""
    assert tokenizer is not None
    for key, item in split_items(items, split, val_fraction):
        seq = build(item, cfg, tokenizer)
        if skips is not None and len(seq) > cfg.block_size:
            skips[f"longer than block_size={cfg.block_size} (only its start is trained on)"] += 1
        yield key, seq


def image_size_option(name: str, size: Any) -> tuple[int, int]:
    """A source's ``image_size`` option (an int, or [height, width]) as (H, W); a config error names the
    source otherwise."""
    pair = [size, size] if isinstance(size, int) else size
    if not (isinstance(pair, list | tuple) and len(pair) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 4096 for v in pair)):
        raise ConfigError(f"source '{name}': image_size must be a positive int or [height, width], "
                          f"got {size!r}")
    return int(pair[0]), int(pair[1])


def file_stat(path: Path) -> list[Any]:
    """What a file or a folder tree looks like, cheaply: names, sizes, modification times."""
    if path.is_file():
        st = path.stat()
        return [path.name, st.st_size, st.st_mtime_ns]
    if path.is_dir():
        return [[str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns]
                for p in sorted(path.rglob("*")) if p.is_file()]
    return ["missing", str(path)]


def package_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


#: Every source kind by name, in the order a config error lists them.
KINDS: dict[str, type[Source]] = {}


def register_kind(cls: type[Source]) -> type[Source]:
    """Register a source kind (a class decorator): ``KINDS[cls.name_of_kind]``."""
    KINDS[cls.name_of_kind] = cls
    return cls


class Source:
    """One configured source (see the module docstring); subclasses are the kinds."""

    name_of_kind: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}  # every option a config may set, with its default
    required: ClassVar[tuple[str, ...]] = ()
    builtin: ClassVar[tuple[str, ...]] = ()
    whole_numbers: ClassVar[tuple[str, ...]] = ()
    mode: ClassVar[str] = "pack"
    group: ClassVar[str] = "text"
    group_title: ClassVar[str] = "text and chat"
    evaluation: ClassVar[Any] = None  # an Evaluation subclass or "module:Class" (see the module docstring)
    uses_text: bool = True  # whether its tokens depend on the text tokenizer
    trains_tokenizer: ClassVar[bool] = True  # its text goes into the text tokenizer (episodes' does not)
    reads_whole: ClassVar[bool] = False  # its input file(s) are read into memory whole

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self._items: list[tuple[str, Any]] | None = None
        self._skips: Counter = Counter()

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def options(self) -> dict[str, Any]:
        """This source's options: the config's, the kind's defaults filling in the rest."""
        return self.config.options

    @classmethod
    def complete(cls, name: str, options: dict[str, Any], episodes: Path) -> dict[str, Any]:
        """The options of a source named ``name`` with what its name implies filled in (``episodes``:
        where the tasks' recordings are); a config error for what is still missing."""
        return options

    def check(self, cfg: GatoConfig | None = None) -> None:
        """Fail early on a missing input file, and (given the model config) on inputs too large for
        it or for this machine, before any work starts."""
        path = self.options.get("path")
        if path is not None and not Path(path).exists():
            raise FileFormatError(f"source '{self.name}': {path} not found")
        if path is not None and self.reads_whole:
            p = Path(path)
            files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
            size = sum(f.stat().st_size for f in files)
            need, have = size * TEXT_BYTES_PER_BYTE, available_memory()
            if need > have:
                raise FileFormatError(f"source '{self.name}': {path} is {size / 2**30:.1f} GiB of text; "
                                      f"tokenizing reads it whole, about {need / 2**30:.1f} GiB, more than "
                                      f"the {have / 2**30:.1f} GiB this machine has available; split it into "
                                      "several sources")

    def _input(self) -> Any:
        """What the units depend on outside the options: files, a generator or a package version."""
        return file_stat(Path(self.options["path"]))

    def fingerprint(self) -> dict[str, Any]:
        """Everything the units depend on, except the tokenizer and the id layout."""
        return {"kind": self.kind, "options": self.options, "input": self._input()}

    def texts(self) -> Iterator[str]:
        """Text for training the tokenizer."""
        raise NotImplementedError

    def units(self, split: str, cfg: GatoConfig, tokenizer: TextTokenizer | None, val_fraction: float,
              skips: Counter) -> Iterator[Unit]:
        """Tokenized units of one split ("train" or "val")."""
        raise NotImplementedError

    def expected_units(self) -> int | None:
        """How many units both splits hold together, where that is known before reading (a bar's total)."""
        return None

    def field_dicts(self, cfg: GatoConfig, val_fraction: float) -> dict[str, Any] | None:
        """Observation and action field specs as JSON dicts (episodes only), for the model's
        ``sources.json``: as its shards were tokenized (layouts, and the statistics of vector fields)."""
        return None

    def _read(self, read: Callable[[Counter], Any], skips: Counter) -> list[tuple[str, Any]]:
        """Every (key, item) of a text or chat source, read once per Source (both splits use it)."""
        if self._items is None:
            read_skips: Counter = Counter()
            self._items, self._skips = list(read(read_skips)), read_skips
        skips.update(self._skips)
        return self._items


#: Memory a text or chat file takes per byte on disk while it is tokenized (the text, its documents'
#: strings and their token arrays).
TEXT_BYTES_PER_BYTE = 8
