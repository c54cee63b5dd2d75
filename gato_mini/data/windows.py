"""Training windows from shards, and the batch the model takes.

:class:`WindowSampler` draws one window of at most ``block_size`` tokens:

* a source by mixture weight;
* ``episode`` sources: a timestep uniformly over all timesteps of all episodes,
  then whole timesteps from there (moved earlier when the episode ends first,
  so windows are full). With probability ``prompt_probability`` a
  demonstration from another episode of the same source is prepended, at most
  ``prompt_fraction * block_size`` tokens of whole timesteps, taken from that
  episode's end or from a uniform position with equal odds (Gato Sec. 3.3);
* ``pack`` sources (captions, chats): random whole units until the next one
  would not fit (one longer than ``block_size`` is cut);
* ``stream`` sources (text): ``block_size`` tokens at a uniform offset.

:func:`collate` pads windows to ``block_size`` and returns the batch dict
(see :data:`BATCH_KEYS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gato_mini.config import GatoConfig
from gato_mini.data.sequence import TokenSequence, concat
from gato_mini.data.shards import Shard
from gato_mini.errors import ConfigError

#: The batch dict: what each key holds (B windows of L = block_size tokens, N patches in all).
BATCH_KEYS = {
    "tokens": "(B, L) int64 input ids; <|patch|> at image patch slots, <|pad|> after the window",
    "targets": "(B, L) int64 the next id (tokens shifted left by one)",
    "loss_mask": "(B, L) bool whether targets[b, i] counts in the loss",
    "local_pos": "(B, L) int64 local observation position, -1 for none",
    "patches": "(N, P*P*C) uint8 raw patch pixels, in (b, i) order of the slots; the model's patch "
               "embedding normalizes them on its device (4x less to copy than floats)",
    "patch_pos": "(N, 4) int64 row lo, row hi, col lo, col hi of each patch (intervals of 128)",
    "source": "(B,) int64 index of the source each window came from",
}


@dataclass
class SourceShard:
    """One source of the mixture, opened."""

    name: str
    mode: str  # "episode" | "pack" | "stream"
    weight: float
    shard: Shard


class WindowSampler:
    """Draws windows from a weighted mixture of shards (see the module docstring)."""

    def __init__(self, sources: list[SourceShard], cfg: GatoConfig, block_size: int | None = None,
                 prompt_probability: float = 0.25, prompt_fraction: float = 0.25) -> None:
        self.cfg = cfg
        self.block_size = block_size or cfg.block_size
        self.prompt_probability = prompt_probability
        self.prompt_budget = int(prompt_fraction * self.block_size)
        self.sources = sources
        for s in sources:
            longest = s.shard.meta["counts"]["max_step_tokens"]
            if s.mode == "episode" and longest > self.block_size:
                raise ConfigError(f"source '{s.name}' has timesteps of {longest} tokens, more than "
                                  f"block_size={self.block_size}; use smaller images or a larger block_size")
        w = np.array([s.weight if s.shard.n_units > 0 else 0.0 for s in sources], dtype=np.float64)
        if w.sum() <= 0:
            raise ConfigError("no source with a positive weight has any data")
        self.p = w / w.sum()

    # --- helpers -----------------------------------------------------------------
    @staticmethod
    def _bounds(shard: Shard, u: int) -> tuple[np.ndarray, np.ndarray]:
        """(token bounds of unit u's timesteps incl. its end, patches before each start)."""
        t0, t1, s0, s1 = (int(v) for v in shard.array("units")[u])
        st = np.asarray(shard.array("starts")[s0:s1])
        return np.append(st[:, 0], t1), st[:, 1]

    @staticmethod
    def _take(shard: Shard, bounds: np.ndarray, pbefore: np.ndarray, j: int, k: int) -> TokenSequence:
        """Timesteps j..k-1 of a unit as one sequence."""
        return shard.slice(int(bounds[j]), int(bounds[k]), int(pbefore[j]), bounds[j:k] - bounds[j])

    def _episode_window(self, shard: Shard, rng: np.random.Generator) -> TokenSequence:
        units = shard.array("units")
        s = int(rng.integers(len(shard.array("starts"))))
        u = int(np.searchsorted(units[:, 2], s, side="right") - 1)
        prompt = None
        if rng.random() < self.prompt_probability:
            prompt = self._prompt(shard, u, rng)
        budget = self.block_size - (len(prompt) if prompt is not None else 0)
        bounds, pb = self._bounds(shard, u)
        j = s - int(units[u, 2])
        j = min(j, int(np.searchsorted(bounds, bounds[-1] - budget, side="left")))  # fill the window
        k = int(np.searchsorted(bounds, bounds[j] + budget, side="right") - 1)
        if k <= j:  # cannot happen: max_step_tokens <= block_size - prompt (prompt is then dropped)
            prompt, k = None, int(np.searchsorted(bounds, bounds[j] + self.block_size, side="right") - 1)
        body = self._take(shard, bounds, pb, j, k)
        return concat([prompt, body]) if prompt is not None else body

    def _prompt(self, shard: Shard, u: int, rng: np.random.Generator) -> TokenSequence | None:
        n = shard.n_units
        other = u if n == 1 else int((u + 1 + rng.integers(n - 1)) % n)  # another episode when there is one
        bounds, pb = self._bounds(shard, other)
        steps = len(bounds) - 1
        if rng.random() < 0.5:  # from the episode's end
            k = steps
            j = int(np.searchsorted(bounds, bounds[-1] - self.prompt_budget, side="left"))
        else:  # from a uniform position
            j = int(rng.integers(steps))
            k = int(np.searchsorted(bounds, bounds[j] + self.prompt_budget, side="right") - 1)
        if k <= j:
            return None  # one timestep is longer than the prompt budget
        return self._take(shard, bounds, pb, j, k)

    def _pack_window(self, shard: Shard, rng: np.random.Generator) -> TokenSequence:
        units = shard.array("units")
        starts = shard.array("starts")
        parts, used = [], 0
        while True:
            u = int(rng.integers(len(units)))
            t0, t1, s0, _ = (int(v) for v in units[u])
            n = t1 - t0
            if parts and used + n > self.block_size:
                break
            t1 = min(t1, t0 + self.block_size)  # only the first unit can be cut
            parts.append(shard.slice(t0, t1, int(starts[s0, 1])))
            used += t1 - t0
            if used >= self.block_size:
                break
        return concat(parts)

    def _stream_window(self, shard: Shard, rng: np.random.Generator) -> TokenSequence:
        n = shard.n_tokens
        o = int(rng.integers(n - self.block_size + 1)) if n > self.block_size else 0
        return shard.slice(o, min(n, o + self.block_size), 0)

    # --- public --------------------------------------------------------------------
    def sample_from(self, i: int, rng: np.random.Generator) -> TokenSequence:
        """One window from source ``i``."""
        s = self.sources[i]
        if s.mode == "episode":
            return self._episode_window(s.shard, rng)
        if s.mode == "pack":
            return self._pack_window(s.shard, rng)
        return self._stream_window(s.shard, rng)

    def sample(self, rng: np.random.Generator) -> tuple[int, TokenSequence]:
        """(source index, window): a source by mixture weight, then a window from it."""
        i = int(rng.choice(len(self.sources), p=self.p))
        return i, self.sample_from(i, rng)


def collate(items: list[tuple[int, TokenSequence]], cfg: GatoConfig, block_size: int | None = None
            ) -> dict[str, Any]:
    """Pad windows to ``block_size`` and stack them into the batch dict (:data:`BATCH_KEYS`)."""
    L = block_size or cfg.block_size
    B = len(items)
    pad = cfg.special_id("<|pad|>")
    tokens = np.full((B, L + 1), pad, np.int64)  # one extra column: the target of the last token
    mask = np.zeros((B, L + 1), bool)
    local = np.full((B, L), -1, np.int64)
    for b, (_, seq) in enumerate(items):
        n = len(seq)
        if n > L:
            raise ValueError(f"window of {n} tokens exceeds block_size={L}")
        tokens[b, :n] = seq.tokens
        mask[b, :n] = seq.targets
        local[b, :n] = seq.local_pos
    patches = np.concatenate([seq.patches for _, seq in items]) if items else np.zeros((0, 0), np.uint8)
    patch_pos = np.concatenate([seq.patch_pos for _, seq in items]).astype(np.int64)
    return {
        "tokens": torch.from_numpy(tokens[:, :L]),
        "targets": torch.from_numpy(np.ascontiguousarray(tokens[:, 1:])),
        "loss_mask": torch.from_numpy(np.ascontiguousarray(mask[:, 1:])),
        "local_pos": torch.from_numpy(local),
        "patches": torch.from_numpy(np.ascontiguousarray(patches, dtype=np.uint8)),
        "patch_pos": torch.from_numpy(patch_pos),
        "source": torch.tensor([i for i, _ in items], dtype=torch.int64),
    }
