"""The source kinds: logged episodes, caption sets, documents and chats, each one class registered with
``@register_kind``, and the functions that build a source from a config (:func:`make_source`,
:func:`source_of`, :func:`builtin_names`). What a source is, its splits and the registry:
:mod:`gato_mini.data.source`."""

from __future__ import annotations

import json
import math
import platform
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gato_mini.catalog import BUILTIN_TASKS, task_dataset
from gato_mini.config import GatoConfig
from gato_mini.data import captions, corpora, shapes
from gato_mini.data import vqa as _vqa  # noqa: F401 (registers the visual-question kinds)
from gato_mini.data.minari_io import dataset_fields, dataset_folder, iter_episodes, open_dataset
from gato_mini.data.sequence import (
    caption_sequence,
    chat_sequence,
    document_sequence,
    episode_sequence,
)
from gato_mini.data.source import (
    KINDS,
    ImageCaption,
    ImageReferences,
    Source,
    SourceConfig,
    Unit,
    file_stat,
    image_size_option,
    package_version,
    register_kind,
    split_units,
    val_keys,
)
from gato_mini.errors import ConfigError, FileFormatError
from gato_mini.fields import FieldSpec, becomes_vector, same_spaces, with_statistics
from gato_mini.procs import available_memory
from gato_mini.tokenizers import image
from gato_mini.tokenizers.text import TextTokenizer


# --- control ---------------------------------------------------------------------
def _space_bytes(space: Any) -> int:
    """Bytes one value of a gymnasium space takes as an array (a Dict: its parts; Text: its length)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return sum(_space_bytes(s) for s in space.spaces.values())
    if isinstance(space, spaces.Text):
        return 4 * space.max_length
    shape = getattr(space, "shape", None) or ()
    return math.prod(shape) * np.dtype(space.dtype or np.int64).itemsize


@register_kind
class Episodes(Source):
    """Logged episodes of a Minari dataset (a task's recording, or the user's own)."""

    name_of_kind = "episodes"
    # stats_dataset: the dataset whose training episodes give a vector field's mean and standard deviation
    # (default: this source's own); a DAgger round's source takes its task's, so that one env's
    # observations are read alike in every source that trains it
    defaults = {"dataset": None, "image_size": None, "max_episodes": None, "stats_dataset": None}
    whole_numbers = ("max_episodes",)
    builtin = BUILTIN_TASKS
    mode, group, group_title = "episode", "actions", "actions (control)"
    evaluation = "gato_mini.agent.eval_control:ControlEvaluation"
    trains_tokenizer = False

    @classmethod
    def complete(cls, name: str, options: dict[str, Any], episodes: Path) -> dict[str, Any]:
        """A built-in task's dataset is its recording under ``episodes``."""
        if options["dataset"] is None:
            if name not in BUILTIN_TASKS:
                raise ConfigError(f"source '{name}': kind 'episodes' needs 'dataset' (a Minari dataset "
                                  "folder)")
            options["dataset"] = str(task_dataset(episodes, name))
        return options

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        self._dataset: Any = None
        self._tokenized: tuple[tuple[Any, ...], dict[str, FieldSpec]] | None = None
        # the fields a trained model read this source with (its sources.json): tokenize with these, its
        # statistics included, rather than computing them again from the dataset here
        self.trained_fields: tuple[dict[str, FieldSpec], FieldSpec] | None = None

    def dataset(self) -> Any:
        """The Minari dataset, opened once per Source."""
        if self._dataset is None:
            self._dataset = open_dataset(self.options["dataset"])
        return self._dataset

    def specs(self) -> tuple[dict[str, FieldSpec], FieldSpec]:
        return dataset_fields(self.dataset())

    def token_specs(self, cfg: GatoConfig, val_fraction: float) -> tuple[dict[str, FieldSpec], FieldSpec]:
        """The fields as tokenized for ``cfg``: with ``obs_layout: vector``, every continuous observation
        field of at most ``vector_width`` values is one vector token, normalized by the mean and standard
        deviation of its values over the training split's steps (computed once per Source)."""
        fields, action = self.specs()
        if self.trained_fields is not None:
            if not same_spaces(self.trained_fields, (fields, action)):
                raise FileFormatError(f"source '{self.name}': the dataset {self.options['dataset']} is not "
                                      "of the spaces the model was trained on")
            return self.trained_fields
        wanted = [k for k, f in fields.items() if becomes_vector(f, cfg)]
        if not wanted:
            return fields, action
        key = (cfg.vector_width, val_fraction)
        if self._tokenized is None or self._tokenized[0] != key:
            stats = self._statistics(wanted, val_fraction)
            self._tokenized = (key, {k: with_statistics(f, *stats[k]) if k in stats else f
                                     for k, f in fields.items()})
        return self._tokenized[1], action

    def _statistics(self, keys: list[str], val_fraction: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per value of each field in ``keys``: (mean, std) over the observations the training split
        tokenizes (an episode's final observation is never an input); a constant value gets std 1."""
        path = self.options["stats_dataset"] or self.options["dataset"]
        dataset = self.dataset() if path == self.options["dataset"] else open_dataset(path)
        their_fields = dataset_fields(dataset)[0]
        fields = self.specs()[0]
        for k in keys:
            if k not in their_fields or their_fields[k].space_only() != fields[k].space_only():
                raise FileFormatError(f"source '{self.name}': stats_dataset {path} has no field '{k}' like "
                                      "this source's")
        limit = self.options["max_episodes"] if dataset is self.dataset() else None
        ids = [int(i) for i in dataset.episode_indices][:limit]
        held = val_keys([f"episode-{i}" for i in ids], val_fraction)
        sums = {k: np.zeros((3, fields[k].size)) for k in keys}  # count, sum, sum of squares
        for n, ep in enumerate(iter_episodes(path, dataset)):
            if limit is not None and n >= limit:
                break
            if f"episode-{ep.id}" in held:
                continue
            for k in keys:
                x = np.asarray(ep.observations[k][:-1], np.float64).reshape(-1, fields[k].size)
                sums[k] += [np.full(x.shape[1], len(x)), x.sum(0), (x * x).sum(0)]
        out = {}
        for k, (count, total, squares) in sums.items():
            if count[0] == 0:
                raise FileFormatError(f"source '{self.name}': no training episode to compute the statistics "
                                      f"of '{k}' from")
            mean = total / count
            std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
            if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
                raise FileFormatError(f"source '{self.name}': observation '{k}' holds values too large or "
                                      "not finite; its statistics are not finite")
            out[k] = (mean, np.where(std > 1e-6 * np.maximum(np.abs(mean), 1.0), std, 1.0))
        return out

    @property
    def uses_text(self) -> bool:  # only with text observations
        return any(f.modality == "text" for f in self.specs()[0].values())

    def check(self, cfg: GatoConfig | None = None) -> None:
        try:
            self.dataset()
        except FileFormatError as exc:
            if "not found" not in str(exc):
                raise
            hint = (f"; record it with `gato-mini collect --task {self.name} --episodes N --out "
                    f"{Path(self.options['dataset']).parent.parent}`" if self.name in BUILTIN_TASKS else "")
            raise FileFormatError(f"source '{self.name}': {exc}{hint}") from None
        if cfg is not None:
            self._check_sizes(cfg)

    def _check_sizes(self, cfg: GatoConfig) -> None:
        """A dataset whose spaces or lengths cannot be tokenized here, refused from its metadata alone:
        frames over :data:`~gato_mini.tokenizers.image.MAX_IMAGE_PIXELS`, an observation over
        ``max_local_positions`` tokens or a timestep over ``block_size``, an episode whose arrays and
        tokens would not fit in this machine's available memory."""
        fields, action = self.specs()
        size = tuple(self.options["image_size"]) if self.options["image_size"] else None
        where = f"source '{self.name}' ({self.options['dataset']})"
        obs_tokens = 0
        for key, f in fields.items():
            if f.modality == "image":
                h, w = f.shape[:2]
                if h * w > image.MAX_IMAGE_PIXELS:
                    raise FileFormatError(f"{where}: observation '{key}' frames are {h}x{w}, more than the "
                                          f"{image.MAX_IMAGE_PIXELS:,} pixels gato-mini decodes")
                rows, cols = image.grid_shape(f.shape, cfg.patch_size, size)
                obs_tokens += rows * cols
            elif becomes_vector(f, cfg):
                obs_tokens += 1
            elif f.modality != "text":
                obs_tokens += math.prod(f.shape)
        step = obs_tokens + 1 + math.prod(action.shape)
        if obs_tokens > cfg.max_local_positions:
            raise FileFormatError(f"{where}: one observation is {obs_tokens:,} tokens, more than "
                                  f"max_local_positions={cfg.max_local_positions}; use smaller images "
                                  "(the source's image_size) or fewer values")
        if step > cfg.block_size:
            raise FileFormatError(f"{where}: one timestep is {step:,} tokens, more than block_size="
                                  f"{cfg.block_size}; use smaller images (image_size) or a larger block_size")
        dataset = self.dataset()
        ids = [int(i) for i in dataset.episode_indices][:self.options["max_episodes"]]
        lengths = [int(m.get("total_steps", 0)) for m in dataset.storage.get_episode_metadata(ids)]
        if not lengths:
            return
        longest = max(lengths)
        per_step = _space_bytes(dataset.observation_space) * 2 + _space_bytes(dataset.action_space) + step * 8
        need, have = longest * per_step, available_memory()
        if need > have:
            k = ids[lengths.index(longest)]
            raise FileFormatError(f"{where}: episode {k} is {longest:,} steps, about {need / 2**30:.1f} GiB "
                                  f"to read and tokenize, more than the {have / 2**30:.1f} GiB this machine "
                                  "has available; split it into shorter episodes")

    def _input(self) -> Any:
        mine = file_stat(dataset_folder(self.options["dataset"]))
        if self.options["stats_dataset"] is None:
            return mine
        return [mine, file_stat(dataset_folder(self.options["stats_dataset"]))]  # its statistics too

    def texts(self) -> Iterator[str]:
        return iter(())

    def expected_units(self) -> int | None:
        n, limit = self.dataset().total_episodes, self.options["max_episodes"]
        return n if limit is None else min(n, limit)

    def units(self, split: str, cfg: GatoConfig, tokenizer: TextTokenizer | None, val_fraction: float,
              skips: Counter) -> Iterator[Unit]:
        fields, action = self.token_specs(cfg, val_fraction)
        size = tuple(self.options["image_size"]) if self.options["image_size"] else None
        limit = self.options["max_episodes"]
        ids = [int(i) for i in self.dataset().episode_indices][:limit]
        held = val_keys([f"episode-{i}" for i in ids], val_fraction)
        for k, ep in enumerate(iter_episodes(self.options["dataset"], self.dataset())):
            if limit is not None and k >= limit:
                break
            if (f"episode-{ep.id}" in held) != (split == "val"):
                continue
            obs = {key: v[:-1] for key, v in ep.observations.items()}  # drop the final observation
            yield f"episode-{ep.id}", episode_sequence(obs, ep.actions, fields, action, cfg, tokenizer, size)

    def field_dicts(self, cfg: GatoConfig, val_fraction: float) -> dict[str, Any] | None:
        fields, action = self.token_specs(cfg, val_fraction)
        return {"observation": {k: f.to_dict() for k, f in fields.items()}, "action": action.to_dict()}


# --- captions ----------------------------------------------------------------------
class Captions(Source):
    """(image, caption) pairs; a unit is ``[patches] <|caption|> text <|eos|>``."""

    group = group_title = "captions"
    evaluation = "gato_mini.agent.eval_captions:CaptionEvaluation"

    def image_captions(self, split: str, val_fraction: float, skips: Counter) -> Iterator[ImageCaption]:
        """(key, image loader, caption) of one split; a folder's keys end in ``#k``."""
        raise NotImplementedError

    def images(self, split: str, val_fraction: float) -> list[ImageReferences]:
        """(key, image loader, every reference caption) of each image of one split: an image captioned
        several times (a folder's ``#k`` keys) is one image with several references."""
        grouped: dict[str, tuple[Callable[[], np.ndarray], list[str]]] = {}
        for key, load, text in self.image_captions(split, val_fraction, Counter()):
            grouped.setdefault(key.rsplit("#", 1)[0], (load, []))[1].append(text)
        return [(k, load, tuple(refs)) for k, (load, refs) in grouped.items()]

    def image_size(self) -> tuple[int, int]:
        """The (H, W) its images are fitted to (``image_size``: an int, or [height, width])."""
        return image_size_option(self.name, self.options["image_size"])

    def check(self, cfg: GatoConfig | None = None) -> None:
        self.image_size()  # a bad size fails before anything is written
        super().check(cfg)

    def score_attributes(self, captions: list[str], references: list[list[str]]) -> dict[str, Any] | None:
        """Each part of the captions rated against the references, where the kind's captions have a
        grammar to read them by (caption-shapes: size, colour, shape, count, relation); None otherwise,
        and the captions are scored by exact match and BLEU alone."""
        return None

    def units(self, split: str, cfg: GatoConfig, tokenizer: TextTokenizer | None, val_fraction: float,
              skips: Counter) -> Iterator[Unit]:
        assert tokenizer is not None
        for key, picture, text in self.image_captions(split, val_fraction, skips):
            yield key, caption_sequence(picture(), text, cfg, tokenizer)


@register_kind
class Shapes(Captions):
    """Generated scenes of coloured shapes, held out by composition (:mod:`gato_mini.data.shapes`)."""

    name_of_kind = "caption-shapes"
    # image_size: the scenes (drawn at 64x64) are resized to it, as a caption is asked of one at eval
    defaults = {"count": 20000, "val_count": 500, "seed": 0, "image_size": shapes.SCENE_SIZE}
    whole_numbers = ("count", "val_count")
    builtin = ("caption-shapes",)

    def _input(self) -> Any:
        return shapes.GENERATOR_VERSION

    def expected_units(self) -> int | None:
        return self.options["count"] + self.options["val_count"]

    def image_captions(self, split: str, val_fraction: float, skips: Counter) -> Iterator[ImageCaption]:
        n = self.options["count"] if split == "train" else self.options["val_count"]
        size = self.image_size()
        for i in range(n):
            scene = shapes.make_scene(i, split, self.options["seed"])
            yield f"{split}/{i}", (lambda s=scene: image.resize(s.image, size)), scene.caption

    def images(self, split: str, val_fraction: float) -> list[ImageReferences]:
        """A scene has several true captions (each true relation, either object first); training reads
        one of them, evaluation all."""
        n, size = self.options["count"] if split == "train" else self.options["val_count"], self.image_size()
        scenes = [shapes.make_scene(i, split, self.options["seed"]) for i in range(n)]
        return [(f"{split}/{i}", lambda s=s: image.resize(s.image, size), tuple(s.references))
                for i, s in enumerate(scenes)]

    def score_attributes(self, captions: list[str], references: list[list[str]]) -> dict[str, Any] | None:
        return shapes.score_attributes(captions, references)

    def texts(self) -> Iterator[str]:
        for i in range(min(self.options["count"], 2000)):  # the wording is small; a sample covers it
            yield shapes.make_scene(i, "train", self.options["seed"]).caption


@register_kind
class Digits(Captions):
    """scikit-learn's handwritten digits, captioned by name."""

    name_of_kind = "caption-digits"
    defaults = {"image_size": 32}
    builtin = ("caption-digits",)

    def _input(self) -> Any:
        return package_version("scikit-learn")

    def expected_units(self) -> int | None:
        return captions.digit_count()

    def image_captions(self, split: str, val_fraction: float, skips: Counter) -> Iterator[ImageCaption]:
        digits = list(captions.digit_captions(int(self.options["image_size"])))
        held = val_keys([d[0] for d in digits], val_fraction)
        for key, img, text in digits:
            if (key in held) == (split == "val"):
                yield key, (lambda im=img: im), text

    def texts(self) -> Iterator[str]:
        yield from (f"a handwritten digit {w}" for w in captions.DIGIT_WORDS)


@register_kind
class CaptionFolder(Captions):
    """A folder of images with ``metadata.jsonl`` (``file_name``, ``text``), the image-folder layout."""

    name_of_kind = "caption-folder"
    defaults = {"path": None, "image_size": [64, 64]}
    required = ("path",)

    def check(self, cfg: GatoConfig | None = None) -> None:
        super().check(cfg)
        next(iter(captions.read_caption_metadata(self.options["path"])), None)

    def image_captions(self, split: str, val_fraction: float, skips: Counter) -> Iterator[ImageCaption]:
        size = self.image_size()
        entries = list(captions.read_caption_metadata(self.options["path"], skips))
        # Split by image, so that no held-out image has a caption in training.
        held = val_keys([e.key.rsplit("#", 1)[0] for e in entries], val_fraction)
        for e in entries:
            if (e.key.rsplit("#", 1)[0] in held) == (split == "val"):
                yield e.key, (lambda e=e: captions.load_image(e.image_path, size, e.where)), e.caption

    def texts(self) -> Iterator[str]:
        for e in captions.read_caption_metadata(self.options["path"], Counter()):
            yield e.caption


# --- text and chat -------------------------------------------------------------------
class Documents(Source):
    """Documents joined end to end; a unit is ``<|bos|> text <|eos|>``."""

    mode = "stream"
    evaluation = "gato_mini.agent.eval_text:TextEvaluation"

    def documents(self, skips: Counter) -> list[tuple[str, str]]:
        raise NotImplementedError

    def texts(self) -> Iterator[str]:
        for _, doc in self.documents(Counter()):
            yield doc

    def units(self, split: str, cfg: GatoConfig, tokenizer: TextTokenizer | None, val_fraction: float,
              skips: Counter) -> Iterator[Unit]:
        return split_units(self.documents(skips), document_sequence, split, cfg, tokenizer, val_fraction)


@register_kind
class Pydoc(Documents):
    """Python's own help topics and docstrings (always installed)."""

    name_of_kind = "text-pydoc"
    defaults = {"docstrings": True, "max_modules": None}
    whole_numbers = ("max_modules",)
    builtin = ("text-pydoc",)

    def _input(self) -> Any:
        return [sys.version, platform.python_implementation()]

    def documents(self, skips: Counter) -> list[tuple[str, str]]:
        o = self.options
        return self._read(lambda _: corpora.pydoc_documents(o["docstrings"], o["max_modules"]), skips)


@register_kind
class TextFiles(Documents):
    """A ``.txt``/``.md`` file or a folder of them."""

    name_of_kind = "text"
    defaults = {"path": None}
    required = ("path",)
    reads_whole = True

    def documents(self, skips: Counter) -> list[tuple[str, str]]:
        return self._read(lambda s: corpora.read_text_documents(self.options["path"], s), skips)


def unique_dialogues(items: Iterable[tuple[str, list[dict[str, str]]]], skips: Counter
                     ) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Each dialogue once, the first of its copies kept: chatterbot-corpus repeats ten tech-support
    exchanges about a hundred times each (2,026 dialogues, 899 distinct), which would fill half the
    chat rows and put copies of training dialogues in the held-out split."""
    seen: set[str] = set()
    for key, msgs in items:
        text = json.dumps(msgs, sort_keys=True)
        if text in seen:
            skips["a repeat of an earlier dialogue"] += 1
            continue
        seen.add(text)
        yield key, msgs


class Chats(Source):
    """Conversations, each distinct dialogue once (:func:`unique_dialogues`); a unit is the chat template,
    with loss on the assistant's turns."""

    evaluation = "gato_mini.agent.eval_text:TextEvaluation"

    def chats(self, skips: Counter) -> list[tuple[str, list[dict[str, str]]]]:
        raise NotImplementedError

    def _dialogues(self, read: Callable[[Counter], Iterable[tuple[str, list[dict[str, str]]]]],
                   skips: Counter) -> list[tuple[str, list[dict[str, str]]]]:
        return self._read(lambda s: unique_dialogues(read(s), s), skips)

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "repeats": "dropped"}  # shards made before that are stale

    def texts(self) -> Iterator[str]:
        for _, msgs in self.chats(Counter()):
            yield from (m["content"] for m in msgs)

    def units(self, split: str, cfg: GatoConfig, tokenizer: TextTokenizer | None, val_fraction: float,
              skips: Counter) -> Iterator[Unit]:
        return split_units(self.chats(skips), chat_sequence, split, cfg, tokenizer, val_fraction, skips)


@register_kind
class Chatterbot(Chats):
    """The chatterbot corpus's dialogues (YAML inside its wheel)."""

    name_of_kind = "chat-chatterbot"
    defaults = {"language": "english"}
    builtin = ("chat-chatterbot",)

    def _input(self) -> Any:
        return package_version("chatterbot-corpus")

    def chats(self, skips: Counter) -> list[tuple[str, list[dict[str, str]]]]:
        return self._dialogues(lambda _: corpora.chatterbot_conversations(self.options["language"]), skips)


@register_kind
class ChatJsonl(Chats):
    """A JSONL file of ``{"messages": [{"role", "content"}, ...]}`` conversations."""

    name_of_kind = "chat-jsonl"
    defaults = {"path": None}
    required = ("path",)
    reads_whole = True

    def chats(self, skips: Counter) -> list[tuple[str, list[dict[str, str]]]]:
        return self._dialogues(lambda s: corpora.read_chat_jsonl(self.options["path"], s), skips)


def builtin_names() -> dict[str, str]:
    """Every built-in source name and its kind, sources of their own before the tasks' episodes."""
    out: dict[str, str] = {}
    for k, cls in sorted(KINDS.items(), key=lambda kv: kv[1].mode == "episode"):
        for n in cls.builtin:
            out.setdefault(n, k)
    return out


def make_source(config: SourceConfig) -> Source:
    """The :class:`Source` of a config, of its kind's class."""
    return KINDS[config.kind](config)


def source_of(name: str, kind_name: str, options: dict[str, Any] | None = None) -> Source:
    """A source from a kind and some options, the kind's defaults filling in the rest."""
    cls = KINDS[kind_name]
    return cls(SourceConfig(name, kind_name, 1.0, {**cls.defaults, **(options or {})}))
