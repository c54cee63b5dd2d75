"""The training config: one YAML file with four sections, plus dotted overrides.

.. code-block:: yaml

    model: tiny                 # a size name, or {name: tiny, n_layer: 6, ...}
    data: mixture               # a data config (gato_mini.data.datacfg): inline, a recipe name or a path
    train: {out: runs/tiny, batch_size: 16, lr: 1.0e-3, ...}   # see TrainOptions
    trainer: {max_steps: 600, ...}                              # any lightning.Trainer argument

``gato-mini train --config FILE --trainer.max_steps 200 --train.lr 3e-4``:
each override is ``--SECTION.KEY[.KEY] VALUE`` (or ``=VALUE``), the value read
as YAML. Every key is checked: an unknown one is named, with a suggestion.
The resolved config is written to ``<out>/config.yaml``.

We parse this ourselves rather than with LightningCLI/jsonargparse: the data
section is a free mapping of source names, and every mistake must come out as
one line naming the key, which jsonargparse's multi-line usage errors do not.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gato_mini.config import GatoConfig, model_config
from gato_mini.config_files import RUN_OUT, default_root, read_config_file
from gato_mini.data.datacfg import DATA_KEYS, DataConfig, parse_data_config
from gato_mini.errors import ConfigError, GatoError, did_you_mean
from gato_mini.options import check_options, checked, count, number, section_numbers
from gato_mini.options import seed as seed_rule

SECTIONS = ("model", "data", "train", "trainer")


@dataclass
class TrainOptions:
    """The ``train`` section: optimization and run bookkeeping (each number checked by its rule)."""

    out: str = RUN_OUT  # run folder: checkpoints, logs, resolved config, exported model
    batch_size: int = field(default=16, metadata=count("'train.batch_size'", hi=65_536))
    # DataLoader workers; 0 is fastest on 2 cores (benchmarks/data.py)
    num_workers: int = field(default=0, metadata=count("'train.num_workers'", 0, hi=256))
    lr: float = field(default=1e-3, metadata=number("'train.lr'", 0, open_lo=True, hi=10, optional=False))
    # cosine decay ends here
    min_lr: float = field(default=1e-4, metadata=number("'train.min_lr'", 0, hi=10, optional=False))
    warmup_steps: int = field(default=100, metadata=count("'train.warmup_steps'", 0))
    # A run sized in time: train this many minutes (the whole fit, validation and checkpoints
    # included), the rate at its peak until the last decay_share of them, then decaying to min_lr
    # (train/lit.py, TimeBudget); trainer.max_steps still caps the steps. None: sized in steps, with
    # cosine decay to min_lr at trainer.max_steps.
    minutes: float | None = field(default=None, metadata=number("'train.minutes'", 0, open_lo=True,
                                                                 hi=525_600))
    # A run sized in target tokens instead (the tokens the loss is taken on, every source together):
    # the schedule of a run sized in time, its progress counted in target tokens; it stops once another
    # step of the mean size so far would pass this many. benchmarks/specialists.py gives each specialist
    # the target tokens the generalist trained on its source. None: not sized in target tokens.
    target_tokens: int | None = field(default=None, metadata=count("'train.target_tokens'"))
    decay_share: float = field(default=0.2, metadata=number("'train.decay_share'", 0, hi=1, optional=False))
    # With minutes: stop once this many of them are spent, checkpointed, the schedule still the whole
    # run's; resuming (--resume, without it) goes on with that schedule. The quickstart's DAgger rounds
    # collect in such a pause. None: no pause.
    pause_minutes: float | None = field(default=None, metadata=number("'train.pause_minutes'", 0,
                                                                       open_lo=True, hi=525_600))
    weight_decay: float = field(default=0.1, metadata=number("'train.weight_decay'", 0, hi=10,
                                                             optional=False))
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    # "adamw", or "muon": Muon (torch.optim.Muon) on the Transformer blocks' weight matrices at
    # muon_lr, AdamW on everything else (train/lit.py, param_groups). Muon's update is scaled to an
    # AdamW update's RMS at muon_lr ("match_rms_adamw"), so muon_lr is a rate of AdamW's order: 3e-3
    # was the best of 1e-3, 3e-3 and 6e-3 on the quickstart's data; 0.02 stalled Atari and text
    # (docs/learning.md, sessions 10 and 13).
    optimizer: str = "adamw"
    muon_lr: float = field(default=3e-3, metadata=number("'train.muon_lr'", 0, open_lo=True, hi=10,
                                                         optional=False))
    # HL-Gauss soft targets (Imani and White 2018; Farebrother et al. 2024) at continuous-value targets:
    # a Gaussian of this sd, in bins, over the neighbouring bins instead of one bin (0: hard targets).
    # Decoding is unchanged (argmax or sampling), so a bang-bang expert's two modes survive.
    value_sigma: float = field(default=0.0, metadata=number("'train.value_sigma'", 0, hi=256, optional=False))
    compile: bool = False  # torch.compile the model
    # steps between checkpoints (the last one is always kept)
    checkpoint_every: int = field(default=200, metadata=count("'train.checkpoint_every'"))
    seed: int = field(default=0, metadata=seed_rule("'train.seed'"))
    record_batches: bool = False  # write per-rank batch hashes and a final weight checksum (DDP audit)


#: Rules for the numbers of the free ``trainer:`` section that gato-mini reads or that Lightning would
#: refuse with a traceback. Runs are sized in optimizer steps, so ``max_steps`` is a count (Lightning's
#: -1, "no limit", would run forever); a float ``val_check_interval`` or ``limit_*_batches`` is a share.
TRAINER_NUMBERS = {
    "max_steps": count("'trainer.max_steps'"),
    "max_epochs": count("'trainer.max_epochs'"),
    "accumulate_grad_batches": count("'trainer.accumulate_grad_batches'", hi=65_536),
    "log_every_n_steps": count("'trainer.log_every_n_steps'"),
    "num_nodes": count("'trainer.num_nodes'", hi=65_536),
    "check_val_every_n_epoch": count("'trainer.check_val_every_n_epoch'"),
    "gradient_clip_val": number("'trainer.gradient_clip_val'", 0, hi=1e6),
    "num_sanity_val_steps": count("'trainer.num_sanity_val_steps'", 0),
}
#: Keys that take a whole count, or a share in (0, 1] of an epoch's batches.
TRAINER_SHARES = {"val_check_interval": 1, "limit_val_batches": 0, "limit_train_batches": 1}


def check_trainer_numbers(trainer: dict[str, Any]) -> None:
    """Every number of a config's ``trainer:`` section that has a rule, checked (one line each)."""
    for key, meta in TRAINER_NUMBERS.items():
        if key in trainer:
            checked(trainer[key], meta)
    for key, lo in TRAINER_SHARES.items():
        value = trainer.get(key)
        if value is None:
            continue
        rule = count(f"'trainer.{key}'", lo) if isinstance(value, int) else \
            number(f"'trainer.{key}'", 0, open_lo=lo > 0, hi=1, says=f"a whole number of batches >= {lo}, "
                   f"or a share of them in {'(0' if lo else '[0'}, 1]")
        checked(value, rule)


OPTIMIZERS = ("adamw", "muon")
LOGGERS = {"csv": None, "tensorboard": "tensorboard", "wandb": "wandb"}  # name -> the package it needs


def logger_names(value: Any) -> list[str]:
    """``trainer.logger``: false (no logger), one of :data:`LOGGERS` or a list of them; each must be
    installed. Returns the names (empty for false)."""
    import importlib.util

    if value is False or value is None:
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"'trainer.logger' must be false, a logger name or a list of them "
                          f"({', '.join(LOGGERS)}), got {value!r}")
    for name in names:
        if name not in LOGGERS:
            raise ConfigError(f"'trainer.logger': unknown logger {name!r}; use {', '.join(LOGGERS)} or false")
        package = LOGGERS[name]
        if package and importlib.util.find_spec(package) is None:
            raise ConfigError(f"'trainer.logger' {name} needs the {package} package: pip install {package}")
    return names


def trainer_keys() -> list[str]:
    """Arguments ``lightning.Trainer`` accepts."""
    import lightning as L

    return [p for p in inspect.signature(L.Trainer.__init__).parameters if p != "self"]


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``["--trainer.max_steps", "200", "--train.lr=3e-4"]`` applied to a copy of ``raw``."""
    raw = copy.deepcopy(raw)
    i = 0
    while i < len(overrides):
        arg = overrides[i]
        if not arg.startswith("--") or "." not in arg:
            raise ConfigError(f"unexpected argument {arg!r}; overrides look like --trainer.max_steps 200")
        if "=" in arg:
            key, value, i = arg[2:].split("=", 1)[0], arg.split("=", 1)[1], i + 1
        else:
            if i + 1 >= len(overrides):
                raise ConfigError(f"override {arg} needs a value")
            key, value, i = arg[2:], overrides[i + 1], i + 2
        path = key.split(".")
        if path[0] not in SECTIONS:
            hint = did_you_mean(path[0], list(SECTIONS))
            raise ConfigError(f"unknown config section '{path[0]}' in --{key}{hint}")
        node = raw
        for part in path[:-1]:
            if isinstance(node.get(part), str) and part == "model":  # "model: tiny" -> {name: tiny}
                node[part] = {"name": node[part]}
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--{key}: '{part}' is not a mapping")
        try:
            node[path[-1]] = yaml.safe_load(value)
        except yaml.YAMLError:
            node[path[-1]] = value
    return raw


@dataclass
class RunConfig:
    """A parsed, checked training config."""

    model: GatoConfig
    data: DataConfig
    train: TrainOptions
    trainer: dict[str, Any]
    raw: dict[str, Any]

    def save(self, path: str | Path) -> None:
        """Write the resolved config (the file plus overrides) as YAML."""
        Path(path).write_text(yaml.safe_dump(self.raw, sort_keys=False))


def parse_run_config(raw: dict[str, Any]) -> RunConfig:
    """Check every section of a training config."""
    unknown = [k for k in raw if k not in SECTIONS]
    if unknown:
        if unknown[0] in DATA_KEYS:
            raise ConfigError(f"'{unknown[0]}' belongs under 'data:' in a training config "
                              f"(data: {{{unknown[0]}: ...}}); sections: {', '.join(SECTIONS)}")
        raise ConfigError(f"unknown config section '{unknown[0]}'{did_you_mean(unknown[0], list(SECTIONS))}; "
                          f"sections: {', '.join(SECTIONS)}")
    if "data" not in raw:
        raise ConfigError("the config needs a 'data' section (sources to train on)")
    cfg = model_config(raw.get("model"))
    data = parse_data_config(raw["data"])
    train_raw = raw.get("train") or {}
    known = [f.name for f in dataclasses.fields(TrainOptions)]
    for key in train_raw:
        if key not in known:
            raise ConfigError(f"unknown config key 'train.{key}'{did_you_mean(key, known)}")
    train = TrainOptions(**section_numbers(TrainOptions, train_raw))
    if not isinstance(raw["data"], dict) or raw["data"].get("root") is None:
        data.root = default_root({**raw, "train": {"out": train.out}})  # each run keeps its own data
    try:
        check_options(train)
        if train.optimizer not in OPTIMIZERS:
            raise ConfigError(f"'train.optimizer' must be one of {', '.join(OPTIMIZERS)}, got "
                              f"{train.optimizer!r}{did_you_mean(train.optimizer, OPTIMIZERS)}")
        betas = train.betas
        if not (isinstance(betas, list) and len(betas) == 2 and
                all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
            raise ConfigError(f"'train.betas' must be two numbers in [0, 1), got {betas!r}")
        if train.target_tokens is not None and train.minutes is not None:
            raise ConfigError("a run is sized in 'train.minutes' or in 'train.target_tokens', not both")
        if train.pause_minutes is not None and train.minutes is None:
            raise ConfigError("'train.pause_minutes' pauses a run sized in time: it needs 'train.minutes'")
        trainer = dict(raw.get("trainer") or {})
        check_trainer_numbers(trainer)
        if train.optimizer == "muon" and "fsdp" in str(trainer.get("strategy", "")).lower():
            raise ConfigError("'train.optimizer: muon' orthogonalizes whole weight matrices and FSDP shards "
                              "them into flat pieces: use 'trainer.strategy: ddp' with Muon, or "
                              "'train.optimizer: adamw' with FSDP")
    except GatoError as exc:
        raise ConfigError(str(exc)) from None
    allowed = trainer_keys()
    for key in trainer:
        if key not in allowed:
            raise ConfigError(f"unknown config key 'trainer.{key}'{did_you_mean(key, allowed)}")
    if "default_root_dir" in trainer:
        raise ConfigError("'trainer.default_root_dir' is set by gato-mini: use train.out (--train.out DIR), "
                          "the run's folder for checkpoints, logs and the model")
    if "callbacks" in trainer:
        raise ConfigError("'trainer.callbacks' cannot come from a config: gato-mini sets its own "
                          "(checkpoints, progress); add yours in Python to the Trainer that "
                          "gato_mini.train.run.build returns")
    if "logger" in trainer:
        logger_names(trainer["logger"])  # an unknown or uninstalled logger fails before anything is written
    return RunConfig(cfg, data, train, trainer, raw)


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a training config (a file or a recipe name) and apply overrides; an error in the file
    names the file, an error in an override names the override."""
    raw = read_config_file(path)
    try:
        return parse_run_config(apply_overrides(raw, overrides or []))
    except ConfigError as exc:
        if overrides:
            try:
                parse_run_config(raw)
            except ConfigError:
                pass  # the file alone is wrong too
            else:
                raise ConfigError(f"on the command line: {exc}") from None
        raise ConfigError(f"{path}: {exc}") from None
