"""Training speed on this machine: tokens/s, FLOPs, share of the matmul peak, peak memory.

For the ``tiny`` and ``small`` configs, one full training step (forward,
backward, AdamW) on synthetic batches of ``block_size`` tokens:

* ``gato_text``: text ids only (no patches);
* ``gato_mixed``: half of the tokens are image patch slots (the default
  mixture averages roughly this: Atari windows are ~93% patches, captions
  ~50%, text 0%);
* ``nanogpt_text``: the baseline in the same run, a plain nanoGPT-style
  decoder of the same width and depth (learned absolute positions, GELU MLP
  4x) on the same text batches, so ``gato_over_nanogpt`` is the cost of Gato's
  embeddings, RoPE and GEGLU.

Model FLOPs per token follow PaLM (App. B): ``6 N + 12 L d T`` for the
trunk and head, plus the patch embedding's convolutions per patch. The matmul
peak is measured in the same run (fp32 ``torch.mm`` of 1024x1024). Each case
runs in its own process so that peak RSS is its own.

    python benchmarks/train.py [--steps 6] [--out FILE]
"""

from __future__ import annotations

import os
import sys

# benchmarks/tokenize.py would shadow the standard library's tokenize: keep this
# folder at the end of sys.path, not the front.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from _common import matmul_peak, write  # noqa: E402
from torch import nn  # noqa: E402

from gato_mini.config import GatoConfig  # noqa: E402
from gato_mini.model import GatoModel  # noqa: E402

BATCH = {"tiny": 8, "small": 4}


class NanoGPT(nn.Module):
    """The baseline: nanoGPT's decoder (LayerNorm, causal SDPA, GELU MLP 4x, learned positions)."""

    def __init__(self, cfg: GatoConfig) -> None:
        super().__init__()
        d = cfg.n_embd
        self.wte, self.wpe = nn.Embedding(cfg.padded_vocab_size, d), nn.Embedding(cfg.block_size, d)
        self.blocks = nn.ModuleList(nn.ModuleDict({
            "ln1": nn.LayerNorm(d), "qkv": nn.Linear(d, 3 * d, bias=False),
            "proj": nn.Linear(d, d, bias=False), "ln2": nn.LayerNorm(d),
            "fc": nn.Linear(d, 4 * d, bias=False), "out": nn.Linear(4 * d, d, bias=False),
        }) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.padded_vocab_size, bias=False)
        self.head.weight = self.wte.weight
        self.h = cfg.n_head

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        B, T = tokens.shape
        x = self.wte(tokens) + self.wpe(torch.arange(T))
        for b in self.blocks:
            q, k, v = b["qkv"](b["ln1"](x)).split(x.shape[-1], dim=2)
            q, k, v = (t.view(B, T, self.h, -1).transpose(1, 2) for t in (q, k, v))  # (B, h, T, hd)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, -1)
            x = x + b["proj"](y)
            x = x + b["out"](F.gelu(b["fc"](b["ln2"](x))))
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.view(B * T, -1), targets.view(-1))


def trunk_flops_per_token(model: nn.Module, cfg: GatoConfig, exclude: tuple[str, ...]) -> float:
    """PaLM: 6 N (N without embedding tables, head included) + 12 L d T."""
    n = sum(p.numel() for name, p in model.named_parameters() if not name.startswith(exclude))
    n += cfg.padded_vocab_size * cfg.n_embd  # the (tied) output head is a matmul
    return 6 * n + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size


def patch_flops(cfg: GatoConfig) -> float:
    """Training FLOPs of embedding one patch (3x the forward multiply-adds x 2)."""
    c, g = cfg.patch_hidden, (cfg.patch_size // 4) ** 2
    fwd = g * (cfg.image_channels * 16 * c) + 2 * g * (9 * c * c) + g * c * cfg.n_embd
    return 6 * fwd


def batch(cfg: GatoConfig, b: int, patch_fraction: float, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    T = cfg.block_size
    tokens = torch.randint(0, cfg.text_vocab_size, (b, T), generator=g)
    slots = torch.rand(b, T, generator=g) < patch_fraction
    tokens[slots] = cfg.special_id("<|patch|>")
    n = int(slots.sum())
    ppc = cfg.patch_size ** 2 * cfg.image_channels
    pos = torch.randint(0, 64, (n, 4), generator=g)
    pos[:, 1] = pos[:, 0] + 16
    pos[:, 3] = pos[:, 2] + 16
    return {"tokens": tokens, "local_pos": torch.where(slots, 0, -1),
            "patches": torch.randint(0, 256, (n, ppc), generator=g, dtype=torch.uint8), "patch_pos": pos,
            "targets": torch.randint(0, cfg.text_vocab_size, (b, T), generator=g),
            "loss_mask": torch.ones(b, T, dtype=torch.bool)}


def one(size: str, kind: str, steps: int) -> dict:
    """Time ``steps`` training steps of one case (run in a child process)."""
    torch.manual_seed(0)
    cfg = GatoConfig.from_name(size)
    b = BATCH[size]
    frac = 0.5 if kind == "gato_mixed" else 0.0
    if kind.startswith("gato"):
        model = GatoModel(cfg)
        data = batch(cfg, b, frac)

        def loss_fn():
            return model(**data)
        per_token = trunk_flops_per_token(model, cfg, ("wte.", "local_pos.", "patch_embed."))
        per_token += frac * patch_flops(cfg)
    else:
        model = NanoGPT(cfg)
        data = batch(cfg, b, 0.0)

        def loss_fn():
            return model(data["tokens"], data["targets"])
        per_token = trunk_flops_per_token(model, cfg, ("wte.", "wpe."))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:  # two warm-up steps
            times.append(time.perf_counter() - t0)
    step = sorted(times)[len(times) // 2]
    tokens = b * cfg.block_size
    return {"batch": b, "block_size": cfg.block_size, "params": sum(p.numel() for p in model.parameters()),
            "step_s": round(step, 4), "tokens_per_s": round(tokens / step),
            "model_flops_per_token": round(per_token), "achieved_flops": per_token * tokens / step,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--out")
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one, args.steps)))
        return
    peak = matmul_peak()
    result: dict = {"matmul_peak_flops": round(peak), "cases": {}}
    for size in ("tiny", "small"):
        cases = {}
        for kind in ("gato_text", "gato_mixed", "nanogpt_text"):
            out = subprocess.run([sys.executable, __file__, "--one", size, kind, "--steps", str(args.steps)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["fraction_of_peak"] = round(r.pop("achieved_flops") / peak, 3)
            cases[kind] = r
        cases["gato_over_nanogpt_text"] = round(cases["gato_text"]["tokens_per_s"]
                                                / cases["nanogpt_text"]["tokens_per_s"], 3)
        cases["mixed_over_text"] = round(cases["gato_mixed"]["tokens_per_s"]
                                         / cases["gato_text"]["tokens_per_s"], 3)
        result["cases"][size] = cases
    result["note"] = ("CPU fp32, batch x block_size tokens per step, median step time; "
                      f"patch FLOPs assume patch_hidden={GatoConfig().patch_hidden}")
    assert math.isfinite(peak)
    write("train", result, args.out)


if __name__ == "__main__":
    main()
