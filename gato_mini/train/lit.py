"""`LitGato`: the thin LightningModule around `GatoModel` (litgpt's LitLLM pattern).

It owns the optimizer (AdamW, weight decay on matrices and convolutions only; or, with
``train.optimizer: muon``, Muon on the Transformer blocks' weight matrices and AdamW on the rest:
:func:`param_groups`), the schedule and the logging:
total loss, loss per source and per group (``text``, ``captions``,
``actions``), tokens per second and the learning rate.

The model draws random numbers while training (patch positions inside their
interval, dropout). Each batch reseeds torch from ``(seed, rank, step, micro-batch)``, so a
run resumed from a checkpoint draws what the uninterrupted run would have drawn,
and ends with the same weights.

The schedule: linear warmup over ``warmup_steps``, then either cosine decay to ``min_lr`` at
``max_steps`` (a run sized in steps), or, for a run sized in time (``train.minutes``), the peak
rate until the last ``decay_share`` of the minutes and a cosine decay to ``min_lr`` over them
(:class:`TimeBudget`, a warmup-stable-decay schedule that needs no step count in advance: the run
spends its minutes on a fast machine and on a slow one alike, and stops on time). A run sized in target
tokens (``train.target_tokens``, a specialist given a generalist's share) takes the same schedule with
its progress counted in target tokens. Every run counts the target tokens it trained on per source
(kept in its checkpoints, written to the model's ``sources.json``).
"""

from __future__ import annotations

import dataclasses
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
from gato_mini.train.config import TrainOptions

MODEL_KEYS = ("tokens", "local_pos", "patches", "patch_pos")


def lr_at(step: int, warmup: int, total: int, lr: float, min_lr: float) -> float:
    """Linear warmup to ``lr`` over ``warmup`` steps, then cosine decay to ``min_lr`` at ``total``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def param_groups(model: torch.nn.Module, muon: bool) -> dict[str, list[torch.nn.Parameter]]:
    """Every trainable parameter in exactly one group: ``muon`` (the blocks' 2-D weight matrices, when
    Muon is asked for), ``decay`` (the other matrices and convolution kernels) and ``no_decay``
    (embedding tables, norms, biases)."""
    groups: dict[str, list[torch.nn.Parameter]] = {"muon": [], "decay": [], "no_decay": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_table = name.startswith(("wte.", "local_pos.", "patch_embed.row.", "patch_embed.col."))
        if muon and name.startswith("blocks.") and p.dim() == 2:
            groups["muon"].append(p)
        else:
            groups["decay" if p.dim() >= 2 and not is_table else "no_decay"].append(p)
    return groups


def source_sums(per_token: Tensor, loss_mask: Tensor, source: Tensor, n_sources: int
                ) -> tuple[Tensor, Tensor]:
    """(the summed loss, the number of loss tokens) of each source (n_sources,), from per-token losses
    (B, T), their mask and each row's source id (B,)."""
    sums = torch.zeros(n_sources, device=per_token.device).index_add_(0, source, per_token.sum(1).float())
    counts = torch.zeros(n_sources, device=per_token.device).index_add_(0, source, loss_mask.sum(1).float())
    return sums, counts


class Optimizers(torch.optim.Optimizer):
    """Several optimizers stepped as one (Muon and AdamW): one optimizer for Lightning's automatic
    optimization and one schedule over all their groups (the groups are the same dicts). The closure
    (forward and backward) runs once."""

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        self.optimizers = optimizers
        super().__init__([g for o in optimizers for g in o.param_groups], {})

    def step(self, closure: Any = None) -> Any:  # noqa: D102
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for o in self.optimizers:
            o.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:  # noqa: D102
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:  # noqa: D102
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # noqa: D102
        for o, s in zip(self.optimizers, state_dict["optimizers"], strict=True):
            o.load_state_dict(s)


class TimeBudget:
    """A run sized in seconds (see the module docstring). ``tick(elapsed)`` is told the seconds spent
    after each optimizer step (the same number on every rank); :meth:`factor` is the learning rate
    over its peak for the next step; :meth:`should_stop` is true once another step of the mean length
    so far would end past the budget. ``spent`` carries the seconds of earlier runs (a resume)."""

    def __init__(self, seconds: float, warmup: int, lr: float, min_lr: float, decay_share: float = 0.2,
                 clock: Any = time.monotonic, pause: float | None = None) -> None:
        self.seconds, self.warmup, self.lr, self.min_lr = float(seconds), warmup, lr, min_lr
        self.decay_share, self.clock = decay_share, clock
        # stop here (a pause: the schedule stays the whole run's, and a resume goes on with it)
        self.stop_at = min(self.seconds, float(pause)) if pause else self.seconds
        self.spent = 0.0  # before this process started
        self.seen = 0.0  # the last elapsed time ticked
        self.steps = 0  # ticks in this process
        self._t0: float | None = None

    def start(self) -> None:
        self._t0 = self.clock()
        self.seen, self.steps = self.spent, 0

    @property
    def elapsed(self) -> float:
        """Seconds spent so far by this run, earlier runs included (this process's clock)."""
        return self.spent + (self.clock() - self._t0 if self._t0 is not None else 0.0)

    def tick(self, elapsed: float) -> None:
        self.seen, self.steps = elapsed, self.steps + 1

    def _per_step(self) -> float:
        return (self.seen - self.spent) / self.steps if self.steps else 0.0

    def factor(self, step: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        start, end = 1.0 - self.decay_share, self.seen + self._per_step()  # when the next step ends
        progress = min(1.0, max(0.0, (end / self.seconds - start) / self.decay_share)) \
            if self.decay_share > 0 else 0.0
        rate = self.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (self.lr - self.min_lr)
        return warm * rate / self.lr

    def should_stop(self) -> bool:
        return self.seen + self._per_step() > self.stop_at


class LitGato(L.LightningModule):
    """Training shell: ``hparams`` hold plain dicts only (checkpoints load with weights_only=True)."""

    def __init__(self, model_config: dict[str, Any], source_names: list[str], source_kinds: list[str],
                 train: TrainOptions | dict[str, Any], max_steps: int = 1000) -> None:
        super().__init__()
        #: the run's ``train`` options (:class:`~gato_mini.train.config.TrainOptions`: their defaults are
        #: the only ones); hparams keep them as a plain dict, so checkpoints load with weights_only=True
        self.train_options = train if isinstance(train, TrainOptions) else TrainOptions(**train)
        self.save_hyperparameters({"model_config": model_config, "source_names": list(source_names),
                                   "source_kinds": list(source_kinds),
                                   "train": dataclasses.asdict(self.train_options), "max_steps": max_steps})
        self.cfg = GatoConfig.from_dict(model_config)
        self.model = GatoModel(self.cfg)
        self.source_names, self.source_kinds = list(source_names), list(source_kinds)
        self.groups: dict[str, list[int]] = {}
        for i, kind in enumerate(self.source_kinds):
            self.groups.setdefault(KINDS[kind].group, []).append(i)  # the kind's loss group
        t = self.train_options
        self.max_steps, self.seed = max_steps, t.seed
        seconds = t.minutes * 60 if t.minutes else None
        #: a run sized in target tokens: its budget counts them where a run sized in time counts seconds
        self.sized_in_tokens = bool(t.target_tokens) and not seconds
        size = seconds or t.target_tokens
        self.budget = TimeBudget(size, t.warmup_steps, t.lr, t.min_lr, t.decay_share,
                                 pause=t.pause_minutes * 60 if t.pause_minutes else None) if size else None
        #: the target tokens trained on so far, by source name (this rank's; a resume carries them on)
        self.trained_targets: dict[str, float] = {}
        # not a registered submodule: the checkpoint holds the weights once, under "model."
        object.__setattr__(self, "forward_fn", torch.compile(self.model) if t.compile else self.model)
        self._tick: float | None = None

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(the loss a training step minimizes: the mean over the batch's loss tokens, per-token losses)."""
        per_token = self.forward_fn(**{k: batch[k] for k in MODEL_KEYS}, targets=batch["targets"],
                                    loss_mask=batch["loss_mask"], reduction="none",
                                    value_sigma=self.train_options.value_sigma)
        mask = batch["loss_mask"].to(per_token.dtype)
        return per_token.sum() / mask.sum().clamp(min=1.0), per_token

    def _losses(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        loss, per_token = self.loss(batch)
        mask = batch["loss_mask"].to(per_token.dtype)
        bs = batch["tokens"].shape[0]
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs, sync_dist=stage == "val")
        # per source and per group: sums over rows, grouped by the row's source
        sums, counts = source_sums(per_token.detach(), mask, batch["source"], len(self.source_names))
        present = counts.tolist()  # one copy to the host, not one sync per source
        if stage == "train":
            for name, n in zip(self.source_names, present, strict=True):
                self.trained_targets[name] = self.trained_targets.get(name, 0.0) + n
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

    def on_train_start(self) -> None:
        if self.budget is not None:
            self.budget.start()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """A run sized in time: every rank takes rank 0's clock, so all set the same rate and stop at
        the same step."""
        if self.budget is None:
            return
        if self.sized_in_tokens:
            self.budget.tick(sum(self.all_trained_targets().values()))
            self.log("train/target_tokens", self.budget.seen, batch_size=1)
        else:
            self.budget.tick(float(self.trainer.strategy.broadcast(self.budget.elapsed, src=0)))
            self.log("train/minutes", self.budget.seen / 60, batch_size=1)
        if self.budget.should_stop():
            self.trainer.should_stop = True

    def all_trained_targets(self) -> dict[str, float]:
        """The target tokens trained on so far by source name, every rank's summed (every rank must
        call it)."""
        names = sorted(self.trained_targets)
        mine = torch.tensor([self.trained_targets[n] for n in names], dtype=torch.float64)
        if self._trainer is not None and self.trainer.world_size > 1:
            mine = self.trainer.strategy.reduce(mine.to(self.device), reduce_op="sum").cpu()
        return dict(zip(names, mine.tolist(), strict=True))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.budget is not None:
            checkpoint["time_budget_spent"] = float(self.budget.seen)
        checkpoint["trained_targets"] = dict(self.trained_targets)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.budget is not None:
            self.budget.spent = float(checkpoint.get("time_budget_spent", 0.0))
        self.trained_targets = {str(k): float(v) for k, v in checkpoint.get("trained_targets", {}).items()}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self._losses(batch, "train")
        now = time.perf_counter()
        if self._tick is not None:
            self.log("train/tokens_per_s", batch["tokens"].numel() / max(now - self._tick, 1e-9),
                     prog_bar=True, batch_size=batch["tokens"].shape[0])
        self._tick = now
        self.log("train/lr", self.trainer.optimizers[0].param_groups[-1]["lr"], batch_size=1)  # AdamW's
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
        o = self.train_options
        muon = o.optimizer == "muon"
        groups = param_groups(self.model, muon)
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(
            [{"params": groups["decay"], "weight_decay": o.weight_decay},
             {"params": groups["no_decay"], "weight_decay": 0.0}], lr=o.lr, betas=tuple(o.betas))
        if muon:
            # Muon's own rate, scaled per matrix to AdamW's update size ("match_rms_adamw"), so one
            # schedule (a factor over each group's peak) drives both
            optimizer = Optimizers(torch.optim.Muon(groups["muon"], lr=o.muon_lr,
                                                    weight_decay=o.weight_decay,
                                                    adjust_lr_fn="match_rms_adamw"), optimizer)
        warmup, total, lr, min_lr = o.warmup_steps, self.max_steps, o.lr, o.min_lr
        if self.budget is not None:
            budget = self.budget
            sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: budget.factor(s))
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(optimizer,
                                                      lambda s: lr_at(s, warmup, total, lr, min_lr) / lr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
