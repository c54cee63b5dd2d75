"""The one decoding engine (gpt-fast style): batched prefill and decode over chosen KV-cache rows, each row
at its own position, and one sampler over an allowed id range or mask.

Everything that generates goes through here: the `Agent` (actions, and captions in the caption env),
the caption command and chat (:func:`generate`, one row).

* :func:`model_inputs`: :class:`~gato_mini.data.sequence.TokenSequence` s -> right-padded model inputs
  (the one batch tensorizer of decoding; training batches are :func:`~gato_mini.data.windows.collate`);
* :class:`Engine`: one context per row; :meth:`Engine.feed` appends tokens to chosen rows and returns the
  logits after each row's last token (all ids, or one id range: an action's legal ids). With the cache
  only the new tokens go through the model; without it (``use_cache=False``) each fed row's whole context
  is recomputed, the reference the cache must equal;
* :func:`pick`: greedy at temperature 0, else softmax sampling after top-k/top-p, over an id range
  ``(lo, hi)`` or a boolean mask;
* :func:`decode_text`: rows of text until a stop id, each row finishing at its own length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from gato_mini.config import GatoConfig
from gato_mini.data.sequence import TokenSequence, concat, flat_sequence
from gato_mini.model.model import GatoModel
from gato_mini.options import Checked, count, number, seed


@dataclass(frozen=True)
class Sampling(Checked):
    """How tokens are picked: greedy at temperature 0, else softmax sampling after top-k/top-p, seeded;
    ``max_tokens`` bounds a generated text (a caption, a chat reply). The options of ``gato-mini caption``
    and ``chat``; :meth:`checked` checks each number."""

    max_tokens: int = field(default=48, metadata=count("--max-tokens"))
    temperature: float = field(default=0.0, metadata=number("--temperature", 0, hi=100, optional=False))
    top_k: int | None = field(default=None, metadata=count("--top-k"))
    top_p: float | None = field(default=None, metadata=number("--top-p", 0, open_lo=True, hi=1))
    seed: int | None = field(default=None, metadata=seed())
    #: the repetition rule: no n-gram of this many tokens twice in one generated text (0: none)
    no_repeat: int = field(default=0, metadata=count("--no-repeat", 0, hi=64))

    def named(self) -> str:
        """How these options decode, in words (the report's and eval's name for a chat's decoding)."""
        how = "greedy" if self.temperature <= 0 else f"sampled at temperature {self.temperature:g}"
        if self.temperature > 0 and self.top_k:
            how += f", top-k {self.top_k}"
        if self.temperature > 0 and self.top_p:
            how += f", top-p {self.top_p:g}"
        if self.no_repeat:
            how += f", no {self.no_repeat}-gram repeated"
        return how

Allowed = Tensor | tuple[int, int] | None
#: What one row is fed: a sequence, or its parts in order (joined as the model inputs are built, so the
#: agent's hot loop builds no joined sequence per step).
Fed = TokenSequence | list[TokenSequence]


def _parts(s: Fed) -> list[TokenSequence]:
    return s if isinstance(s, list) else [s]


def fed_length(s: Fed) -> int:
    """The tokens in what one row is fed."""
    return sum(len(p) for p in s) if isinstance(s, list) else len(s)


@torch.no_grad()
def forward_cached(model: GatoModel, tokens: Tensor, input_pos: Tensor,
                   cache_rows: Tensor | slice | None = None, ids: tuple[int, int] | None = None,
                   **embeds: Tensor | None) -> Tensor:
    """A chunk (B, T) written into the cache at ``input_pos`` ((T,) or per row (B, T)), in cache rows
    ``cache_rows`` (default 0..B-1); returns the logits after its last token (B, V), or of the ids
    ``ids = (lo, hi)`` only (B, hi - lo)."""
    last = torch.full((tokens.shape[0],), tokens.shape[1] - 1, device=tokens.device)
    logits = model.logits(tokens, input_pos=input_pos, cache_rows=cache_rows, logits_at=last, ids=ids,
                          **embeds)
    return logits[:, -1]


def model_inputs(seqs: list[Fed], pad_id: int, device: torch.device) -> dict[str, Tensor]:
    """Right-padded model inputs for several sequences, each given whole or as its parts (padding never
    holds a patch)."""
    rows = [_parts(s) for s in seqs]
    n = max(sum(len(p) for p in parts) for parts in rows)
    tokens = np.full((len(rows), n), pad_id, np.int64)
    local = np.full((len(rows), n), -1, np.int64)
    for r, parts in enumerate(rows):
        at = 0
        for p in parts:
            tokens[r, at:at + len(p)], local[r, at:at + len(p)] = p.tokens, p.local_pos
            at += len(p)
    patches = np.concatenate([p.patches for parts in rows for p in parts])
    ppos = np.concatenate([p.patch_pos for parts in rows for p in parts]).astype(np.int64)
    return {"tokens": torch.from_numpy(tokens).to(device), "local_pos": torch.from_numpy(local).to(device),
            "patches": torch.from_numpy(patches).to(device), "patch_pos": torch.from_numpy(ppos).to(device)}


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Keep the ``top_k`` largest logits and the smallest set whose probability reaches ``top_p``."""
    if top_k is not None and top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0 < top_p < 1:
        sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        drop = probs.cumsum(dim=-1) - probs > top_p  # keep the token that crosses top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, sorted_logits)
    return logits


#: How a greedy pick reads a distribution over ordered ids (a continuous action's bins): its ``mode``
#: (argmax) or its ``median`` (the first id where the cumulative probability reaches one half).
POINTS = ("mode", "median")


def action_point(modality: str, point: str) -> str:
    """The point a greedy action of this modality is read at: ``point`` for a continuous action, the mode
    for any other (a median only means something over ids ordered by value)."""
    return point if modality == "continuous" else "mode"


def pick(logits: Tensor, allowed: Allowed = None, temperature: float = 0.0, top_k: int | None = None,
         top_p: float | None = None, generator: torch.Generator | None = None, point: str = "mode") -> Tensor:
    """One id per row of ``logits`` (B, V) among the ``allowed`` ids: an id range ``(lo, hi)`` or a boolean
    mask over the vocabulary (None: any). Greedy at temperature 0 (the ``point`` of :data:`POINTS`; a
    median only means something over ordered ids), else softmax sampling after top-k/top-p (a
    :class:`Sampling`'s fields)."""
    logits = logits.float()
    lo = 0
    if isinstance(allowed, tuple):
        lo, hi = allowed
        logits = logits[..., lo:hi]
    elif allowed is not None:
        logits = logits.masked_fill(~allowed[: logits.shape[-1]], float("-inf"))
    if temperature <= 0:
        if point == "median":
            below = torch.softmax(logits, dim=-1).cumsum(dim=-1) < 0.5
            return below.sum(dim=-1).clamp(max=logits.shape[-1] - 1) + lo
        return logits.argmax(dim=-1) + lo
    logits = filter_logits(logits / temperature, top_k, top_p)
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(-1) + lo


class Engine:
    """Contexts of ``rows`` rows over one model (see the module docstring). ``pos[r]`` is how many
    tokens row ``r``'s context holds."""

    def __init__(self, model: GatoModel, rows: int, use_cache: bool = True) -> None:
        self.model, self.cfg, self.use_cache = model.eval(), model.cfg, use_cache
        self.device = next(model.parameters()).device
        self.pad = self.cfg.special_id("<|pad|>")
        self.pos = [0] * rows
        self._history: list[list[TokenSequence]] = [[] for _ in range(rows)]  # without the cache
        if use_cache:
            model.setup_caches(rows, self.cfg.block_size)

    def reset(self, row: int) -> None:
        """Empty row ``row``'s context (the others are untouched)."""
        self.pos[row] = 0
        self._history[row] = []

    def feed(self, rows: list[int], seqs: list[Fed], ids: tuple[int, int] | None = None) -> Tensor:
        """Append ``seqs[k]`` to row ``rows[k]``'s context; the logits after each one's last token
        (len(rows), V), or of the ids ``ids = (lo, hi)`` only (len(rows), hi - lo). Rows whose new
        parts have equal lengths go through the model together."""
        width = self.cfg.padded_vocab_size if ids is None else ids[1] - ids[0]
        out = torch.empty(len(rows), width, device=self.device)
        if not self.use_cache:
            for r, s in zip(rows, seqs, strict=True):
                self._history[r].extend(_parts(s))
                self.pos[r] += fed_length(s)
            full = [concat(self._history[r]) for r in rows]
            last = torch.tensor([len(s) - 1 for s in full], device=self.device)
            with torch.no_grad():
                inputs = model_inputs(full, self.pad, self.device)
                logits = self.model.logits(**inputs, logits_at=last, ids=ids)
            return logits[:, 0].float()
        by_len: dict[int, list[int]] = {}
        for k, s in enumerate(seqs):
            by_len.setdefault(fed_length(s), []).append(k)
        for n, ks in by_len.items():
            batch = model_inputs([seqs[k] for k in ks], self.pad, self.device)
            start = torch.tensor([self.pos[rows[k]] for k in ks], device=self.device)
            pos = start[:, None] + torch.arange(n, device=self.device)  # (b, n)
            chosen = [rows[k] for k in ks]
            first = chosen[0]
            cache_rows: Tensor | slice = (slice(first, first + len(chosen))
                                          if chosen == list(range(first, first + len(chosen)))
                                          else torch.tensor(chosen, device=self.device))
            out[ks] = forward_cached(self.model, input_pos=pos, cache_rows=cache_rows, ids=ids,
                                     **batch).float()
            for k in ks:
                self.pos[rows[k]] += n
        return out

    def close(self) -> None:
        """Free the cache."""
        if self.use_cache:
            self.model.clear_caches()


def token_sequence(t: int, cfg: GatoConfig) -> TokenSequence:
    """One generated token as a sequence (a loss target in training; no local position)."""
    return flat_sequence([t], [True], cfg)


def repeated_ngram_ids(tokens: list[int], n: int) -> list[int]:
    """The ids that would end an ``n``-gram already in ``tokens`` (the repetition rule, as Hugging Face's
    ``no_repeat_ngram_size``): after ``... a b`` where ``a b c`` occurred, ``c`` is barred."""
    if n <= 0 or len(tokens) < n:
        return []
    if n == 1:
        return list(set(tokens))
    tail = tokens[len(tokens) - n + 1:]
    return [tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tokens[i:i + n - 1] == tail]


def decode_text(engine: Engine, rows: list[int], logits: Tensor, allowed: Allowed, stop_id: int,
                room: Callable[[int, int], bool], sampling: Sampling,
                generator: torch.Generator | None = None) -> Iterator[list[tuple[int, int]]]:
    """Text for ``rows`` after ``logits`` (their logits after the prompt), tokens picked as ``sampling``
    says (with ``generator``, and its repetition rule over each row's text so far): yields each step's
    ``(row, id)`` pairs, a row's stop id included, and stops a row at its stop id or when ``room(row, n)``
    says its ``n`` tokens so far leave no room for another."""
    active, made = list(rows), {r: [] for r in rows}
    while active:
        if sampling.no_repeat:
            for i, r in enumerate(active):
                barred = repeated_ngram_ids(made[r], sampling.no_repeat)
                if barred:
                    logits[i, barred] = float("-inf")
        ids = pick(logits, allowed, sampling.temperature, sampling.top_k, sampling.top_p, generator).tolist()
        yield list(zip(active, ids, strict=True))
        still = []
        for r, t in zip(active, ids, strict=True):
            made[r].append(t)
            if t != stop_id and room(r, len(made[r])):
                still.append((r, t))
        active = [r for r, _ in still]
        if active:
            logits = engine.feed(active, [token_sequence(t, engine.cfg) for _, t in still])


@torch.no_grad()
def generate(model: GatoModel, prompt: TokenSequence, sampling: Sampling | None = None,
             allowed: Allowed = None, stop_id: int | None = None, use_cache: bool = True) -> Iterator[int]:
    """Yield new token ids one at a time after ``prompt`` (one row), until ``stop_id`` (yielded too),
    ``sampling.max_tokens`` or the end of ``block_size``. Seeded sampling: the same seed gives the same
    ids."""
    sampling = sampling or Sampling()
    budget = min(sampling.max_tokens, model.cfg.block_size - len(prompt))
    if budget <= 0:
        return
    engine = Engine(model, 1, use_cache)
    g = None if sampling.seed is None else torch.Generator(device=engine.device).manual_seed(sampling.seed)
    try:
        logits = engine.feed([0], [prompt])
        for step in decode_text(engine, [0], logits, allowed, -1 if stop_id is None else stop_id,
                                lambda _, n: n < budget, sampling, g):
            yield step[0][1]
    finally:
        engine.close()
