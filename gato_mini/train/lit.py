"""`LitGato`: the thin LightningModule around `GatoModel` (litgpt's LitLLM pattern).

It owns the optimizer (AdamW; weight decay on matrices and convolutions only),
the schedule (linear warmup, then cosine decay to ``min_lr``) and the logging:
total loss, loss per source and per group (``text``, ``captions``,
``actions``), tokens per second and the learning rate.

The model draws random numbers while training (patch positions inside their
interval, dropout). Each batch reseeds torch from ``(seed, rank, step, micro-batch)``, so a
run resumed from a checkpoint draws what the uninterrupted run would have drawn,
and ends with the same weights.
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from gato_mini.config import GatoConfig
from gato_mini.data.sources import KINDS
from gato_mini.model import GatoModel

MODEL_KEYS = ("tokens", "local_pos", "patches", "patch_pos")


def lr_at(step: int, warmup: int, total: int, lr: float, min_lr: float) -> float:
    """Linear warmup to ``lr`` over ``warmup`` steps, then cosine decay to ``min_lr`` at ``total``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


class LitGato(L.LightningModule):
    """Training shell: ``hparams`` hold plain dicts only (checkpoints load with weights_only=True)."""

    def __init__(self, model_config: dict[str, Any], source_names: list[str], source_kinds: list[str],
                 optim: dict[str, Any], max_steps: int = 1000, compile: bool = False, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = GatoConfig.from_dict(model_config)
        self.model = GatoModel(self.cfg)
        self.source_names, self.source_kinds = list(source_names), list(source_kinds)
        self.groups: dict[str, list[int]] = {}
        for i, kind in enumerate(self.source_kinds):
            self.groups.setdefault(KINDS[kind].group, []).append(i)  # actions, captions or text
        self.optim, self.max_steps, self.seed = dict(optim), max_steps, seed
        # not a registered submodule: the checkpoint holds the weights once, under "model."
        object.__setattr__(self, "forward_fn", torch.compile(self.model) if compile else self.model)
        self._tick: float | None = None

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(the loss a training step minimizes: the mean over the batch's loss tokens, per-token losses)."""
        per_token = self.forward_fn(**{k: batch[k] for k in MODEL_KEYS}, targets=batch["targets"],
                                    loss_mask=batch["loss_mask"], reduction="none")
        mask = batch["loss_mask"].to(per_token.dtype)
        return per_token.sum() / mask.sum().clamp(min=1.0), per_token

    def _losses(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        loss, per_token = self.loss(batch)
        mask = batch["loss_mask"].to(per_token.dtype)
        bs = batch["tokens"].shape[0]
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs, sync_dist=stage == "val")
        # per source and per group: sums over rows, grouped by the row's source
        row_sum, row_n = per_token.detach().sum(1), mask.sum(1)
        n_sources = len(self.source_names)
        sums = torch.zeros(n_sources, device=row_sum.device).index_add_(0, batch["source"], row_sum.float())
        counts = torch.zeros(n_sources, device=row_sum.device).index_add_(0, batch["source"], row_n.float())
        present = counts.tolist()  # one copy to the host, not one sync per source
        for i, name in enumerate(self.source_names):
            if present[i] > 0:
                self.log(f"{stage}/loss_{name}", sums[i] / counts[i], batch_size=bs, sync_dist=stage == "val")
        for group, idx in self.groups.items():
            n = counts[idx].sum()
            if sum(present[i] for i in idx) > 0:
                self.log(f"{stage}/loss_{group}", sums[idx].sum() / n, batch_size=bs,
                         sync_dist=stage == "val")
        return loss

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        micro = batch_idx % max(1, int(self.trainer.accumulate_grad_batches))  # within gradient accumulation
        entropy = [self.seed, self.global_rank, self.global_step, micro]
        state = np.random.SeedSequence(entropy).generate_state(2)
        torch.manual_seed(int(state[0]) << 32 | int(state[1]))

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self._losses(batch, "train")
        now = time.perf_counter()
        if self._tick is not None:
            self.log("train/tokens_per_s", batch["tokens"].numel() / max(now - self._tick, 1e-9),
                     prog_bar=True, batch_size=batch["tokens"].shape[0])
        self._tick = now
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=1)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._losses(batch, "val")

    def on_validation_end(self) -> None:
        self._tick = None  # validation time is not training throughput

    def configure_gradient_clipping(self, optimizer: Any, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        """Under FSDP each rank holds a shard of the gradients: the root module's ``clip_grad_norm_``
        takes the norm over all of them (Lightning refuses ``gradient_clip_val`` with FSDP otherwise)."""
        from torch.distributed.fsdp import FullyShardedDataParallel

        root = self.trainer.model if self._trainer is not None else None
        if gradient_clip_val and isinstance(root, FullyShardedDataParallel):
            root.clip_grad_norm_(gradient_clip_val)
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self) -> dict[str, Any]:
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            # matrices and conv kernels decay; embeddings, norms and biases do not
            is_table = name.startswith(("wte.", "local_pos.", "patch_embed.row.", "patch_embed.col."))
            (decay if p.dim() >= 2 and not is_table else no_decay).append(p)
        o = self.optim
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": o["weight_decay"]},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=o["lr"], betas=tuple(o["betas"]))
        warmup, total, lr, min_lr = o["warmup_steps"], self.max_steps, o["lr"], o["min_lr"]
        sched = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                  lambda s: lr_at(s, warmup, total, lr, min_lr) / lr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
