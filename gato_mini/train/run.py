"""`gato-mini train`: from a config file to checkpoints, logs and an exported model folder.

``<train.out>/`` receives ``config.yaml`` (the resolved config),
``checkpoints/`` (every ``train.checkpoint_every`` steps plus ``last.ckpt``),
``logs/`` (CSV, and TensorBoard when it is installed) and ``model/`` (the
exported folder every inference command loads). ``--ckpt-path`` resumes a run
at its step with its optimizer state; the checkpoint is opened with
``weights_only=True`` and checked against the config's architecture first.
``--resume`` picks the checkpoint with the highest step in ``checkpoints/``
(skipping a torn file), so a run killed at any moment loses at most
``checkpoint_every`` steps; the data stream goes on where it was (see
:mod:`gato_mini.data.datamodule`). Lightning writes checkpoints to a
temporary file and renames it, so a kill during a write leaves the previous
file whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch

from gato_mini.data.datamodule import GatoDataModule
from gato_mini.data.prepare import check_shards
from gato_mini.data.sources import make_source
from gato_mini.errors import GatoError
from gato_mini.model.export import check_checkpoint_matches, export_model, read_checkpoint, sources_entry
from gato_mini.model.model import check_fits
from gato_mini.procs import folder_lock
from gato_mini.train.config import RunConfig, logger_names
from gato_mini.train.lit import LitGato


class BatchAudit(L.Callback):
    """Records a hash of every training batch and the final weights, one file per rank."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha1(batch["tokens"].cpu().numpy().tobytes()).hexdigest()
        with open(self.folder / f"batches-rank{trainer.global_rank}.txt", "a") as f:
            f.write(digest + "\n")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        h = hashlib.sha1()
        for _, p in sorted(pl_module.model.state_dict().items()):
            h.update(p.detach().cpu().float().numpy().tobytes())
        (self.folder / f"weights-rank{trainer.global_rank}.txt").write_text(h.hexdigest() + "\n")


def _loggers(out: Path, names: list[str] | None = None) -> list[Any] | bool:
    """The run's loggers: CSV (and TensorBoard where installed) by default, else those ``names``
    (``trainer.logger``: csv, tensorboard, wandb; none is False)."""
    from lightning.pytorch.loggers import CSVLogger

    if names is not None:
        if not names:
            return False
        made: list[Any] = []
        for name in names:
            if name == "csv":
                made.append(CSVLogger(out, name="logs"))
            elif name == "tensorboard":
                from lightning.pytorch.loggers import TensorBoardLogger

                made.append(TensorBoardLogger(out, name="tb"))
            else:
                from lightning.pytorch.loggers import WandbLogger

                made.append(WandbLogger(save_dir=str(out), project="gato-mini"))
        return made
    loggers: list[Any] = [CSVLogger(out, name="logs")]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(out, name="tb"))
    except ImportError:
        pass
    return loggers


#: The step cap of a run sized in time that sets none (``trainer.max_steps``): it never binds.
TIME_RUN_STEP_CAP = 100_000_000


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (x86's ``avx512_bf16`` or AMX flags in
    ``/proc/cpuinfo``); False where it cannot be told (another OS, another architecture)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text(errors="replace").split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: str, on_gpu: bool) -> tuple[str, str | None]:
    """(the Lightning precision, a line saying why, or None) for ``trainer.precision``: ``auto`` is
    bf16-mixed on a GPU that supports bf16 or a CPU with native bf16 (:func:`native_bf16`), else fp32."""
    if precision != "auto":
        return precision, None
    if on_gpu:
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", None
        return "32-true", "precision auto: this GPU has no bf16; training in fp32 (32-true)"
    if native_bf16():
        return "bf16-mixed", None
    return "32-true", "precision auto: this CPU has no native bf16 (avx512_bf16 or AMX); training in fp32"


def _on_gpu(run: RunConfig) -> bool:
    return torch.cuda.is_available() and run.trainer.get("accelerator", "auto") in ("auto", "gpu", "cuda")


def trainer_settings(run: RunConfig, progress: bool) -> dict[str, Any]:
    """Defaults for ``lightning.Trainer``, overridden by the config's ``trainer`` section."""
    # a run sized in time (train.minutes) stops on its clock; its step cap is only a guard
    sized = run.train.minutes or run.train.target_tokens
    max_steps = int(run.trainer.get("max_steps", TIME_RUN_STEP_CAP if sized else 1000))
    on_gpu = _on_gpu(run)
    settings: dict[str, Any] = {
        "max_steps": max_steps, "accelerator": "auto", "devices": 1,
        "precision": "bf16-mixed" if on_gpu else "32-true", "gradient_clip_val": 1.0,
        "val_check_interval": min(200, max_steps), "check_val_every_n_epoch": None,
        "log_every_n_steps": 10, "enable_progress_bar": progress, "enable_model_summary": False,
        "num_sanity_val_steps": 0,
    }
    settings.update(run.trainer)
    settings["precision"] = resolve_precision(str(settings["precision"]), on_gpu)[0]
    return settings


def step_progress_bar():  # noqa: ANN201 (a RichProgressBar)
    """Lightning's rich bar, counted in steps: runs are sized in optimizer steps over an endless
    stream of windows, so "Epoch 0/-2", an unknown total and the logger's "v_num" mean nothing here."""
    from lightning.pytorch.callbacks import RichProgressBar

    class StepProgressBar(RichProgressBar):
        @property
        def total_train_batches(self) -> int | float:
            if getattr(self.trainer.lightning_module, "budget", None) is not None:
                return float("inf")  # sized in minutes or tokens: the count of steps is not known ahead
            return max(self.trainer.max_steps - self.trainer.global_step, 0)

        def _get_train_description(self, current_epoch: int) -> str:
            module = self.trainer.lightning_module
            budget = getattr(module, "budget", None)
            if budget is not None and getattr(module, "sized_in_tokens", False):
                return f"training steps ({budget.seen:,.0f} of {budget.seconds:,.0f} target tokens)"
            if budget is not None:
                return f"training steps ({budget.seen / 60:.1f} of {budget.seconds / 60:.1f} min)"
            return "training steps"

        def get_metrics(self, trainer, pl_module):  # noqa: ANN001, ANN202
            metrics = super().get_metrics(trainer, pl_module)
            metrics.pop("v_num", None)
            return metrics

    return StepProgressBar()


def lit_module(run: RunConfig, max_steps: int) -> LitGato:
    """The LightningModule of a run: its model, optimizer and schedule, the sources' loss groups."""
    sources = run.data.sources
    return LitGato(run.model.to_dict(), [s.name for s in sources], [s.kind for s in sources], run.train,
                   max_steps=max_steps)


def full_state(trainer: L.Trainer) -> dict[str, torch.Tensor]:
    """The model's whole state dict, by name; every rank must call it. Under FSDP the strategy gathers
    the shards (to rank 0, in CPU memory; the other ranks get an empty dict); under DDP or on one
    device it is the module's own."""
    sd = trainer.strategy.lightning_module_state_dict()
    return {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}


def _cpu_fsdp() -> Any:
    """Lightning's FSDP strategy on CPU processes (gloo). Lightning refuses ``strategy="fsdp"`` without
    a GPU; torch's FSDP itself shards, trains and gathers on CPU, so this runs the same sharded path
    (and its export) on a laptop before GPUs are rented."""
    from lightning.pytorch.strategies import FSDPStrategy

    class CPUFSDPStrategy(FSDPStrategy):
        def _setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
            # Lightning passes device_id=None on CPU, which torch's FSDP takes for "find an accelerator"
            from torch.distributed.fsdp import FullyShardedDataParallel

            return FullyShardedDataParallel(module=model, sharding_strategy=self.sharding_strategy,
                                            device_id=torch.device("cpu"), **self.kwargs)

    return CPUFSDPStrategy()


def build(run: RunConfig, progress: bool = True, checked: bool = False
          ) -> tuple[L.Trainer, LitGato, GatoDataModule]:
    """The Trainer, module and DataModule of a run (nothing trained yet); ``checked``: the sources'
    inputs were checked already (by :func:`train`), so ``prepare`` does not check them again."""
    from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint

    out = Path(run.train.out)
    t = run.train
    settings = trainer_settings(run, progress)
    note = resolve_precision(str(run.trainer.get("precision", "")), _on_gpu(run))[1]
    if note and progress:
        print(note, file=sys.stderr)
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", every_n_train_steps=t.checkpoint_every, save_top_k=-1,
                           save_last=True, filename="step{step}", auto_insert_metric_name=False,
                           enable_version_counter=False)  # a resumed run rewrites last.ckpt, no last-v1
    # Ctrl-C or a crash inside fit saves checkpoints/interrupted.ckpt, so a rerun loses nothing; one
    # before the first step (a data folder another run holds, a source that fails to prepare) trained
    # nothing and leaves nothing, or the rerun would be refused as "an earlier run"

    class AfterFirstStep(OnExceptionCheckpoint):
        def on_exception(self, trainer: L.Trainer, *args: Any) -> None:
            if trainer.global_step > 0:
                super().on_exception(trainer, *args)

    callbacks: list[Any] = [ckpt, AfterFirstStep(out / "checkpoints", filename="interrupted")]
    if progress:
        callbacks.append(step_progress_bar())
    if t.record_batches:
        callbacks.append(BatchAudit(out / "audit"))
    names = logger_names(settings.pop("logger")) if "logger" in settings else None
    cpu = settings.get("accelerator") == "cpu" or (settings.get("accelerator") == "auto"
                                                    and not torch.cuda.is_available())
    if settings.get("strategy") == "fsdp" and cpu:
        settings["strategy"], settings["accelerator"] = _cpu_fsdp(), "cpu"
    trainer = L.Trainer(default_root_dir=out, logger=_loggers(out, names), callbacks=callbacks, **settings)
    lit = lit_module(run, settings["max_steps"])
    dm = GatoDataModule(run.data, run.model, batch_size=t.batch_size, num_workers=t.num_workers,
                        progress=progress, checked=checked)
    return trainer, lit, dm


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The readable checkpoint with the highest global step in ``folder`` (``last.ckpt``, ``stepN.ckpt``,
    ``interrupted.ckpt``); torn or foreign files are skipped. None when there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    best, best_step = None, -1
    for path in sorted(folder.glob("*.ckpt")):
        try:
            step = int(read_checkpoint(path, mmap=True).get("global_step", -1))
        except GatoError:
            continue  # a torn or foreign file: ignore it
        if step > best_step or (step == best_step and path.stat().st_mtime > best.stat().st_mtime):
            best, best_step = path, step
    return best


@contextlib.contextmanager
def quiet_lightning():  # noqa: ANN201
    """Lightning's tips and the warnings about choices made here, kept off the user's terminal: the
    litlogger advert, "GPU available", the ``ckpt_path=None``/"last" notes (a fresh run is checked by
    :func:`refuse_earlier_run`) and torch's pytree deprecation. Real warnings still show."""
    import logging
    import warnings

    if os.environ.get("GATO_MINI_VERBOSE", "") not in ("", "0"):  # gato-mini --verbose
        yield
        return
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for message in (r".*ckpt_path=None\)` was called without a model.*", r".*LeafSpec.*",
                            r'.*ckpt_path="last"\) is set, but there is no last checkpoint.*'):
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        log.setLevel(level)


def refuse_earlier_run(out: Path) -> None:
    """A fresh run must not land in a folder holding an earlier run's checkpoints.

    Lightning turns ``fit(ckpt_path=None)`` into ``"last"`` when an ``OnExceptionCheckpoint``
    is present, so a rerun in the same folder would silently continue the old run with its
    old settings (or crash on a changed model shape). We refuse instead; nothing is touched.
    """
    folder = out / "checkpoints"
    old = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
    if old:
        raise GatoError(f"{folder} holds {len(old)} checkpoint(s) of an earlier run; pass --resume to "
                        f"continue it, or set another train.out (or delete the folder) to start afresh")


def train(run: RunConfig, ckpt_path: str | None = None, progress: bool = True) -> Path:
    """Train, checkpoint and export; returns the model folder."""
    out = Path(run.train.out)
    # Everything that can be wrong fails before Lightning starts: the checkpoint, the memory, the inputs.
    if ckpt_path is not None:
        check_checkpoint_matches(read_checkpoint(ckpt_path), run.model, ckpt_path)
    if run.trainer.get("accelerator") == "cpu" or not torch.cuda.is_available():  # training in this memory
        check_fits(run.model, "the model config", copies=4)
    check_shards(run.data, run.model, prepared=False)
    for source in run.data.sources:
        make_source(source).check(run.model)
    with folder_lock(out, "train"):
        if ckpt_path is None:
            refuse_earlier_run(out)
        L.seed_everything(run.train.seed, workers=True, verbose=False)
        with quiet_lightning():
            trainer, lit, dm = build(run, progress, checked=True)
        if trainer.is_global_zero:
            out.mkdir(parents=True, exist_ok=True)
            run.save(out / "config.yaml")
        with quiet_lightning():
            trainer.fit(lit, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
            # A run that stopped between two checkpoints (on its clock, or at max_steps) keeps its
            # last steps: last.ckpt is the end of training, for a resume and for the steps a report counts.
            trainer.save_checkpoint(out / "checkpoints" / "last.ckpt", weights_only=False)  # optimizer too
        model_dir = out / "model"
        state = full_state(trainer)  # every rank takes part: under FSDP this gathers the shards to rank 0
        targets = lit.all_trained_targets()  # every rank takes part too
        if trainer.is_global_zero:
            export_model(model_dir, lit.model, Path(run.data.root) / "tokenizer.json",
                         sources_entry(run.data, targets), state=state)
        return model_dir
