"""Prompting the model for captions and chat, with the layouts training used.

* caption: ``[image patches] <|caption|>`` then text until ``<|eos|>``
  (:func:`~gato_mini.data.sequence.caption_prompt_sequence`, the part of a training caption before its text);
* chat: the chat template up to an open ``<|assistant|>`` turn
  (:func:`~gato_mini.data.sequence.chat_prompt`), then text until ``<|end|>``.

Only text ids and the stop token may be produced, so a reply never holds an
action value or a stray special token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gato_mini.data.sequence import caption_prompt_sequence, chat_prompt, flat_sequence
from gato_mini.errors import GatoError
from gato_mini.model.generate import Sampling, generate
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


@dataclass
class ChatSession:
    """A multi-turn conversation; the oldest turns are dropped when the context would overflow."""

    model: GatoModel
    tokenizer: TextTokenizer
    system: str | None = None
    sampling: Sampling = field(default_factory=Sampling)
    messages: list[dict[str, str]] = field(default_factory=list)

    def reset(self) -> None:
        self.messages = []

    def _prompt(self) -> np.ndarray:
        head = [{"role": "system", "content": self.system}] if self.system else []
        while True:
            ids = chat_prompt(head + self.messages, self.model.cfg, self.tokenizer)
            room = self.model.cfg.block_size - len(ids)
            enough = room >= min(self.sampling.max_tokens, self.model.cfg.block_size // 4)
            if enough or len(self.messages) <= 1:
                return ids
            self.messages = self.messages[2:] if len(self.messages) > 2 else self.messages[1:]

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
