"""`Agent`: N environments, one context and one KV-cache row each (docs/design.md, "The data path").

Each call to :meth:`Agent.act` takes the new observation of every active
environment, tokenizes it exactly as the training data was tokenized
(:func:`~gato_mini.data.sequence.observation_sequence`: ``[obs tokens] <|sep|>``) and
decodes the action one dimension at a time, sampling only from that
dimension's legal id range, through the one decoding engine
(:class:`~gato_mini.model.generate.Engine`, one row per environment). With the
cache, only the new tokens go through the model; without it (``use_cache=False``) the
whole context is recomputed, which is the reference the cached path must equal. A step costs one
forward per action dimension: the last dimension's token is not fed on its own (its logits would go
unused) but together with the next observation.

Context rules: a slot's context is ``[prompt] + its episode's timesteps``.
When the next timestep would not fit ``block_size``, the oldest whole
timesteps are dropped until the context is at most half the block (so the
cache is refilled rarely, not every step); the prompt is kept on such a
refill unless ``AgentOptions(keep_prompt=False)`` (then it opens each episode only) or it
alone leaves no room. Slots that overflow at the same step are refilled in one
batch. The cached and the uncached paths see the very same context. Resetting a
slot (a new episode) leaves the other slots untouched.

Speed (docs/speed.md): the head computes the legal action ids only, and a step's
parts (the last action, the new observation) are fed without being joined into
a new sequence first.

Text actions (a captioning env, ``gymnasium.spaces.Text``): the observation
must be one image, prompted with the caption layout training used,
``[patches] <|caption|>``; the caption is decoded token by token among the text
ids until ``<|eos|>`` or the sampling's ``max_tokens``, rows finishing at their own
length. Each such step starts a fresh context (a caption episode is one step).

The agent holds the model but no Lightning and no environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gato_mini.data.sequence import (
    TokenSequence,
    caption_prompt_sequence,
    concat,
    observation_sequence,
    question_prompt_sequence,
)
from gato_mini.data.timestep import decode_values, legal_range
from gato_mini.errors import GatoError
from gato_mini.fields import FieldSpec
from gato_mini.model.generate import (
    POINTS,
    Engine,
    Sampling,
    action_point,
    decode_text,
    pick,
    token_sequence,
)
from gato_mini.model.model import GatoModel
from gato_mini.tokenizers.text import TextTokenizer


@dataclass
class _Slot:
    steps: list[list[TokenSequence]] = field(default_factory=list)  # per timestep: observation, action ids
    lengths: list[int] = field(default_factory=list)  # tokens per timestep
    length: int = 0  # tokens in all timesteps
    prompt: bool = False  # whether the prompt opens this slot's context
    pending: TokenSequence | None = None  # the last action's tokens, in the context but not yet fed

    def add(self, parts: list[TokenSequence]) -> None:
        n = sum(len(p) for p in parts)
        self.steps.append(parts)
        self.lengths.append(n)
        self.length += n

    def drop_oldest(self) -> None:
        self.steps.pop(0)
        self.length -= self.lengths.pop(0)


@dataclass(frozen=True)
class AgentOptions:
    """How an :class:`Agent` acts. ``sampling``: how each token is picked (temperature 0 is greedy; its
    seed, 0 when None, seeds the agent's generator; its ``max_tokens`` bounds a caption). ``use_cache``:
    False recomputes the whole context each step (the reference). ``keep_prompt``: the prompt is kept
    on a refill (False: it opens each episode only). ``image_size``: observation images are fitted to
    this (height, width), as the source's training data was (None: the env's size). ``value_point``: at
    temperature 0, a continuous action's bin is the predicted distribution's ``median`` (the default: it
    minimizes the expected distance in bins, and the reacher scored 87 with it where the argmax of the
    same model scored 30) or its ``mode`` (argmax, as a discrete action's; docs/learning.md, session 15)."""

    sampling: Sampling = field(default_factory=Sampling)
    use_cache: bool = True
    keep_prompt: bool = True
    image_size: tuple[int, int] | None = None
    value_point: str = "median"


class Agent:
    """Acts in N environments of one task with one model (see the module docstring)."""

    def __init__(self, model: GatoModel, fields: dict[str, FieldSpec], action: FieldSpec, num_envs: int,
                 tokenizer: TextTokenizer | None = None, prompt: TokenSequence | None = None,
                 options: AgentOptions | None = None) -> None:
        if num_envs < 1:
            raise GatoError(f"num_envs must be at least 1, got {num_envs}")
        options = options or AgentOptions()
        self.model, self.cfg = model.eval(), model.cfg
        self.fields, self.action, self.tokenizer = fields, action, tokenizer
        self.n_act = int(np.prod(action.shape, dtype=np.int64)) if action.shape else 1
        self.sampling = options.sampling.checked()
        if options.value_point not in POINTS:
            raise GatoError(f"value_point must be one of {', '.join(POINTS)}; got {options.value_point!r}")
        self.point = action_point(action.modality, options.value_point)
        if action.modality == "text":
            images = [k for k, f in fields.items() if f.modality == "image"]
            texts = [k for k, f in fields.items() if f.modality == "text"]
            if tokenizer is None or len(images) != 1 or len(texts) > 1 or len(fields) != 1 + len(texts):
                raise GatoError("a text action (a caption, or an answer to a question about an image) needs "
                                "a text tokenizer, exactly one image observation and at most one text "
                                f"observation (the question); got the fields {sorted(fields)}")
            self.image_key, self.question_key = images[0], (texts[0] if texts else None)
            self.lo, self.hi = 0, tokenizer.n_text
        else:
            self.lo, self.hi = legal_range(action, self.cfg)
        self.prompt = prompt if prompt is not None and len(prompt) else None
        self.use_cache, self.keep_prompt, self.image_size = options.use_cache, options.keep_prompt, \
            options.image_size
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(self.sampling.seed or 0)
        self.slots = [_Slot() for _ in range(num_envs)]
        self.block = self.cfg.block_size
        if self.prompt is not None and len(self.prompt) >= self.block:
            raise GatoError(f"the prompt has {len(self.prompt)} tokens; block_size is {self.block}")
        self.engine = Engine(model, num_envs, self.use_cache)
        self._tokens: dict[int, TokenSequence] = {}

    # --- contexts -------------------------------------------------------------------
    def _context(self, i: int) -> TokenSequence:
        s = self.slots[i]
        parts = ([self.prompt] if s.prompt else []) + [p for step in s.steps for p in step]
        return concat(parts) if parts else TokenSequence.empty(self.cfg)

    def _context_len(self, i: int) -> int:
        s = self.slots[i]
        prompt = len(self.prompt) if s.prompt and self.prompt is not None else 0
        return prompt + s.length

    def _make_room(self, i: int, need: int) -> bool:
        """Drop old whole timesteps of slot i so that ``need`` more tokens fit. True when its cache row was
        emptied and must be refilled with the kept context (:meth:`_refill`)."""
        s = self.slots[i]
        if self._context_len(i) + need <= self.block:
            return False
        if not self.keep_prompt:
            s.prompt = False  # the prompt opens the episode only
        while s.steps and self._context_len(i) > self.block // 2 - need:
            s.drop_oldest()
        if self._context_len(i) + need > self.block and s.prompt:
            s.prompt = False  # the prompt alone leaves no room for a timestep
        if self._context_len(i) + need > self.block:
            raise GatoError(f"one timestep takes {need} tokens; block_size is {self.block}")
        s.pending = None  # the refill holds the last action too
        self.engine.reset(i)
        return self._context_len(i) > 0

    def _refill(self, rows: list[int]) -> None:
        """Feed the kept contexts of ``rows`` again, in one call: slots that overflow at the same step (all
        of them, while their episodes began together) are refilled as one batch. The kept timesteps are
        not tokenized again: each slot holds its timesteps' token sequences."""
        if rows:
            self.engine.feed(rows, [self._context(i) for i in rows], ids=(self.lo, self.lo))

    # --- public -------------------------------------------------------------------
    def reset(self, i: int) -> None:
        """Start a new episode in slot ``i`` (its context becomes the prompt)."""
        self.slots[i] = _Slot(prompt=self.prompt is not None)
        self.engine.reset(i)
        if self.prompt is not None:
            self.engine.feed([i], [self.prompt])

    def observe(self, obs: dict[str, Any]) -> TokenSequence:
        """One observation as ``[obs tokens] <|sep|>`` (the layout training used), or for a text
        action ``[patches] <|caption|>`` (a caption) or ``[patches] <|caption|> question <|sep|>`` (an
        answer)."""
        missing = sorted(set(self.fields) - set(obs))
        if missing:
            raise GatoError(f"observation lacks the field(s) {missing}")
        if self.action.modality == "text":
            picture = np.asarray(obs[self.image_key])
            if self.question_key is None:
                return caption_prompt_sequence(picture, self.cfg, self.image_size)
            return question_prompt_sequence(picture, str(obs[self.question_key]), self.cfg, self.tokenizer,
                                            self.image_size)
        return observation_sequence({k: np.asarray(obs[k])[None] for k in self.fields}, self.fields, self.cfg,
                                    self.tokenizer, self.image_size)

    def _observe_all(self, observations: list[dict[str, Any]]) -> list[TokenSequence]:
        """:meth:`observe` for several envs at once: their observations stacked into one call of the
        observation builder (tokenized as arrays, one row per env), then split per env."""
        if self.action.modality == "text" or len(observations) == 1:
            return [self.observe(o) for o in observations]
        try:
            stacked = {k: np.stack([np.asarray(o[k]) for o in observations]) for k in self.fields}
        except (KeyError, ValueError):  # a missing field or a bad shape: the one env's own error
            return [self.observe(o) for o in observations]
        seq = observation_sequence(stacked, self.fields, self.cfg, self.tokenizer, self.image_size)
        return [seq.timesteps(r, r + 1, self.cfg) for r in range(len(observations))]

    def act(self, observations: dict[int, dict[str, Any]]) -> dict[int, np.ndarray | str]:
        """Actions for the slots given (slot -> observation dict); other slots are left alone. A control
        action is an array of the action space's values; a caption (a text action) is a ``str``."""
        rows = sorted(observations)
        new = self._observe_all([observations[i] for i in rows])
        if self.action.modality == "text":
            return self._act_text(rows, new)
        self._refill([i for i, seq in zip(rows, new, strict=True)
                      if self._make_room(i, len(seq) + self.n_act)])
        chosen = np.zeros((len(rows), self.n_act), np.int64)
        steps = [[seq] for seq in new]  # each slot's new timestep, in parts (joined only on a refill)
        # The previous action's last token goes in with this observation: one forward per action dimension.
        fed = [[self.slots[i].pending, seq] if self.slots[i].pending is not None else seq
               for i, seq in zip(rows, new, strict=True)]
        for i in rows:
            self.slots[i].pending = None
        legal = (self.lo, self.hi)  # the logits of the legal ids only
        logits = self.engine.feed(rows, fed, legal)
        for d in range(self.n_act):
            ids = pick(logits, None, self.sampling.temperature, self.sampling.top_k, self.sampling.top_p,
                       self.generator, self.point) + self.lo
            chosen[:, d] = ids.cpu().numpy()
            tok = [self._token(int(t)) for t in chosen[:, d]]
            for step, a in zip(steps, tok, strict=True):
                step.append(a)
            if d + 1 == self.n_act:
                for i, a in zip(rows, tok, strict=True):
                    self.slots[i].pending = a
            else:
                logits = self.engine.feed(rows, tok, legal)
        out = {}
        for r, i in enumerate(rows):
            self.slots[i].add(steps[r])
            out[i] = self.detokenize(chosen[r])
        return out

    def _token(self, t: int) -> TokenSequence:
        """Action id ``t`` as a one-token sequence, built once per id (sequences are never changed)."""
        seq = self._tokens.get(t)
        if seq is None:
            seq = self._tokens[t] = token_sequence(t, self.cfg)
        return seq

    def _act_text(self, rows: list[int], prompts: list[TokenSequence]) -> dict[int, str]:
        """Captions for the slots ``rows``, each from a fresh context holding only its prompt."""
        eos = self.cfg.special_id("<|eos|>")
        allowed = torch.zeros(self.cfg.padded_vocab_size, dtype=torch.bool, device=self.device)
        allowed[self.lo:self.hi] = True
        allowed[eos] = True
        for i, p in zip(rows, prompts, strict=True):
            if len(p) >= self.block:
                raise GatoError(f"the image (and question) take {len(p)} tokens; block_size is {self.block}")
            self.slots[i] = _Slot()
            self.slots[i].add([p])
            self.engine.reset(i)
        logits = self.engine.feed(rows, prompts)
        out: dict[int, list[int]] = {i: [] for i in rows}

        def room(i: int, n: int) -> bool:
            # the n-th token is not fed yet
            return n < self.sampling.max_tokens and self.engine.pos[i] + 1 < self.block

        for step in decode_text(self.engine, rows, logits, allowed, eos, room, self.sampling, self.generator):
            for i, t in step:
                if t != eos:
                    out[i].append(t)
        return {i: self.tokenizer.decode(out[i]) for i in rows}

    def detokenize(self, ids: np.ndarray) -> np.ndarray:
        """Action ids of one step -> the env's action."""
        value = decode_values(ids, self.action, self.cfg)
        if self.action.modality == "discrete":
            return value.astype(np.int64).reshape(self.action.shape) if self.action.shape else np.int64(value)
        return value.astype(np.float32)

