"""`Agent`: N environments, one context and one KV-cache row each (DESIGN.md, "Acting").

Each call to :meth:`Agent.act` takes the new observation of every active
environment, tokenizes it exactly as the training data was tokenized
(:func:`~gato_mini.data.sequence.observation_sequence`: ``[obs tokens] <|sep|>``) and
decodes the action one dimension at a time, sampling only from that
dimension's legal id range. With the cache, only the new tokens go through
the model; without it (``use_cache=False``) the whole context is recomputed,
which is the reference the cached path must equal. With the cache, a step costs one forward per
action dimension: the last dimension's token is not fed on its own (its logits would go unused) but
together with the next observation.

Context rules: a slot's context is ``[prompt] + its episode's timesteps``.
When the next timestep would not fit ``block_size``, the oldest whole
timesteps are dropped until the context is at most half the block (so the
cache is refilled rarely, not every step); the prompt is kept on such a
refill unless ``keep_prompt=False`` (then it opens each episode only) or it
alone leaves no room. The cached and the uncached paths see the very same
context. Resetting a slot (a new episode) leaves the other slots untouched.

Text actions (a captioning env, ``gymnasium.spaces.Text``): the observation
must be one image, prompted with the caption layout training used,
``[patches] <|caption|>``; the caption is decoded token by token among the text
ids until ``<|eos|>`` or ``max_text_tokens``, rows finishing at their own
length. Each such step starts a fresh context (a caption episode is one step).

The agent holds the model but no Lightning and no environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gato_mini.data.sequence import TokenSequence, caption_prompt_sequence, concat, observation_sequence
from gato_mini.data.timestep import decode_values, legal_range
from gato_mini.errors import GatoError
from gato_mini.fields import FieldSpec
from gato_mini.model.generate import pick, sample
from gato_mini.model.model import GatoModel
from gato_mini.tokenizers.text import TextTokenizer


@dataclass
class _Slot:
    steps: list[TokenSequence] = field(default_factory=list)
    pos: int = 0  # tokens in this slot's cache row
    prompt: bool = False  # whether the prompt opens this slot's context
    pending: TokenSequence | None = None  # the last action's tokens, in the context but not yet cached


class Agent:
    """Acts in N environments of one task with one model (see the module docstring)."""

    def __init__(self, model: GatoModel, fields: dict[str, FieldSpec], action: FieldSpec, num_envs: int,
                 tokenizer: TextTokenizer | None = None, prompt: TokenSequence | None = None,
                 temperature: float = 0.0, use_cache: bool = True, keep_prompt: bool = True,
                 image_size: tuple[int, int] | None = None, seed: int = 0, max_text_tokens: int = 48) -> None:
        if num_envs < 1:
            raise GatoError(f"num_envs must be at least 1, got {num_envs}")
        self.model, self.cfg = model.eval(), model.cfg
        self.fields, self.action, self.tokenizer = fields, action, tokenizer
        self.n_act = int(np.prod(action.shape, dtype=np.int64)) if action.shape else 1
        self.max_text_tokens = max_text_tokens
        if action.modality == "text":
            images = [k for k, f in fields.items() if f.modality == "image"]
            if tokenizer is None or len(fields) != 1 or len(images) != 1:
                raise GatoError("a text action (a caption) needs a text tokenizer and exactly one image "
                                f"observation; got the fields {sorted(fields)}")
            self.lo, self.hi = 0, tokenizer.n_text
        else:
            self.lo, self.hi = legal_range(action, self.cfg)
        self.prompt = prompt if prompt is not None and len(prompt) else None
        self.temperature, self.use_cache, self.keep_prompt = temperature, use_cache, keep_prompt
        self.image_size = image_size
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.slots = [_Slot() for _ in range(num_envs)]
        self.block = self.cfg.block_size
        if self.prompt is not None and len(self.prompt) >= self.block:
            raise GatoError(f"the prompt has {len(self.prompt)} tokens; block_size is {self.block}")
        if use_cache:
            model.setup_caches(num_envs, self.block)

    # --- contexts -------------------------------------------------------------------
    def _context(self, i: int) -> TokenSequence:
        s = self.slots[i]
        parts = ([self.prompt] if s.prompt else []) + s.steps
        return concat(parts) if parts else TokenSequence.empty(self.cfg)

    def _context_len(self, i: int) -> int:
        s = self.slots[i]
        prompt = len(self.prompt) if s.prompt and self.prompt is not None else 0
        return prompt + sum(len(step) for step in s.steps)

    def _tensors(self, seqs: list[TokenSequence]) -> dict[str, torch.Tensor]:
        """Right-padded model inputs for several sequences (padding never holds a patch)."""
        n = max(len(s) for s in seqs)
        tokens = np.full((len(seqs), n), self.cfg.special_id("<|pad|>"), np.int64)
        local = np.full((len(seqs), n), -1, np.int64)
        for r, s in enumerate(seqs):
            tokens[r, :len(s)], local[r, :len(s)] = s.tokens, s.local_pos
        patches = np.concatenate([s.patches for s in seqs])
        ppos = np.concatenate([s.patch_pos for s in seqs]).astype(np.int64)
        d = self.device
        return {"tokens": torch.from_numpy(tokens).to(d), "local_pos": torch.from_numpy(local).to(d),
                "patches": torch.from_numpy(patches).to(d), "patch_pos": torch.from_numpy(ppos).to(d)}

    def _feed(self, rows: list[int], seqs: list[TokenSequence]) -> torch.Tensor:
        """Write ``seqs`` into the cache rows after each slot's tokens; logits of each last token."""
        out = torch.empty(len(rows), self.cfg.padded_vocab_size, device=self.device)
        by_len: dict[int, list[int]] = {}
        for k, s in enumerate(seqs):
            by_len.setdefault(len(s), []).append(k)
        for n, ks in by_len.items():  # rows with equal new lengths go through together
            batch = self._tensors([seqs[k] for k in ks])
            start = torch.tensor([self.slots[rows[k]].pos for k in ks], device=self.device)
            pos = start[:, None] + torch.arange(n, device=self.device)  # (b, n)
            cache_rows = torch.tensor([rows[k] for k in ks], device=self.device)
            with torch.no_grad():
                logits, _ = self.model(**batch, input_pos=pos, cache_rows=cache_rows)
            out[ks] = logits[:, -1].float()
            for k in ks:
                self.slots[rows[k]].pos += n
        return out

    def _recompute(self, rows: list[int], tails: list[TokenSequence]) -> torch.Tensor:
        """Logits after ``context + tail`` per row, recomputing everything (no cache)."""
        seqs = [concat([self._context(i), t]) for i, t in zip(rows, tails, strict=True)]
        with torch.no_grad():
            logits, _ = self.model(**self._tensors(seqs))
        last = torch.tensor([len(s) - 1 for s in seqs], device=self.device)
        return logits[torch.arange(len(seqs), device=self.device), last].float()

    def _make_room(self, i: int, need: int) -> None:
        """Drop old whole timesteps of slot i so that ``need`` more tokens fit; refill its cache row."""
        s = self.slots[i]
        if self._context_len(i) + need <= self.block:
            return
        if not self.keep_prompt:
            s.prompt = False  # the prompt opens the episode only
        while s.steps and self._context_len(i) > self.block // 2 - need:
            s.steps.pop(0)
        if self._context_len(i) + need > self.block and s.prompt:
            s.prompt = False  # the prompt alone leaves no room for a timestep
        if self._context_len(i) + need > self.block:
            raise GatoError(f"one timestep takes {need} tokens; block_size is {self.block}")
        if self.use_cache:
            s.pos, s.pending = 0, None  # the refill holds the last action too
            ctx = self._context(i)
            if len(ctx):
                self._feed([i], [ctx])

    # --- public -------------------------------------------------------------------
    def reset(self, i: int) -> None:
        """Start a new episode in slot ``i`` (its context becomes the prompt)."""
        self.slots[i] = _Slot(prompt=self.prompt is not None)
        if self.use_cache and self.prompt is not None:
            self._feed([i], [self.prompt])

    def observe(self, obs: dict[str, Any]) -> TokenSequence:
        """One observation as ``[obs tokens] <|sep|>`` (the layout training used), or for a text
        action ``[patches] <|caption|>``."""
        missing = sorted(set(self.fields) - set(obs))
        if missing:
            raise GatoError(f"observation lacks the field(s) {missing}")
        if self.action.modality == "text":
            picture = np.asarray(obs[next(iter(self.fields))])
            return caption_prompt_sequence(picture, self.cfg, self.image_size)
        return observation_sequence({k: np.asarray(obs[k])[None] for k in self.fields}, self.fields, self.cfg,
                                    self.tokenizer, self.image_size)

    def act(self, observations: dict[int, dict[str, Any]]) -> dict[int, np.ndarray]:
        """Actions for the slots given (slot -> observation dict); other slots are left alone."""
        rows = sorted(observations)
        new = [self.observe(observations[i]) for i in rows]
        if self.action.modality == "text":
            return self._act_text(rows, new)
        for i, seq in zip(rows, new, strict=True):
            self._make_room(i, len(seq) + self.n_act)
        chosen = np.zeros((len(rows), self.n_act), np.int64)
        tails = list(new)
        if self.use_cache:  # the previous action's last token goes in with this observation
            fed = [concat([self.slots[i].pending, seq]) if self.slots[i].pending is not None else seq
                   for i, seq in zip(rows, new, strict=True)]
            for i in rows:
                self.slots[i].pending = None
            logits = self._feed(rows, fed)
        else:
            logits = self._recompute(rows, tails)
        for d in range(self.n_act):
            ids = sample(logits, self.lo, self.hi, self.temperature, self.generator)
            chosen[:, d] = ids.cpu().numpy()
            tok = [self._action_token(int(t)) for t in chosen[:, d]]
            tails = [concat([t, a]) for t, a in zip(tails, tok, strict=True)]
            if d + 1 == self.n_act:
                if self.use_cache:
                    for i, a in zip(rows, tok, strict=True):
                        self.slots[i].pending = a
            elif self.use_cache:
                logits = self._feed(rows, tok)
            else:
                logits = self._recompute(rows, tails)
        out = {}
        for r, i in enumerate(rows):
            self.slots[i].steps.append(tails[r])
            out[i] = self.detokenize(chosen[r])
        return out

    def _act_text(self, rows: list[int], prompts: list[TokenSequence]) -> dict[int, str]:
        """Captions for the slots ``rows``, each from a fresh context holding only its prompt."""
        eos = self.cfg.special_id("<|eos|>")
        allowed = torch.zeros(self.cfg.padded_vocab_size, dtype=torch.bool, device=self.device)
        allowed[self.lo:self.hi] = True
        allowed[eos] = True
        for i, p in zip(rows, prompts, strict=True):
            if len(p) >= self.block:
                raise GatoError(f"the image takes {len(p)} tokens; block_size is {self.block}")
            self.slots[i] = _Slot(steps=[] if self.use_cache else [p])
        empty = [TokenSequence.empty(self.cfg) for _ in rows]
        logits = self._feed(rows, prompts) if self.use_cache else self._recompute(rows, empty)
        if self.use_cache:
            for i, p in zip(rows, prompts, strict=True):
                self.slots[i].steps = [p]
        out: dict[int, list[int]] = {i: [] for i in rows}
        active = list(rows)
        while active:
            ids = pick(logits, allowed, self.temperature, generator=self.generator).tolist()
            still = []
            for i, t in zip(active, ids, strict=True):
                if t == eos:
                    continue
                out[i].append(t)
                room = self.block - self._context_len(i) - len(out[i])
                if len(out[i]) < self.max_text_tokens and room > 0:
                    still.append(i)
            active = still
            if not active:
                break
            if self.use_cache:
                logits = self._feed(active, [self._action_token(out[i][-1]) for i in active])
            else:
                logits = self._recompute(active, [concat([self._action_token(t) for t in out[i]])
                                                  for i in active])
        return {i: self.tokenizer.decode(out[i]) for i in rows}

    def _action_token(self, token: int) -> TokenSequence:
        """One action token as a sequence (a loss target in training; no local position)."""
        seq = TokenSequence.empty(self.cfg)
        seq.tokens, seq.targets = np.array([token], np.int32), np.array([True])
        seq.local_pos = np.array([-1], np.int16)
        return seq

    def detokenize(self, ids: np.ndarray) -> np.ndarray:
        """Action ids of one step -> the env's action."""
        value = decode_values(ids, self.action, self.cfg)
        if self.action.modality == "discrete":
            return value.astype(np.int64).reshape(self.action.shape) if self.action.shape else np.int64(value)
        return value.astype(np.float32)

