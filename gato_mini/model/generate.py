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


def pick(logits: Tensor, allowed: Tensor | None = None, temperature: float = 0.0, top_k: int | None = None,
         top_p: float | None = None, generator: torch.Generator | None = None) -> Tensor:
    """One id per row of ``logits`` (B, V) among the ``allowed`` ids (a boolean mask over the vocabulary):
    greedy at temperature 0, else softmax sampling after top-k/top-p."""
    logits = logits.float()
    if allowed is not None:
        logits = logits.masked_fill(~allowed[: logits.shape[-1]], float("-inf"))
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = filter_logits(logits / temperature, top_k, top_p)
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate(model: GatoModel, prompt: dict[str, Tensor], max_new_tokens: int, allowed: Tensor | None = None,
             stop_ids: tuple[int, ...] = (), temperature: float = 0.0, top_k: int | None = None,
             top_p: float | None = None, seed: int | None = None, use_cache: bool = True):
    """Yield new token ids one at a time after ``prompt`` (a batch of one: tokens, local_pos, patches,
    patch_pos), until a stop id (yielded too), ``max_new_tokens`` or the end of ``block_size``.

    ``allowed``: a boolean mask over the vocabulary of ids that may be produced (e.g. text plus the
    stop token). Greedy at temperature 0; otherwise softmax sampling after top-k/top-p, seeded.
    """
    model.eval()
    tokens = prompt["tokens"]
    n = tokens.shape[1]
    device = tokens.device
    budget = min(max_new_tokens, model.cfg.block_size - n)
    if budget <= 0:
        return
    g = torch.Generator(device=device).manual_seed(seed) if seed is not None else None

    if use_cache:
        model.setup_caches(1, model.cfg.block_size)
        logits = prefill(model, input_pos=torch.arange(n, device=device), **prompt)
    else:
        seq = dict(prompt)
        logits = model(**seq)[0][:, -1]
    try:
        for k in range(budget):
            nxt = int(pick(logits, allowed, temperature, top_k, top_p, g)[0])
            yield nxt
            if nxt in stop_ids or k + 1 == budget:
                return
            step = torch.tensor([[nxt]], device=device)
            if use_cache:
                logits = decode_one_token(model, step, torch.tensor([n + k], device=device),
                                          local_pos=torch.full_like(step, -1))
            else:
                seq["tokens"] = torch.cat([seq["tokens"], step], dim=1)
                seq["local_pos"] = torch.cat([seq["local_pos"], torch.full_like(step, -1)], dim=1)
                logits = model(**seq)[0][:, -1]
    finally:
        if use_cache:
            model.clear_caches()
