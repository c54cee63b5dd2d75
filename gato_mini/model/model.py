"""`GatoModel`: one decoder-only Transformer over the flat token stream.

Reads top to bottom: rotary positions, KV cache, attention, GEGLU MLP, block,
patch embedding, model. Plain PyTorch (no Lightning): training, generation and
the agent all use this module.

Embeddings (docs/design.md, "The token stream"; Gato Sec. 2.2):

* ids (text, discrete, continuous, special) -> a learned table;
* image patches -> one pre-activation ResNet block per patch, then a linear
  map to the width (they fill the ``<|patch|>`` slots of the id stream), plus
  learned row and column embeddings of the patch's quantized position;
* a learned local observation position is added to observation tokens;
* RoPE over the global position serves every modality.

``forward`` is training's: it returns the loss alone, the masked next-token
cross-entropy (its mean, or per token with ``reduction="none"``), and runs the
output head only where the loss mask counts. :meth:`GatoModel.logits` is
decoding's and inspection's: with :meth:`GatoModel.setup_caches`,
``logits(..., input_pos=...)`` writes keys and values at ``input_pos`` (per row,
so batched environments can be at different positions) and attends over the
cache: decoding one token costs one token.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from gato_mini.config import GatoConfig
from gato_mini.errors import GatoError
from gato_mini.procs import available_memory
from gato_mini.tokenizers.vector import VECTOR_SLOT


def _distributed() -> bool:
    """Whether this process is one of several training together (torch.distributed initialized)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


# --- rotary positions -------------------------------------------------------------
def rope_cache(length: int, head_dim: int, base: float) -> tuple[Tensor, Tensor]:
    """cos and sin tables ``(length, head_dim // 2)`` (Su et al. 2021)."""
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(length, dtype=torch.float32), inv)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x`` (B, H, T, hd) by position; cos/sin broadcast as (B or 1, 1, T, hd/2)."""
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).type_as(x)


# --- KV cache (gpt-fast) ------------------------------------------------------------
class KVCache(nn.Module):
    """Preallocated keys and values, written at ``input_pos``."""

    def __init__(self, batch: int, heads: int, length: int, head_dim: int, dtype: torch.dtype) -> None:
        super().__init__()
        shape = (batch, heads, length, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype), persistent=False)

    def update(self, input_pos: Tensor, k: Tensor, v: Tensor, rows: Tensor | slice | None = None,
               used: int | None = None) -> tuple[Tensor, Tensor]:
        """Write ``k, v`` (B, H, T, hd) at ``input_pos`` (B, T) of cache rows ``rows`` (default 0..B-1;
        a ``slice`` of consecutive rows is a view, no copy: the usual case, all envs stepping together).

        Returns those rows' caches (B, H, S, hd), S being the first ``used`` positions (default all).
        """
        b = k.shape[0]
        used = self.k.shape[2] if used is None else used
        if rows is None or isinstance(rows, slice):
            ks, vs = (self.k[:b], self.v[:b]) if rows is None else (self.k[rows], self.v[rows])
            idx = input_pos[:, None, :, None].expand(b, k.shape[1], k.shape[2], k.shape[3])
            ks.scatter_(2, idx, k.to(self.k.dtype))
            vs.scatter_(2, idx, v.to(self.v.dtype))
            return ks[:, :, :used], vs[:, :, :used]
        heads = torch.arange(k.shape[1], device=k.device)
        where = (rows[:, None, None], heads[None, :, None], input_pos[:, None, :])  # -> (B, H, T)
        self.k[where] = k.to(self.k.dtype)
        self.v[where] = v.to(self.v.dtype)
        return self.k[rows, :, :used], self.v[rows, :, :used]  # copies the used keys only


# --- the Transformer ----------------------------------------------------------------
class Attention(nn.Module):
    def __init__(self, cfg: GatoConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim, self.dropout = cfg.n_head, cfg.head_dim, cfg.dropout
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=False)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=False)
        self.kv_cache: KVCache | None = None

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None = None,
                input_pos: Tensor | None = None, rows: Tensor | slice | None = None) -> Tensor:
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3 * self.n_head, self.head_dim).transpose(1, 2)  # (B, 3 n_head, T, hd)
        # q and k rotated in one call (half the small ops of two: decoding is bound by op count)
        q, k = apply_rope(qkv[:, :2 * self.n_head], cos, sin).split(self.n_head, dim=1)
        v = qkv[:, 2 * self.n_head:]  # (B, n_head, T, head_dim)
        drop = self.dropout if self.training else 0.0
        if self.kv_cache is not None and input_pos is not None:
            used = mask.shape[-1] if mask is not None else None  # the keys the mask covers
            k, v = self.kv_cache.update(input_pos, k, v, rows, used)  # (B, n_head, S, head_dim)
            k, v = k.to(q.dtype), v.to(q.dtype)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=drop)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, n_embd)
        return self.proj(y)


class GEGLU(nn.Module):
    """``proj(gelu(x W_a) * x W_b)`` (Shazeer 2020); Gato's FFN."""

    def __init__(self, cfg: GatoConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 2 * cfg.intermediate_size, bias=False)
        self.proj = nn.Linear(cfg.intermediate_size, cfg.n_embd, bias=False)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.fc(x).chunk(2, dim=-1)
        return self.drop(self.proj(F.gelu(a) * b))


class Block(nn.Module):
    """Pre-norm residual block: attention then GEGLU."""

    def __init__(self, cfg: GatoConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.mlp = GEGLU(cfg)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None = None,
                input_pos: Tensor | None = None, rows: Tensor | slice | None = None) -> Tensor:
        x = x + self.attn(self.ln1(x), cos, sin, mask, input_pos, rows)
        return x + self.mlp(self.ln2(x))


# --- image patches ------------------------------------------------------------------
def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class PatchEmbedding(nn.Module):
    """Patch pixels -> width-``n_embd`` vectors plus row/column position embeddings.

    Gato App. C.3 embeds each 16x16 patch with a single pre-activation ResNet
    block. A stride-4 convolution first turns the patch into a 4x4 grid of
    ``patch_hidden`` channels, so the block costs little next to the trunk on a
    CPU; the block's output is flattened and mapped linearly to the width.
    """

    def __init__(self, cfg: GatoConfig) -> None:
        super().__init__()
        c, p = cfg.patch_hidden, cfg.patch_size
        self.cfg = cfg
        self.stem = nn.Conv2d(cfg.image_channels, c, kernel_size=4, stride=4)
        self.norm1, self.conv1 = nn.GroupNorm(_groups(c), c), nn.Conv2d(c, c, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(c), c), nn.Conv2d(c, c, 3, padding=1)
        self.proj = nn.Linear(c * (p // 4) ** 2, cfg.n_embd)
        # cfg.patch_norm "center" / "image": the per-channel level each patch is centred on (the patch's
        # median / its image's background), embedded apart
        self.level = nn.Linear(cfg.image_channels, cfg.n_embd) if cfg.patch_norm != "none" else None
        if self.level is not None:  # no biases in the block: a centred uniform patch embeds as its level
            for conv in (self.stem, self.conv1, self.conv2):
                nn.init.zeros_(conv.bias)
        self.row = nn.Embedding(cfg.position_intervals, cfg.n_embd)
        self.col = nn.Embedding(cfg.position_intervals, cfg.n_embd)

    def _position(self, lo: Tensor, hi: Tensor) -> Tensor:
        # Gato Sec. 2.2: a random index inside the interval while training, its middle at evaluation
        if self.training:
            return lo + (torch.rand(lo.shape, device=lo.device) * (hi - lo)).long()
        return (lo + hi) // 2

    def forward(self, patches: Tensor, patch_pos: Tensor, groups: Tensor | None = None) -> Tensor:
        """``patches`` (N, P*P*C) uint8 (or already normalized floats), ``patch_pos`` (N, 4); ``groups``
        (N,) the image each patch belongs to, consecutive ids from 0 (default: :func:`image_groups` of
        ``patch_pos``), read by ``patch_norm: image`` only."""
        scale = math.sqrt(self.cfg.patch_size)
        if patches.dtype == torch.uint8:
            # [-1, 1] / sqrt(P) (Gato Sec. 2.1), on the model's device
            levels = patches
            patches = (patches.to(self.proj.weight.dtype) / 127.5 - 1.0) / scale
        else:
            levels = None
        p, c = self.cfg.patch_size, self.cfg.image_channels
        x = rearrange(patches, "n (p1 p2 c) -> n c p1 p2", p1=p, p2=p)  # (N, C, P, P)
        x = x.to(self.stem.weight.dtype)
        if self.cfg.patch_norm == "image":
            if levels is None:  # normalized floats: back to the byte each came from
                levels = ((patches.float() * scale + 1.0) * 127.5).round().clamp(0, 255)
            ids = image_groups(patch_pos) if groups is None else groups
            mode = image_background(levels.view(-1, p * p, c), ids)  # (N, C) bytes
            level = ((mode.to(x.dtype) / 127.5 - 1.0) / scale)
            x = x - level[:, :, None, None]
        elif self.level is not None:
            level = x.flatten(2).median(dim=2).values  # (N, C): the patch's background
            x = x - level[:, :, None, None]
        h = self.stem(x)  # (N, hidden, P/4, P/4)
        h = h + self.conv2(F.gelu(self.norm2(self.conv1(F.gelu(self.norm1(h))))))
        out = self.proj(h.flatten(1))  # (N, n_embd)
        if self.level is not None:
            out = out + self.level(level)
        pos = patch_pos.long()
        rows, cols = self._position(pos[:, 0], pos[:, 1]), self._position(pos[:, 2], pos[:, 3])
        return out + self.row(rows) + self.col(cols)


def image_groups(patch_pos: Tensor, breaks: Tensor | None = None) -> Tensor:
    """(N,) the image each of N patches in raster order belongs to, ids 0, 1, ...: a new image starts at a
    patch whose row and column intervals both start at 0, and wherever ``breaks`` (N,) is true (another
    sequence, or a token between two patches)."""
    start = (patch_pos[:, 0] == 0) & (patch_pos[:, 2] == 0)
    if breaks is not None:
        start = start | breaks
    if start.numel():
        start[0] = True
    return start.long().cumsum(0) - 1


def image_background(levels: Tensor, groups: Tensor) -> Tensor:
    """(N, C) the background of the image of each of N patches: per channel, the most common byte over
    all of that image's pixels (``levels`` (N, pixels, C), bytes 0-255 as any dtype; ties to the lower)."""
    n, _, c = levels.shape
    count = int(groups.max()) + 1 if n else 0
    key = (groups[:, None, None] * c + torch.arange(c, device=levels.device)) * 256 + levels.long()
    hist = torch.bincount(key.reshape(-1), minlength=count * c * 256).view(count, c, 256)
    return hist.argmax(-1)[groups]  # (N, C)


def fourier_rows(n: int, width: int, std: float = 0.02) -> Tensor:
    """(n, width) embeddings of the ordered values 0..n-1: cosines and sines of the value at
    frequencies from half a cycle to n/4 cycles over the range (geometric), scaled to ``std``;
    neighbouring values get similar rows, distant ones dissimilar."""
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n  # (n,) in (0, 1)
    half = width // 2
    freqs = 0.5 * (n / 2) ** (torch.arange(half, dtype=torch.float64) / max(half - 1, 1))  # 0.5 .. n/4
    angles = 2 * math.pi * u[:, None] * freqs[None, :]
    rows = torch.cat([angles.cos(), angles.sin()], dim=1)
    if rows.shape[1] < width:
        rows = torch.cat([rows, torch.zeros(n, width - rows.shape[1], dtype=rows.dtype)], dim=1)
    return (rows / rows.std() * std).float()


# --- the model ----------------------------------------------------------------------
class GatoModel(nn.Module):
    """See the module docstring."""

    def __init__(self, cfg: GatoConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.padded_vocab_size, cfg.n_embd)
        self.patch_embed = PatchEmbedding(cfg)
        # cfg.obs_layout == "vector": a whole observation field is one slot, its normalized values mapped
        # by one linear layer, plus an embedding of how many values it has (which field it is, mostly)
        self.vector_embed = self.vector_size = None
        if cfg.obs_layout == "vector":
            self.vector_embed = nn.Linear(cfg.vector_width, cfg.n_embd)
            self.vector_size = nn.Embedding(cfg.vector_width + 1, cfg.n_embd)
        self.local_pos = nn.Embedding(cfg.max_local_positions, cfg.n_embd)
        # cfg.action_inputs == "mask": the one vector every action token in the input becomes
        self.action_mask = nn.Parameter(torch.zeros(cfg.n_embd)) if cfg.action_inputs == "mask" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.padded_vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        self.patch_id = cfg.special_id("<|patch|>")
        self.cache_length = cfg.block_size
        # Decoding attends over the filled part of the cache only; False keeps the shapes static (for
        # CUDA graphs or torch.compile of the decode step), at the cost of attending over every slot.
        self.trim_cache = True
        self._set_rope(cfg.block_size)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))
        if cfg.value_init == "fourier":
            with torch.no_grad():
                for offset, n in ((cfg.discrete_offset, cfg.discrete_bins),
                                  (cfg.continuous_offset, cfg.continuous_bins)):
                    self.wte.weight[offset:offset + n] = fourier_rows(n, cfg.n_embd)

    def _set_rope(self, length: int) -> None:
        cos, sin = rope_cache(length, self.cfg.head_dim, self.cfg.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    # --- caches -------------------------------------------------------------------
    def setup_caches(self, batch_size: int, length: int | None = None,
                     dtype: torch.dtype | None = None) -> None:
        """Allocate a KV cache of ``length`` positions (default block_size) for ``batch_size`` rows."""
        length = length or self.cfg.block_size
        dtype = dtype or self.wte.weight.dtype
        device = self.wte.weight.device
        for blk in self.blocks:
            cache = KVCache(batch_size, self.cfg.n_head, length, self.cfg.head_dim, dtype)
            blk.attn.kv_cache = cache.to(device)
        if length > self.rope_cos.shape[0]:
            self._set_rope(length)
            self.rope_cos, self.rope_sin = self.rope_cos.to(device), self.rope_sin.to(device)
        self.cache_length = length

    def clear_caches(self) -> None:
        """Drop the KV caches (forward then recomputes attention over its input)."""
        for blk in self.blocks:
            blk.attn.kv_cache = None

    # --- forward -------------------------------------------------------------------
    def embed(self, tokens: Tensor, local_pos: Tensor | None = None, patches: Tensor | None = None,
              patch_pos: Tensor | None = None) -> Tensor:
        """Input vectors (B, T, n_embd): ids, patches in their slots, local positions."""
        x = self.wte(tokens)  # (B, T, n_embd)
        slots = tokens == self.patch_id
        n_slots = int(slots.sum())
        n_patches = 0 if patches is None else patches.shape[0]
        if n_slots != n_patches:
            raise ValueError(f"{n_slots} <|patch|> slots but {n_patches} patches")
        if n_patches:
            x = x.clone()
            x[slots] = self.embed_slots(patches, patch_pos, slots).to(x.dtype)  # row-major (b, i) order
        if self.training and torch.is_grad_enabled() and _distributed():
            x = x + self._unused_zero(patch_pos if n_patches else None)
        if local_pos is not None:
            has = (local_pos >= 0).unsqueeze(-1)
            x = x + self.local_pos(local_pos.clamp(min=0)) * has
            if self.action_mask is not None:
                # action tokens: value ids (discrete/continuous) outside any observation
                cfg = self.cfg
                value = (tokens >= cfg.discrete_offset) & (tokens < cfg.special_offset)
                x = torch.where((value & (local_pos < 0)).unsqueeze(-1), self.action_mask.to(x.dtype), x)
        return self.drop(x)

    def embed_slots(self, patches: Tensor, patch_pos: Tensor, slots: Tensor | None = None) -> Tensor:
        """(N, n_embd) vectors of the slots' payloads: image patches through the patch embedding,
        observation vectors (position byte :data:`~gato_mini.tokenizers.vector.VECTOR_SLOT`) through the
        vector embedding. ``slots`` (B, T), where they sit, tells images apart (``patch_norm: image``)."""
        is_vector = patch_pos[:, 0] == VECTOR_SLOT
        if not bool(is_vector.any()):
            return self.patch_embed(patches, patch_pos, self._groups(patch_pos, is_vector, slots))
        if self.vector_embed is None or self.vector_size is None:
            raise ValueError("observation vectors in the input of a model without a vector embedding "
                             "(obs_layout 'values')")
        out = torch.empty(patches.shape[0], self.cfg.n_embd, dtype=self.vector_embed.weight.dtype,
                          device=patches.device)
        if not bool(is_vector.all()):
            images = ~is_vector
            groups = self._groups(patch_pos, is_vector, slots)
            out[images] = self.patch_embed(patches[images], patch_pos[images],
                                           None if groups is None else groups[images]).to(out.dtype)
        values = patches[is_vector].contiguous().view(torch.float32)[:, :self.cfg.vector_width]  # the payload
        sizes = patch_pos[is_vector, 1].long().clamp(max=self.cfg.vector_width)
        vectors = self.vector_embed(values.to(out.dtype)) + self.vector_size(sizes).to(out.dtype)
        k = self.cfg.vector_grad_scale
        if k != 1.0 and torch.is_grad_enabled():  # the same values; k of the gradient reaches the parameters
            vectors = vectors * k + vectors.detach() * (1.0 - k)
        out[is_vector] = vectors
        return out

    def _groups(self, patch_pos: Tensor, is_vector: Tensor, slots: Tensor | None) -> Tensor | None:
        """(N,) which image each slot's patch belongs to (``patch_pos: image`` only, else None): an image
        is a run of patches in one row with no other token between them (:func:`image_groups`)."""
        if self.cfg.patch_norm != "image" or slots is None:
            return None
        b, t = slots.nonzero(as_tuple=True)  # row-major, as the slots are filled
        gap = torch.ones_like(is_vector)
        gap[1:] = (b[1:] != b[:-1]) | (t[1:] != t[:-1] + 1) | is_vector[:-1]
        return image_groups(patch_pos, gap)

    def _unused_zero(self, patch_pos: Tensor | None) -> Tensor:
        """A zero that depends on every slot embedding this batch has no input for (the vector embedding in
        a batch without observation vectors, the patch embedding in one without images): every parameter
        then takes part in every training step, as DDP requires, whichever sources a batch drew. Only in a
        distributed run: in one process such a parameter keeps no gradient at all (AdamW then leaves it
        alone that step, where a zero gradient would still move it by its momentum)."""
        is_vector = patch_pos[:, 0] == VECTOR_SLOT if patch_pos is not None else None
        idle: list[nn.Module] = []
        if is_vector is None or bool(is_vector.all()):
            idle.append(self.patch_embed)
        if (is_vector is None or not bool(is_vector.any())) and self.vector_embed is not None:
            idle += [self.vector_embed, self.vector_size]
        params = [p for m in idle for p in m.parameters()]
        zero = torch.zeros((), device=self.wte.weight.device)
        return sum((p.sum() for p in params), zero) * 0.0

    def trunk(self, tokens: Tensor, local_pos: Tensor | None = None, patches: Tensor | None = None,
              patch_pos: Tensor | None = None, input_pos: Tensor | None = None,
              cache_rows: Tensor | slice | None = None) -> Tensor:
        """The final hidden states (B, T, n_embd): embeddings, the blocks, the last norm. Training's
        :meth:`forward` and decoding's :meth:`logits` both run it, then the head where they need it.

        ``input_pos`` (T,) or (B, T): positions of these tokens; needs :meth:`setup_caches`.
        ``cache_rows`` (B,): which cache rows these B rows use (default 0..B-1), so one
        environment's context can be refilled without touching the others; a ``slice`` of B
        consecutive rows reads the cache in place (a tensor of rows gathers a copy)."""
        B, T = tokens.shape
        x = self.embed(tokens, local_pos, patches, patch_pos)
        mask = None
        if input_pos is None:
            if T > self.rope_cos.shape[0]:
                raise ValueError(f"sequence of {T} tokens exceeds block_size={self.cfg.block_size}")
            cos, sin = self.rope_cos[:T][None, None], self.rope_sin[:T][None, None]  # (1, 1, T, hd/2)
        else:
            if self.blocks[0].attn.kv_cache is None:
                raise ValueError("logits(input_pos=...) writes into the KV cache: call setup_caches() first "
                                 "(or drop input_pos to recompute attention over the input)")
            pos = input_pos.expand(B, T) if input_pos.dim() == 1 else input_pos  # (B, T)
            cos, sin = self.rope_cos[pos][:, None], self.rope_sin[pos][:, None]  # (B, 1, T, hd/2)
            # Attend over the filled part of the cache only (up to the furthest position written now),
            # not its whole length: a context of 200 tokens in a 1024-token cache costs 200 keys.
            used = min(int(pos.max()) + 1, self.cache_length) if self.trim_cache else self.cache_length
            keys = torch.arange(used, device=tokens.device)
            mask = pos[:, None, :, None] >= keys  # (B, 1, T, S): causal over the cache
            input_pos = pos
        for blk in self.blocks:
            x = blk(x, cos, sin, mask, input_pos, cache_rows)
        return self.ln_f(x)

    def forward(self, tokens: Tensor, targets: Tensor, loss_mask: Tensor | None = None,
                local_pos: Tensor | None = None, patches: Tensor | None = None,
                patch_pos: Tensor | None = None, reduction: str = "mean", value_sigma: float = 0.0) -> Tensor:
        """Training: the next-token cross-entropy over the positions of ``loss_mask`` (all when None),
        their mean, or per token (B, T) with ``reduction="none"`` (0 off the mask). The head runs only
        on those positions, so no logits are made. (The module's call, so that DDP and FSDP hooks run.)
        ``value_sigma`` > 0: continuous-value targets are HL-Gauss soft targets
        (:func:`soft_value_targets`)."""
        x = self.trunk(tokens, local_pos, patches, patch_pos)
        # The head (a third of tiny's FLOPs) runs only where the loss counts. An Atari timestep has one
        # action target in 27 tokens, so most positions need no logits at all.
        m = loss_mask.bool() if loss_mask is not None else torch.ones_like(targets, dtype=torch.bool)
        logits, wanted = self.lm_head(x[m]).float(), targets[m]
        ce = F.cross_entropy(logits, wanted, reduction="none")
        if value_sigma > 0:
            lo, hi = self.cfg.continuous_offset, self.cfg.continuous_offset + self.cfg.continuous_bins
            values = (wanted >= lo) & (wanted < hi)
            if values.any():
                ids, weights = soft_value_targets(wanted[values], lo, hi, value_sigma)
                logp = F.log_softmax(logits[values], dim=-1).gather(1, ids)
                ce = ce.masked_scatter(values, -(weights * logp).sum(1))
        if reduction == "none":
            B, T = tokens.shape
            return torch.zeros(B, T, dtype=ce.dtype, device=ce.device).masked_scatter(m, ce)
        return ce.sum() / m.sum().clamp(min=1)

    def logits(self, tokens: Tensor, local_pos: Tensor | None = None, patches: Tensor | None = None,
               patch_pos: Tensor | None = None, input_pos: Tensor | None = None,
               cache_rows: Tensor | slice | None = None, logits_at: Tensor | None = None,
               ids: tuple[int, int] | None = None) -> Tensor:
        """Decoding and inspection: the logits (B, T, padded_vocab). ``input_pos``/``cache_rows``: the KV
        cache (:meth:`trunk`). ``logits_at`` (B,): the one position per row whose logits are wanted; the
        head then runs on those alone and the logits are (B, 1, ...). ``ids`` ``(lo, hi)``: the logits of
        ids ``lo..hi-1`` only (..., hi - lo): an action's legal range is a few ids of a vocabulary of
        thousands, and the full head row was a tenth of a decode step."""
        x = self.trunk(tokens, local_pos, patches, patch_pos, input_pos, cache_rows)
        if logits_at is not None:  # decoding needs one row of logits, not T (the head is wide)
            x = x[torch.arange(x.shape[0], device=x.device), logits_at][:, None]
        if ids is not None:
            return F.linear(x, self.lm_head.weight[ids[0]:ids[1]])  # (B, T or 1, hi - lo)
        return self.lm_head(x)  # (B, T or 1, padded_vocab)

    def num_params(self) -> int:
        """Trainable parameters (the tied head counted once)."""
        return sum(p.numel() for p in self.parameters())


def soft_value_targets(targets: Tensor, lo: int, hi: int, sigma: float) -> tuple[Tensor, Tensor]:
    """HL-Gauss targets (Imani and White 2018): for each target id in ``[lo, hi)``, the ids of the bins
    within 3 ``sigma`` of it (N, W) and their weights (N, W): the mass a Gaussian of sd ``sigma`` (in bins)
    centred on the target's bin puts on each bin, bins past either end of the range dropped and the rest
    renormalized to sum to 1."""
    half = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-half, half + 1, device=targets.device)
    edges = (offsets.double()[None] + torch.tensor([[-0.5], [0.5]], dtype=torch.float64,
                                                   device=targets.device)) / (sigma * math.sqrt(2))
    mass = (0.5 * (torch.erf(edges[1]) - torch.erf(edges[0]))).float()  # (W,)
    ids = targets[:, None] + offsets  # (N, W)
    inside = (ids >= lo) & (ids < hi)
    weights = mass * inside
    weights = weights / weights.sum(1, keepdim=True)
    return ids.clamp(lo, hi - 1), weights


def count_params(cfg: GatoConfig) -> int:
    """Trainable parameters of the model ``cfg`` builds, every one counted (trunk, embeddings, the patch
    ResNet, position tables; the tied head once): the model is built on PyTorch's meta device, which
    allocates nothing, so even the 1.18B size costs a fraction of a second."""
    with torch.device("meta"):
        return GatoModel(cfg).num_params()


def check_fits(cfg: GatoConfig, what: str, copies: int) -> None:
    """Refuse in one line (:class:`~gato_mini.errors.GatoError`) a model whose fp32 parameters, times
    ``copies`` (2 to load: the file's tensors and the model; 4 to train: weights, gradients and AdamW's
    two moments), cannot fit in this machine's available memory, before anything is allocated. The
    count is a lower bound from the sizes alone (token table and attention and GEGLU matrices), so an
    absurd config is refused without building it."""
    d, layers = cfg.n_embd, cfg.n_layer
    lower = cfg.padded_vocab_size * d + layers * (4 * d * d + 3 * d * cfg.intermediate_size)
    need, have = lower * 4 * copies, available_memory()
    if need > have:
        raise GatoError(f"{what}: a model of {layers} layers x {d} ({lower / 1e9:.3g}B parameters or "
                        f"more) needs at least {need / 2**30:.1f} GiB here; this machine has "
                        f"{have / 2**30:.1f} GiB available")
