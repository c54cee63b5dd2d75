"""Sources: each kind of data, read and turned into `TokenSequence` units.

A :class:`Source` wraps one :class:`~gato_mini.data.datacfg.SourceConfig` and
knows four things: how it is sampled (``mode``), what it depends on
(``fingerprint``, used to skip work on unchanged inputs), its text (to train the
tokenizer) and its units (one sequence per episode, caption, document or
conversation) for the ``train`` or ``val`` split.

Sampling modes (see :mod:`gato_mini.data.windows`):

* ``episode``: windows start on timestep boundaries; prompts may be prepended.
* ``pack``: whole units (captions, conversations) packed into a window.
* ``stream``: documents joined end to end, windows at any offset (text).

Splits: caption-shapes has its own compositional held-out split; every other
source holds out the units whose key hashes below ``val_fraction`` (stable when
units are added or reordered), at least one unit when it has two or more.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from gato_mini.catalog import BUILTIN_TASKS
from gato_mini.config import GatoConfig
from gato_mini.data import captions, corpora, shapes
from gato_mini.data.datacfg import SourceConfig
from gato_mini.data.minari_io import dataset_fields, dataset_folder, iter_episodes, open_dataset
from gato_mini.data.sequence import (
    TokenSequence,
    caption_sequence,
    chat_sequence,
    document_sequence,
    episode_sequence,
)
from gato_mini.errors import FileFormatError
from gato_mini.tokenizers.text import TextTokenizer

MODES = {"episodes": "episode", "caption-shapes": "pack", "caption-folder": "pack",
         "caption-digits": "pack", "text-pydoc": "stream", "text": "stream",
         "chat-chatterbot": "pack", "chat-jsonl": "pack"}
TEXT_KINDS = {"text-pydoc", "text", "chat-chatterbot", "chat-jsonl"}

Unit = tuple[str, TokenSequence]


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


def _stat(path: Path) -> list[Any]:
    """What a file or a folder tree looks like, cheaply: names, sizes, modification times."""
    if path.is_file():
        st = path.stat()
        return [path.name, st.st_size, st.st_mtime_ns]
    if path.is_dir():
        return [[str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns]
                for p in sorted(path.rglob("*")) if p.is_file()]
    return ["missing", str(path)]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


@dataclass
class Source:
    """One configured source (see the module docstring)."""

    config: SourceConfig
    _items: list[tuple[str, Any]] | None = field(default=None, repr=False)
    _skips: Counter = field(default_factory=Counter, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def mode(self) -> str:
        return MODES[self.kind]

    @property
    def opt(self) -> dict[str, Any]:
        return self.config.options

    @property
    def uses_text(self) -> bool:
        """Whether its tokens depend on the text tokenizer (episodes: only with text fields)."""
        if self.kind != "episodes":
            return True
        fields, _ = dataset_fields(open_dataset(self.opt["dataset"]))
        return any(f.modality == "text" for f in fields.values())

    def check(self) -> None:
        """Fail early on a missing input file (before any work starts)."""
        if self.kind == "episodes":
            try:
                open_dataset(self.opt["dataset"])
            except FileFormatError as exc:
                if "not found" not in str(exc):
                    raise
                hint = (f"; record it with `gato-mini collect --task {self.name} --episodes N --out "
                        f"{Path(self.opt['dataset']).parent.parent}`" if self.name in BUILTIN_TASKS else "")
                raise FileFormatError(f"source '{self.name}': {exc}{hint}") from None
        elif self.kind == "caption-folder":
            next(iter(captions.read_caption_metadata(self.opt["path"])), None)
        elif self.kind in ("text", "chat-jsonl") and not Path(self.opt["path"]).exists():
            raise FileFormatError(f"source '{self.name}': {self.opt['path']} not found")

    def fingerprint(self) -> dict[str, Any]:
        """Everything the units depend on, except the tokenizer and the id layout."""
        fp: dict[str, Any] = {"kind": self.kind, "options": self.opt}
        if self.kind == "episodes":
            fp["input"] = _stat(dataset_folder(self.opt["dataset"]))
        elif self.kind in ("caption-folder", "text", "chat-jsonl"):
            fp["input"] = _stat(Path(self.opt["path"]))
        elif self.kind == "caption-shapes":
            fp["input"] = shapes.GENERATOR_VERSION
        elif self.kind == "caption-digits":
            fp["input"] = _version("scikit-learn")
        elif self.kind == "text-pydoc":
            fp["input"] = [sys.version, platform.python_implementation()]
        elif self.kind == "chat-chatterbot":
            fp["input"] = _version("chatterbot-corpus")
        return fp

    # --- reading ---------------------------------------------------------------
    def image_captions(self, split: str, val_fraction: float, skips: Counter
                       ) -> Iterator[tuple[str, Callable[[], np.ndarray], str]]:
        """(key, image loader, caption) of a caption source's split; a folder's keys end in ``#k``."""
        if self.kind == "caption-shapes":
            n = self.opt["count"] if split == "train" else self.opt["val_count"]
            for i in range(n):
                scene = shapes.make_scene(i, split, self.opt["seed"])
                yield f"{split}/{i}", (lambda s=scene: s.image), scene.caption
        elif self.kind == "caption-digits":
            digits = list(captions.digit_captions(int(self.opt["image_size"])))
            held = val_keys([d[0] for d in digits], val_fraction)
            for key, img, text in digits:
                if (key in held) == (split == "val"):
                    yield key, (lambda im=img: im), text
        else:
            size = tuple(self.opt["image_size"])
            entries = list(captions.read_caption_metadata(self.opt["path"], skips))
            # Split by image, so that no held-out image has a caption in training.
            held = val_keys([e.key.rsplit("#", 1)[0] for e in entries], val_fraction)
            for e in entries:
                if (e.key.rsplit("#", 1)[0] in held) == (split == "val"):
                    yield e.key, (lambda e=e: captions.load_image(e.image_path, size, e.where)), e.caption

    def _read(self, skips: Counter) -> list[tuple[str, Any]]:
        """Every (key, document or messages), read once per Source (both splits use it)."""
        if self._items is None:
            read_skips: Counter = Counter()
            if self.kind == "text-pydoc":
                items = corpora.pydoc_documents(self.opt["docstrings"], self.opt["max_modules"])
            elif self.kind == "text":
                items = corpora.read_text_documents(self.opt["path"], read_skips)
            elif self.kind == "chat-chatterbot":
                items = corpora.chatterbot_conversations(self.opt["language"])
            else:
                items = corpora.read_chat_jsonl(self.opt["path"], read_skips)
            self._items, self._skips = list(items), read_skips
        skips.update(self._skips)
        return self._items

    def _documents(self, skips: Counter) -> list[tuple[str, str]]:
        return self._read(skips)

    def _chats(self, skips: Counter) -> list[tuple[str, list[dict[str, str]]]]:
        return self._read(skips)

    def texts(self) -> Iterator[str]:
        """Text for training the tokenizer: documents, conversations, captions."""
        skips: Counter = Counter()
        if self.kind in ("text-pydoc", "text"):
            for _, doc in self._documents(skips):
                yield doc
        elif self.kind in ("chat-chatterbot", "chat-jsonl"):
            for _, msgs in self._chats(skips):
                yield from (m["content"] for m in msgs)
        elif self.kind == "caption-folder":
            for e in captions.read_caption_metadata(self.opt["path"], skips):
                yield e.caption
        elif self.kind == "caption-shapes":
            for i in range(min(self.opt["count"], 2000)):  # the wording is small; a sample covers it
                yield shapes.make_scene(i, "train", self.opt["seed"]).caption
        elif self.kind == "caption-digits":
            yield from (f"a handwritten digit {w}" for w in captions.DIGIT_WORDS)

    def units(self, split: str, cfg: GatoConfig, tokenizer: TextTokenizer | None, val_fraction: float,
              skips: Counter) -> Iterator[Unit]:
        """Tokenized units of one split ("train" or "val")."""
        if self.kind == "episodes":
            yield from self._episode_units(split, cfg, tokenizer, val_fraction)
            return
        assert tokenizer is not None
        if self.mode == "pack" and self.kind.startswith("caption"):
            for key, image, text in self.image_captions(split, val_fraction, skips):
                yield key, caption_sequence(image(), text, cfg, tokenizer)
            return
        items = self._documents(skips) if self.mode == "stream" else self._chats(skips)
        held = val_keys([k for k, _ in items], val_fraction)
        picked = [(k, v) for k, v in items if (k in held) == (split == "val")]
        build = document_sequence if self.mode == "stream" else chat_sequence
        for key, item in picked:
            yield key, build(item, cfg, tokenizer)

    def _episode_units(self, split: str, cfg: GatoConfig, tokenizer: TextTokenizer | None,
                       val_fraction: float) -> Iterator[Unit]:
        path = self.opt["dataset"]
        fields, action = dataset_fields(open_dataset(path))
        size = tuple(self.opt["image_size"]) if self.opt["image_size"] else None
        limit = self.opt["max_episodes"]
        ids = [int(i) for i in open_dataset(path).episode_indices][:limit]
        held = val_keys([f"episode-{i}" for i in ids], val_fraction)
        for k, ep in enumerate(iter_episodes(path)):
            if limit is not None and k >= limit:
                break
            if (f"episode-{ep.id}" in held) != (split == "val"):
                continue
            obs = {key: v[:-1] for key, v in ep.observations.items()}  # drop the final observation
            yield f"episode-{ep.id}", episode_sequence(obs, ep.actions, fields, action, cfg, tokenizer, size)

    def fields(self) -> dict[str, Any] | None:
        """Observation and action field specs (episodes only), for the model's registry entry."""
        if self.kind != "episodes":
            return None
        fields, action = dataset_fields(open_dataset(self.opt["dataset"]))
        return {"observation": {k: f.to_dict() for k, f in fields.items()}, "action": action.to_dict()}
