"""Prompting the model for captions and chat, with the layouts training used.

* caption: ``[image patches] <|caption|>`` then text until ``<|eos|>``
  (:func:`~gato_mini.data.sequence.caption_prompt_sequence`, the part of a training caption before its text);
* chat: the chat template up to an open ``<|assistant|>`` turn
  (:func:`~gato_mini.data.sequence.chat_prompt`), then text until ``<|end|>``, decoded as
  :data:`CHAT_SAMPLING` says unless told otherwise; :func:`chat_replies` answers many conversations at once
  (eval's scored replies).

Only text ids and the stop token may be produced, so a reply never holds an
action value or a stray special token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gato_mini.data.sequence import (
    caption_prompt_sequence,
    chat_prompt,
    flat_sequence,
    question_prompt_sequence,
)
from gato_mini.errors import GatoError
from gato_mini.model.generate import Engine, Sampling, decode_text, generate
from gato_mini.model.model import GatoModel
from gato_mini.tokenizers.text import TextTokenizer


def text_mask(model: GatoModel, tokenizer: TextTokenizer, stop: str) -> torch.Tensor:
    """Boolean mask of the ids a text reply may use: text ids plus the stop token."""
    mask = torch.zeros(model.cfg.padded_vocab_size, dtype=torch.bool, device=next(model.parameters()).device)
    mask[: tokenizer.n_text] = True
    mask[model.cfg.special_id(stop)] = True
    return mask


def stream_caption(model: GatoModel, tokenizer: TextTokenizer, image: np.ndarray, sampling: Sampling,
                   use_cache: bool = True) -> Iterator[int]:
    """Caption token ids as they come (the ``<|eos|>`` is not yielded)."""
    eos = model.cfg.special_id("<|eos|>")
    for t in generate(model, caption_prompt_sequence(image, model.cfg), sampling,
                      text_mask(model, tokenizer, "<|eos|>"), eos, use_cache):
        if t == eos:
            return
        yield t


def caption(model: GatoModel, tokenizer: TextTokenizer, image: np.ndarray, sampling: Sampling | None = None,
            use_cache: bool = True) -> str:
    """One caption for one image."""
    return tokenizer.decode(list(stream_caption(model, tokenizer, image, sampling or Sampling(), use_cache)))


#: How an answer to a question about an image is decoded unless told otherwise: greedy, short.
ANSWER_SAMPLING = Sampling(max_tokens=16)


def answer(model: GatoModel, tokenizer: TextTokenizer, image: np.ndarray, question: str,
           sampling: Sampling | None = None, use_cache: bool = True) -> str:
    """The answer to one question about one image (``[patches] <|caption|> question <|sep|>``, then the
    text up to ``<|eos|>``): ``gato-mini ask`` and ``Gato.ask``."""
    if not question.strip():
        raise GatoError("the question is empty")
    prompt = question_prompt_sequence(image, question.strip(), model.cfg, tokenizer)
    if len(prompt) >= model.cfg.block_size:
        raise GatoError(f"the image and the question take {len(prompt)} tokens; the model's context is "
                        f"{model.cfg.block_size}: ask a shorter question")
    eos = model.cfg.special_id("<|eos|>")
    out = []
    for t in generate(model, prompt, sampling or ANSWER_SAMPLING, text_mask(model, tokenizer, "<|eos|>"), eos,
                      use_cache):
        if t == eos:
            break
        out.append(t)
    return tokenizer.decode(out)


#: How chat replies are decoded unless told otherwise (``gato-mini chat``, the Python API, the quickstart's
#: exchange, eval's scored replies): greedy with no token pair repeated in a reply, the best of eight
#: decodings by unigram F1 and real words on two default models' held-out turns; sampling was worse on
#: both (``benchmarks/chat_decoding.py``; docs/learning.md, "How a chat reply is decoded").
CHAT_SAMPLING = Sampling(max_tokens=64, no_repeat=2)


def fitting_chat_prompt(messages: list[dict[str, str]], model: GatoModel, tokenizer: TextTokenizer,
                        max_tokens: int, system: str | None = None
                        ) -> tuple[np.ndarray, list[dict[str, str]]]:
    """(the ids that ask for the next assistant turn, the messages they hold): the oldest exchanges are
    dropped while the prompt leaves less room than a reply needs (``max_tokens``, or a quarter of the
    context), the last message always kept."""
    head = [{"role": "system", "content": system}] if system else []
    cfg = model.cfg
    while True:
        ids = chat_prompt(head + messages, cfg, tokenizer)
        room = cfg.block_size - len(ids)
        if room >= min(max_tokens, cfg.block_size // 4) or len(messages) <= 1:
            return ids, messages
        messages = messages[2:] if len(messages) > 2 else messages[1:]


def chat_replies(model: GatoModel, tokenizer: TextTokenizer, conversations: list[list[dict[str, str]]],
                 sampling: Sampling = CHAT_SAMPLING, rows: int = 16) -> list[str]:
    """The assistant's next reply to each conversation (each ends with a user turn), ``rows`` decoded at
    once with one KV cache; the same seed gives the same replies."""
    cfg = model.cfg
    end = cfg.special_id("<|end|>")
    mask = text_mask(model, tokenizer, "<|end|>")
    replies: list[str] = []
    engine = Engine(model, max(1, min(rows, len(conversations))))  # one cache, its rows reused per chunk
    try:
        for k in range(0, len(conversations), rows):
            chunk = [fitting_chat_prompt(c, model, tokenizer, sampling.max_tokens)[0]
                     for c in conversations[k:k + rows]]
            budget = [min(sampling.max_tokens, cfg.block_size - len(ids)) for ids in chunk]
            out: list[list[int]] = [[] for _ in chunk]
            for r in range(len(chunk)):
                engine.reset(r)
            g = (None if sampling.seed is None
                 else torch.Generator(device=engine.device).manual_seed(sampling.seed + k))
            live = [r for r, b in enumerate(budget) if b > 0]
            if live:
                logits = engine.feed(live, [flat_sequence(chunk[r], np.zeros(len(chunk[r]), bool), cfg)
                                            for r in live])
                for step in decode_text(engine, live, logits, mask, end,
                                        lambda r, n, budget=budget: n < budget[r], sampling, g):
                    for r, t in step:
                        if t != end:
                            out[r].append(t)
            replies += [tokenizer.decode(ids) for ids in out]
    finally:
        engine.close()
    return replies


@dataclass
class ChatSession:
    """A multi-turn conversation; the oldest turns are dropped when the context would overflow."""

    model: GatoModel
    tokenizer: TextTokenizer
    system: str | None = None
    sampling: Sampling = CHAT_SAMPLING
    messages: list[dict[str, str]] = field(default_factory=list)

    def reset(self) -> None:
        self.messages = []

    def _prompt(self) -> np.ndarray:
        ids, self.messages = fitting_chat_prompt(self.messages, self.model, self.tokenizer,
                                                 self.sampling.max_tokens, self.system)
        return ids

    def reply(self, text: str, on_token: Callable[[str], Any] | None = None) -> str:
        """Add a user turn, generate the assistant's reply (streamed to ``on_token``), keep both."""
        if not text.strip():
            raise GatoError("empty message; type something, /reset or /quit")
        self.messages.append({"role": "user", "content": text})
        ids = self._prompt()
        if len(ids) >= self.model.cfg.block_size:
            self.messages.pop()
            raise GatoError(f"that message alone is longer than the model's context "
                            f"({self.model.cfg.block_size} tokens)")
        prompt = flat_sequence(ids, np.zeros(len(ids), bool), self.model.cfg)
        end = self.model.cfg.special_id("<|end|>")
        out: list[int] = []
        shown = ""
        for t in generate(self.model, prompt, self.sampling, text_mask(self.model, self.tokenizer, "<|end|>"),
                          end):
            if t == end:
                break
            out.append(t)
            text_now = self.tokenizer.decode(out)
            if on_token is not None and not text_now.endswith("\ufffd"):  # wait for whole characters
                on_token(text_now[len(shown):])
                shown = text_now
        answer = self.tokenizer.decode(out)
        if on_token is not None and len(answer) > len(shown):
            on_token(answer[len(shown):])
        self.messages.append({"role": "assistant", "content": answer})
        return answer
