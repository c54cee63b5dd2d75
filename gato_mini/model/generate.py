"""Decoding with the KV cache (gpt-fast style): prefill, one token at a time, legal-range sampling."""

from __future__ import annotations

import torch
from torch import Tensor

from gato_mini.model.model import GatoModel


@torch.no_grad()
def prefill(model: GatoModel, tokens: Tensor, input_pos: Tensor, **embeds: Tensor | None) -> Tensor:
    """Run a prompt chunk (B, T) through the cache; returns the logits of its last token (B, V)."""
    logits, _ = model(tokens, input_pos=input_pos, **embeds)
    return logits[:, -1]


@torch.no_grad()
def decode_one_token(model: GatoModel, tokens: Tensor, input_pos: Tensor, **embeds: Tensor | None) -> Tensor:
    """One new token per row (B, 1) at ``input_pos`` (B, 1) or (1,); returns its logits (B, V)."""
    logits, _ = model(tokens, input_pos=input_pos, **embeds)
    return logits[:, -1]


def sample(logits: Tensor, lo: int = 0, hi: int | None = None, temperature: float = 0.0,
           generator: torch.Generator | None = None) -> Tensor:
    """An id in ``[lo, hi)`` per row: greedy at temperature 0, else softmax sampling."""
    hi = logits.shape[-1] if hi is None else hi
    legal = logits[..., lo:hi].float()
    if temperature <= 0:
        return legal.argmax(dim=-1) + lo
    probs = torch.softmax(legal / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1) + lo
