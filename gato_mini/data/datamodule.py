"""`GatoDataModule`: the weighted mixture of prepared shards, as Lightning batches.

* ``prepare_data`` (local rank 0 only) runs :func:`~gato_mini.data.prepare.prepare`,
  which does nothing when the shards are up to date.
* Training draws an endless stream of windows (:class:`TrainWindows`). The
  ``j``-th batch a (DDP rank, DataLoader worker) pair makes is drawn from a
  generator seeded with ``(seed, rank, worker, j)``, so ranks and workers see
  different data, a run is reproducible for a fixed number of ranks and
  workers, and a run resumed from a checkpoint at step ``s`` goes on with the
  batches an uninterrupted run would have drawn after step ``s`` (its data
  position is the step, not a saved iterator).
* Validation is a fixed set of ``val_windows`` windows per source from its
  held-out split (:class:`ValWindows`, map-style, so Lightning shards it across
  ranks); sources whose held-out split is empty are left out and listed in
  :attr:`GatoDataModule.no_val`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from gato_mini.config import GatoConfig
from gato_mini.data.datacfg import DataConfig
from gato_mini.data.prepare import check_shards, prepare, shard_dir
from gato_mini.data.shards import Shard
from gato_mini.data.windows import SourceShard, WindowSampler, collate

#: How long a node of a distributed run waits for another node preparing the shared data folder.
PREPARE_WAIT_SECONDS = 24 * 3600.0


def open_sampler(data: DataConfig, cfg: GatoConfig, split: str,
                 block_size: int | None = None) -> WindowSampler:
    """A :class:`WindowSampler` over the prepared shards of one split."""
    check_shards(data, cfg)
    shards = [(s, Shard(shard_dir(data.root, s.name, split))) for s in data.sources]
    sources = [SourceShard(s.name, shard.meta["mode"], s.weight, shard) for s, shard in shards]
    return WindowSampler(sources, cfg, block_size, data.prompt_probability, data.prompt_fraction)


def first_batch(batches_done: int, worker: int, workers: int) -> int:
    """How many batches ``worker`` made of the first ``batches_done`` of a rank's loader.

    A DataLoader over an endless iterable takes batch ``b`` from worker ``b % workers``.
    """
    return max(0, (batches_done - worker + workers - 1) // workers)


class TrainWindows(IterableDataset):
    """Endless training windows in batches of ``batch_size``; batch ``j`` of a (rank, worker) pair
    depends on (seed, rank, worker, j) only, and the stream starts after ``start`` batches."""

    def __init__(self, sampler: WindowSampler, seed: int = 0, rank: int = 0, batch_size: int = 1,
                 start: int = 0) -> None:
        self.sampler, self.seed, self.rank = sampler, seed, rank
        self.batch_size, self.start = batch_size, start

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # The loader takes its k-th batch from worker k % workers. Batch `start + k` of the stream was
        # made by worker (start + k) % workers, so this worker plays that worker's part.
        role = (worker + self.start) % workers
        j = first_batch(self.start, role, workers)
        while True:
            rng = np.random.default_rng([self.seed, self.rank, role, j])
            for _ in range(self.batch_size):
                yield self.sampler.sample(rng)
            j += 1


class ValWindows(Dataset):
    """A fixed list of ``per_source`` held-out windows from each source with held-out data."""

    def __init__(self, sampler: WindowSampler, per_source: int, seed: int = 0) -> None:
        self.sampler, self.seed = sampler, seed
        # round robin over sources, so that any prefix (limit_val_batches) covers every source
        self.items = [(i, k) for k in range(per_source) for i, s in enumerate(sampler.sources)
                      if s.shard.n_units > 0]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int):
        i, k = self.items[idx]
        return i, self.sampler.sample_from(i, np.random.default_rng([self.seed, 1, i, k]))


class GatoDataModule(L.LightningDataModule):
    """Mixture DataModule (see the module docstring)."""

    def __init__(self, data: DataConfig, cfg: GatoConfig, batch_size: int = 16, num_workers: int = 0,
                 prepare: bool = True, progress: bool = True, checked: bool = False) -> None:
        super().__init__()
        self.data, self.cfg = data, cfg
        self.batch_size, self.num_workers = batch_size, num_workers
        self.run_prepare, self.progress, self.checked = prepare, progress, checked
        self.train_sampler: WindowSampler | None = None
        self.val_sampler: WindowSampler | None = None
        self.no_val: list[str] = []

    @property
    def source_names(self) -> list[str]:
        """Source names in the order of the batch's ``source`` ids."""
        return [s.name for s in self.data.sources]

    def prepare_data(self) -> None:
        """Lightning calls this on local rank 0 of each node. Nodes sharing one data folder take turns
        on its lock: the first builds, the others wait for it and then find its shards up to date."""
        if self.run_prepare:
            trainer = getattr(self, "_trainer", None)
            wait = PREPARE_WAIT_SECONDS if trainer is not None and trainer.world_size > 1 else 0.0
            print(prepare(self.data, self.cfg, progress=self.progress, checked=self.checked,
                          wait=wait).summary())

    def setup(self, stage: str | None = None) -> None:
        self.train_sampler = open_sampler(self.data, self.cfg, "train")
        root = self.data.root
        val_units = {s.name: Shard(shard_dir(root, s.name, "val")).n_units for s in self.data.sources}
        self.no_val = [name for name, n in val_units.items() if n == 0]
        has_val = any(val_units[s.name] > 0 and s.weight > 0 for s in self.data.sources)
        self.val_sampler = open_sampler(self.data, self.cfg, "val") if has_val else None

    def _rank(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.global_rank) if trainer is not None else 0

    def _batches_done(self) -> int:
        """Training batches this rank has already used (nonzero when resuming from a checkpoint)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0
        return int(trainer.global_step) * int(trainer.accumulate_grad_batches)

    def _loader(self, dataset: Any, **kw: Any) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                          collate_fn=partial(collate, cfg=self.cfg), persistent_workers=self.num_workers > 0,
                          **kw)

    def train_dataloader(self) -> DataLoader:
        if self.train_sampler is None:
            self.setup("fit")
        return self._loader(TrainWindows(self.train_sampler, self.data.seed, self._rank(), self.batch_size,
                                         self._batches_done()))

    def val_dataloader(self) -> DataLoader | list:
        if self.train_sampler is None:
            self.setup("fit")
        if self.val_sampler is None or self.data.val_windows == 0:
            return []
        windows = ValWindows(self.val_sampler, self.data.val_windows, self.data.seed)
        return self._loader(windows, shuffle=False)
