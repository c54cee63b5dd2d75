"""Captioning as an environment: an episode shows one image, the action is its caption.

``CaptionEnv`` serves the held-out images of a caption source (``caption-shapes``,
``caption-digits`` or a ``caption-folder``) so that captioning is evaluated by
the same `Agent` and rollout loop as Atari and MuJoCo:

* observation: ``{"image": uint8 (H, W[, C])}``, the same image the caption
  source trains on (so it is tokenized identically);
* action: a caption, ``gymnasium.spaces.Text``;
* reward: sentence BLEU-4 (add-one smoothed, :func:`sentence_bleu`) of the
  caption against every reference caption of the image, in [0, 1]; the
  episode ends after one step;
* ``info``: the caption, its references and ``exact_match``.

Episode seeds pick images: ``reset(seed=s)`` shows image ``s mod N``, so
episodes ``seed .. seed + N - 1`` cover the held-out split once. Exact match
ignores case and surrounding or repeated whitespace. References: a shapes scene
has two correct wordings (either object named first); a folder image has all of
its captions.

Reference policies: ``expert`` answers the image's first reference (BLEU 1);
``random`` answers the caption of another image of the split chosen at
random, a chance baseline that knows the caption template but not the image.
"""

from __future__ import annotations

import math
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from gato_mini.data.sources import KINDS, Captions, source_of
from gato_mini.errors import GatoError

#: Characters a sampled caption may hold (``action_space.sample()``); ``step`` accepts any string.
CHARSET = string.ascii_letters + string.digits + string.punctuation + " "
#: Registered gymnasium ids of the built-in caption sources.
ENV_IDS = {"caption-shapes": "gato-mini/CaptionShapes-v0", "caption-digits": "gato-mini/CaptionDigits-v0"}


@dataclass(frozen=True)
class CaptionItem:
    """One image (loaded on demand) and its reference captions."""

    key: str
    load: Callable[[], np.ndarray]
    references: tuple[str, ...]


def normalize_caption(text: str) -> str:
    """Lower case, single spaces, no surrounding whitespace (what exact match compares)."""
    return " ".join(str(text).lower().split())


def exact_match(caption: str, references: Sequence[str]) -> bool:
    """Whether ``caption`` equals one of ``references`` after :func:`normalize_caption`."""
    return normalize_caption(caption) in {normalize_caption(r) for r in references}


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def sentence_bleu(caption: str, references: Sequence[str], n_gram: int = 4) -> float:
    """BLEU-4 of one caption against its references with add-one smoothing for n > 1, in [0, 1].

    Lin and Och (2004): the smoothing torchmetrics' ``smooth=True`` names, which it skips when
    any n-gram order has no match (it returns 0 there, so most short wrong captions would score
    exactly 0). Where every order matches, this equals ``bleu_score(..., smooth=True)``.
    """
    hyp = normalize_caption(caption).split()
    refs = [normalize_caption(r).split() for r in references]
    if not hyp or not refs:
        return 0.0
    log_p = 0.0
    for n in range(1, n_gram + 1):
        counts = _ngrams(hyp, n)
        best: Counter = Counter()
        for r in refs:
            best |= _ngrams(r, n)  # the most of each n-gram any one reference holds
        matched = sum(min(c, best[g]) for g, c in counts.items())
        total = max(len(hyp) - n + 1, 0)
        add = 0 if n == 1 else 1
        if matched + add == 0:
            return 0.0
        log_p += math.log((matched + add) / (total + add)) / n_gram
    closest = min((len(r) for r in refs), key=lambda length: (abs(length - len(hyp)), length))
    brevity = 1.0 if len(hyp) > closest else math.exp(1 - closest / len(hyp))
    return brevity * math.exp(log_p)


def score_captions(captions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Corpus metrics: exact-match rate and BLEU-4 (unsmoothed, torchmetrics), both in [0, 1]."""
    from torchmetrics.functional.text import bleu_score

    if len(captions) != len(references) or not captions:
        raise GatoError(f"need one reference list per caption, got {len(captions)} and {len(references)}")
    exact = float(np.mean([exact_match(c, r) for c, r in zip(captions, references, strict=True)]))
    bleu = float(bleu_score([normalize_caption(c) for c in captions],
                            [[normalize_caption(x) for x in r] for r in references], n_gram=4))
    return {"exact_match": exact, "bleu4": bleu}


def caption_items(kind: str, options: dict[str, Any] | None = None, split: str = "val",
                  val_fraction: float = 0.05) -> list[CaptionItem]:
    """The images of one split of a caption source, each with all of its references
    (:meth:`Captions.images <gato_mini.data.sources.Captions.images>`)."""
    source = source_of(kind, kind, options) if kind in KINDS else None
    if not isinstance(source, Captions):
        raise GatoError(f"{kind!r} is not a caption source kind")
    return [CaptionItem(key, load, refs) for key, load, refs in source.images(split, val_fraction)]


class ImageEnv(gym.Env):
    """One item of ``items`` per episode: an image (``item.load()``) and what the subclass adds to the
    observation (:meth:`extra`); the action is text. The caption env and the question env
    (:mod:`~gato_mini.envs.vqa`) share it."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 2}
    item_name = "image"  # what an episode shows, for errors

    def __init__(self, items: Sequence[Any], render_mode: str | None = None, max_length: int = 256) -> None:
        if not items:
            raise GatoError(f"a {type(self).__name__} needs at least one {self.item_name}")
        if render_mode not in (None, "rgb_array"):
            raise GatoError(f"render_mode {render_mode!r} is not supported; use 'rgb_array'")
        self.items = list(items)
        first = np.asarray(self.items[0].load())
        self.observation_space = spaces.Dict({"image": spaces.Box(0, 255, first.shape, np.uint8),
                                              **self.extra_spaces()})
        self.action_space = spaces.Text(max_length=max_length, charset=CHARSET)
        self.render_mode = render_mode
        self.index: int | None = None
        self._image = first

    def extra_spaces(self) -> dict[str, spaces.Space]:
        """The observation's fields beside the image."""
        return {}

    def extra(self, item: Any) -> dict[str, Any]:
        """The values of :meth:`extra_spaces` for ``item``."""
        return {}

    def current(self) -> Any:
        """The item of this episode."""
        if self.index is None:
            raise GatoError("call reset() first")
        return self.items[self.index]

    def observation(self) -> dict[str, Any]:
        return {"image": self._image.copy(), **self.extra(self.current())}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        n = len(self.items)
        self.index = seed % n if seed is not None else int(self.np_random.integers(n))
        item = self.items[self.index]
        self._image = np.asarray(item.load(), dtype=np.uint8)
        if self._image.shape != self.observation_space["image"].shape:
            raise GatoError(f"{self.item_name} {item.key} has an image of shape {self._image.shape}, the "
                            f"others {self.observation_space['image'].shape}")
        return self.observation(), {"key": item.key, "index": self.index}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        img = self._image
        return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img.copy()


class CaptionEnv(ImageEnv):
    """One image per episode; the action is its caption (see the module docstring)."""

    @classmethod
    def from_source(cls, kind: str, options: dict[str, Any] | None = None, split: str = "val",
                    val_fraction: float = 0.05, render_mode: str | None = None) -> CaptionEnv:
        """The env over one split of a caption source (default: its held-out images)."""
        return cls(caption_items(kind, options, split, val_fraction), render_mode)

    @property
    def references(self) -> tuple[str, ...]:
        """The current image's reference captions."""
        return self.current().references

    def step(self, action: Any):
        refs = self.references
        caption = str(action)
        info = {"caption": caption, "references": list(refs), "exact_match": exact_match(caption, refs),
                "key": self.current().key}
        return self.observation(), sentence_bleu(caption, refs), True, False, info


class CaptionExpert:
    """Answers the image's first reference caption."""

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        """Nothing to reset."""

    def __call__(self, obs: dict[str, Any], env: gym.Env) -> str:
        return env.unwrapped.references[0]


class ChanceCaption:
    """Answers the caption of a random image of the same split (the chance baseline)."""

    def __init__(self) -> None:
        self._rng = np.random.default_rng(0)

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)

    def __call__(self, obs: dict[str, Any], env: gym.Env) -> str:
        items = env.unwrapped.items
        return items[int(self._rng.integers(len(items)))].references[0]


def make_caption(env_id: str, max_steps: int, render_mode: str | None = None) -> gym.Env:
    """The registry's maker: the registered env over the source's default held-out split."""
    return gym.make(env_id, render_mode=render_mode)


def register() -> None:
    """Register the built-in caption sources as gymnasium envs (idempotent)."""
    for kind, env_id in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=CaptionEnv.from_source, kwargs={"kind": kind})
