"""Training: config checking and overrides, export/load parity, resume, bad checkpoints, two-process DDP."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from _data import _write_config, _write_dataset

from gato_mini.config import model_config
from gato_mini.errors import ConfigError, FileFormatError
from gato_mini.model import GatoModel
from gato_mini.model.export import load_model, read_checkpoint
from gato_mini.model.model import count_params
from gato_mini.train.config import TrainOptions, apply_overrides, load_run_config, parse_run_config
from gato_mini.train.lit import LitGato, TimeBudget, lr_at, param_groups
from gato_mini.train.run import build, train

EXE = shutil.which("gato-mini") or str(Path(sys.executable).parent / "gato-mini")
SMALL = {"name": "tiny", "n_layer": 2, "n_embd": 64, "n_head": 4, "block_size": 128, "text_vocab_size": 512}


@pytest.fixture(scope="module")
def run_config(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("train")
    path = _write_config(tmp, _write_dataset(tmp / "eps"))
    raw = yaml.safe_load(path.read_text())
    raw["model"] = SMALL
    raw["train"] = {"out": str(tmp / "run"), "batch_size": 4, "warmup_steps": 2, "checkpoint_every": 3}
    raw["trainer"] = {"max_steps": 6, "val_check_interval": 3, "limit_val_batches": 2, "log_every_n_steps": 1}
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def trained(run_config) -> Path:
    """The run of ``run_config`` trained once (6 steps), for every test that reads its outputs, so each
    test also runs alone."""
    return train(load_run_config(run_config), progress=False)


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


def test_overrides_and_unknown_keys(run_config) -> None:
    run = load_run_config(run_config, ["--trainer.max_steps", "9", "--train.lr=3e-4", "--model.n_layer", "3"])
    assert run.trainer["max_steps"] == 9 and run.train.lr == 3e-4 and run.model.n_layer == 3
    raw = yaml.safe_load(run_config.read_text())
    for bad, message in ((["--trainer.max_stepz", "3"], "unknown config key 'trainer.max_stepz'.*max_steps"),
                         (["--train.batchsize", "3"], "unknown config key 'train.batchsize'.*batch_size"),
                         (["--modle.n_layer", "3"], "unknown config section 'modle'.*model"),
                         (["--model.n_layr", "3"], "unknown config key.*n_layr"),
                         (["--data.sources.nope", "{}"], "unknown source 'nope'"),
                         (["--train.lr", "fast"], "'train.lr' must be above 0 .*got 'fast'"),
                         (["--trainer.default_root_dir", "x"], "'trainer.default_root_dir' is set by "
                                                               "gato-mini: use train.out"),
                         (["--trainer.callbacks", "[]"], "'trainer.callbacks' cannot come from a config"),
                         (["--trainer.logger", "comet"], "unknown logger 'comet'; use csv, tensorboard, "
                                                         "wandb"),
                         (["--trainer.logger", "wandb"], "'trainer.logger' wandb needs the wandb package"),
                         (["stray"], "unexpected argument 'stray'")):
        with pytest.raises(ConfigError, match=message):
            parse_run_config(apply_overrides(raw, bad))
    # YAML reads 1e-3 and 2e3 (no dot) as strings: every numeric train option reads them as numbers
    raw["train"] = {**(raw.get("train") or {}), "lr": "1e-3", "batch_size": "2e3", "min_lr": "0"}
    run = parse_run_config(raw)
    assert (run.train.lr, run.train.batch_size, run.train.min_lr) == (1e-3, 2000, 0.0)
    assert isinstance(run.train.batch_size, int)


def test_every_config_file_builds(tmp_path: Path) -> None:
    """Every configs/*.yaml with a model section parses and its model is built (a forward pass runs)."""
    from gato_mini.quickstart import load_config

    root = Path(__file__).resolve().parents[1] / "configs"
    checked = 0
    for f in sorted(root.glob("*.yaml")):
        raw = yaml.safe_load(f.read_text())
        if "model" not in raw:
            continue  # a data config alone (tests/test_sources.py parses those)
        # The quickstart's config is a training config plus its own section.
        run = parse_run_config(load_config(f, tmp_path)[1]) if "quickstart" in raw else load_run_config(f)
        cfg = run.model
        if count_params(cfg) < 50e6:  # build the CPU-sized ones for real
            model = GatoModel(cfg)
            logits = model.logits(torch.zeros(1, 8, dtype=torch.long))
            assert logits.shape == (1, 8, cfg.padded_vocab_size)
        checked += 1
    assert checked >= 2


def test_schedule() -> None:
    lrs = [lr_at(s, 10, 100, 1e-3, 1e-4) for s in range(120)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert lrs[55] < lrs[20] and lrs[100] == pytest.approx(1e-4) and min(lrs) >= 1e-4 - 1e-12


@pytest.mark.parametrize("step_seconds", [0.07, 0.9, 3.1])
def test_a_run_sized_in_time_spends_its_minutes_and_ends_on_time(step_seconds) -> None:
    """A fast day and a slow one: the run of a 60-second budget stops within one step of the end, the
    rate warms up, stays at its peak until the last 20% of the time, and ends at min_lr."""
    now = [0.0]
    budget = TimeBudget(60.0, warmup=5, lr=1e-3, min_lr=1e-4, decay_share=0.2, clock=lambda: now[0])
    budget.start()
    rates, step = [budget.factor(0) * 1e-3], 0
    while True:
        now[0] += step_seconds  # one optimizer step
        budget.tick(budget.elapsed)
        step += 1
        if budget.should_stop():
            break
        rates.append(budget.factor(step) * 1e-3)
    assert 60.0 - 2 * step_seconds <= now[0] <= 60.0, now[0]  # on time, not a step late
    assert step == pytest.approx(60.0 / step_seconds, abs=2)  # every minute spent
    peak = [r for t, r in enumerate(rates) if 5 <= t and (t + 1) * step_seconds < 0.8 * 60]
    assert peak and all(r == pytest.approx(1e-3) for r in peak)
    assert rates[0] == pytest.approx(1e-3 / 5) or step < 5
    if step_seconds < 1:  # enough steps to see the decay reach its floor
        assert rates[:5] == sorted(rates[:5]) and rates[-1] <= 1e-4 + 0.05 * (1e-3 - 1e-4)
        assert all(a >= b for a, b in zip(rates[5:], rates[6:], strict=False))


def _steps_until_stop(budget: TimeBudget, now: list[float]) -> int:
    """Steps of one second each on the clock ``now`` until ``budget`` says stop."""
    budget.start()
    steps = 0
    while not budget.should_stop():
        now[0] += 1.0
        budget.tick(budget.elapsed)
        steps += 1
    return steps


def test_a_resumed_run_sized_in_time_counts_the_time_already_spent() -> None:
    now = [100.0]
    budget = TimeBudget(60.0, warmup=0, lr=1e-3, min_lr=1e-4, clock=lambda: now[0])
    budget.spent = 50.0  # what the interrupted run had spent (its checkpoint says)
    steps = _steps_until_stop(budget, now)
    assert steps == 10 and budget.factor(steps - 1) * 1e-3 == pytest.approx(1e-4)


def test_a_paused_run_follows_the_schedule_of_the_whole_run() -> None:
    """``train.pause_minutes``: the run stops at the pause at the peak rate; resumed (its checkpoint's
    time spent), it goes on with the whole run's schedule and ends at min_lr on time, the steps of both
    parts adding up to the uninterrupted run's."""
    steps_of = _steps_until_stop
    now = [0.0]
    first = TimeBudget(60.0, warmup=0, lr=1e-3, min_lr=1e-4, clock=lambda: now[0], pause=30.0)
    a = steps_of(first, now)
    assert a == 30 and first.factor(a) == pytest.approx(1.0)  # paused at the peak, not decayed
    second = TimeBudget(60.0, warmup=0, lr=1e-3, min_lr=1e-4, clock=lambda: now[0])
    second.spent = first.seen
    b = steps_of(second, now)
    other = [0.0]
    whole = steps_of(TimeBudget(60.0, warmup=0, lr=1e-3, min_lr=1e-4, clock=lambda: other[0]), other)
    assert a + b == whole == 60 and second.factor(a + b - 1) * 1e-3 == pytest.approx(1e-4)
    with pytest.raises(ConfigError, match="'train.pause_minutes' pauses a run sized in time"):
        parse_run_config({"model": "tiny", "data": {"sources": {"text-pydoc": {}}},
                          "train": {"pause_minutes": 1}})


def test_train_sized_in_minutes_stops_on_its_clock(run_config, tmp_path) -> None:
    """``train.minutes`` with no step count: Lightning stops when the minutes are spent, the step cap
    never binds, and the checkpoint keeps the time spent for a resume."""
    run = load_run_config(run_config, ["--train.out", str(tmp_path / "timed"), "--train.minutes", "0.05"])
    del run.trainer["max_steps"]
    run.trainer["val_check_interval"] = 1000
    model_dir = train(run, progress=False)
    ckpt = read_checkpoint(tmp_path / "timed" / "checkpoints" / "last.ckpt")
    assert model_dir.is_dir() and 1 <= ckpt["global_step"] < 100_000
    metrics = next((tmp_path / "timed" / "logs").rglob("metrics.csv"))
    steps = max(int(r["step"]) for r in csv.DictReader(metrics.open()))
    assert ckpt["global_step"] >= steps  # last.ckpt is the end of training, not the last multiple of 3
    assert 0.8 * 3.0 <= ckpt["time_budget_spent"] <= 3.0 + 5.0


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_every_parameter_sits_in_exactly_one_optimizer_group(optimizer) -> None:
    lit = LitGato(model_config(SMALL).to_dict(), ["pydoc"], ["text-pydoc"],
                  TrainOptions(warmup_steps=2, optimizer=optimizer, muon_lr=0.02))
    groups = param_groups(lit.model, optimizer == "muon")
    ids = [id(p) for g in groups.values() for p in g]
    assert len(ids) == len(set(ids)) == sum(1 for p in lit.model.parameters() if p.requires_grad)
    assert bool(groups["muon"]) == (optimizer == "muon")
    assert all(p.dim() == 2 for p in groups["muon"])
    assert any(p is lit.model.wte.weight for p in groups["no_decay"])  # the tied head stays with AdamW
    opt = lit.configure_optimizers()["optimizer"]
    in_opt = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(in_opt) == sorted(ids)


def test_muon_trains_and_its_state_round_trips(run_config, tmp_path) -> None:
    """``train.optimizer: muon`` runs through Lightning, and a resumed run restores both optimizers."""
    run = load_run_config(run_config, ["--train.out", str(tmp_path / "muon"), "--train.optimizer", "muon",
                                       "--trainer.max_steps", "3"])
    train(run, progress=False)
    ckpt = read_checkpoint(tmp_path / "muon" / "checkpoints" / "last.ckpt")
    states = ckpt["optimizer_states"][0]["optimizers"]
    assert len(states) == 2 and all(s["state"] for s in states)  # Muon's momenta and AdamW's moments
    more = load_run_config(run_config, ["--train.out", str(tmp_path / "muon"), "--train.optimizer", "muon",
                                        "--trainer.max_steps", "5"])
    train(more, str(tmp_path / "muon" / "checkpoints" / "last.ckpt"), progress=False)
    assert read_checkpoint(tmp_path / "muon" / "checkpoints" / "last.ckpt")["global_step"] == 5
    with pytest.raises(ConfigError, match="'train.optimizer' must be one of adamw, muon, got 'mun' "
                                          r"\(did you mean 'muon'\?\)"):
        load_run_config(run_config, ["--train.optimizer", "mun"])
    with pytest.raises(ConfigError, match="'train.optimizer: muon' orthogonalizes whole weight matrices and "
                                          "FSDP shards them"):
        load_run_config(run_config, ["--train.optimizer", "muon", "--trainer.strategy", "fsdp"])


def test_precision_auto_is_bf16_where_the_hardware_has_it_and_fp32_elsewhere(run_config, monkeypatch,
                                                                             tmp_path, capsys) -> None:
    from gato_mini.train import run as run_module

    run = load_run_config(run_config, ["--trainer.precision", "auto", "--trainer.accelerator", "cpu"])
    for native, want in ((True, "bf16-mixed"), (False, "32-true")):
        monkeypatch.setattr(run_module, "native_bf16", lambda native=native: native)
        assert run_module.trainer_settings(run, False)["precision"] == want
        assert (run_module.resolve_precision("auto", on_gpu=False)[1] is None) == native
    assert run_module.resolve_precision("32-true", on_gpu=False) == ("32-true", None)  # as given
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert run_module.resolve_precision("auto", on_gpu=True) == (
        "32-true", "precision auto: this GPU has no bf16; training in fp32 (32-true)")
    # what this machine's /proc/cpuinfo says, read for real
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    monkeypatch.undo()
    assert run_module.native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)
    # a CPU without bf16: the run trains in fp32 and says so in one line
    monkeypatch.setattr(run_module, "native_bf16", lambda: False)
    out = tmp_path / "auto"
    run = load_run_config(run_config, ["--trainer.precision", "auto", "--trainer.accelerator", "cpu",
                                       "--trainer.max_steps", "1", "--train.out", str(out)])
    capsys.readouterr()
    trainer, *_ = build(run, progress=True)
    assert trainer.precision == "32-true"
    assert "precision auto: this CPU has no native bf16 (avx512_bf16 or AMX); training in fp32" in \
        capsys.readouterr().err


def test_trainer_logger_choices(run_config, tmp_path) -> None:
    """``--trainer.logger csv`` or ``false`` work (they used to crash with a TypeError traceback)."""
    for value, logs in (("csv", True), ("false", False)):
        out = tmp_path / value
        r = _cli("train", "--config", str(run_config), "--train.out", str(out), "--no-progress",
                 "--trainer.max_steps", "2", "--trainer.logger", value)
        assert r.returncode == 0, r.stderr
        assert any((out / "logs").rglob("metrics.csv")) == logs and (out / "model" / "sources.json").is_file()
        assert "weights_only" not in r.stdout + r.stderr  # no library notice in what a user sees


def test_train_sized_in_target_tokens_stops_at_them_and_counts_them_per_source(run_config, tmp_path) -> None:
    """``train.target_tokens``: the run stops once another step would pass the budget, its schedule
    ends at min_lr, and ``sources.json`` says the target tokens each source was trained on (their sum is
    the checkpoint's count). A run sized in both minutes and tokens is refused."""
    run = load_run_config(run_config, ["--train.out", str(tmp_path / "tok"), "--train.target_tokens", "3000"])
    del run.trainer["max_steps"]
    run.trainer["val_check_interval"] = 1000
    model_dir = train(run, progress=False)
    ckpt = read_checkpoint(tmp_path / "tok" / "checkpoints" / "last.ckpt")
    counts = json.loads((model_dir / "sources.json").read_text())["sources"]
    per_source = {name: entry["target_tokens"] for name, entry in counts.items()}
    total = sum(per_source.values())
    steps = ckpt["global_step"]
    assert set(per_source) == {s.name for s in run.data.sources} and all(n > 0 for n in per_source.values())
    assert total == pytest.approx(sum(ckpt["trained_targets"].values()), abs=len(per_source))
    assert 3000 - 2 * total / steps < total <= 3000  # stopped within a step of the budget, never past it
    assert ckpt["time_budget_spent"] == pytest.approx(total, abs=len(per_source))
    metrics = next((tmp_path / "tok" / "logs").rglob("metrics.csv"))
    lrs = [float(r["train/lr"]) for r in csv.DictReader(metrics.open()) if r.get("train/lr")]
    assert lrs[-1] < run.train.lr  # decayed at the end of the tokens
    with pytest.raises(ConfigError, match="'train.minutes' or in 'train.target_tokens', not both"):
        parse_run_config({"model": "tiny", "data": {"sources": {"text-pydoc": {}}},
                          "train": {"minutes": 1, "target_tokens": 1000}})


def test_train_export_load_and_resume(run_config, trained, tmp_path) -> None:
    run = load_run_config(run_config)
    model_dir = trained
    out = Path(run.train.out)
    assert (out / "config.yaml").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    metrics = (next((out / "logs").rglob("metrics.csv"))).read_text()
    for key in ("train/loss", "val/loss", "train/tokens_per_s", "train/lr", "train/loss_actions",
                "train/loss_captions", "train/loss_text", "train/loss_demo"):
        assert key in metrics.splitlines()[0], key
    # export -> load: identical logits
    model, tok, tasks = load_model(model_dir)
    assert tasks["sources"]["demo"]["fields"]["action"]["n"] == 3
    ckpt = read_checkpoint(out / "checkpoints" / "last.ckpt")
    trained = GatoModel(model.cfg).eval()
    trained.load_state_dict({k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()})
    x = torch.randint(0, 500, (2, 16))
    assert torch.equal(model.logits(x), trained.logits(x))
    # resume from step 3: continues at step 3 with the saved optimizer state
    step3 = out / "checkpoints" / "step3.ckpt"
    c3 = read_checkpoint(step3)
    assert c3["global_step"] == 3
    resumed = load_run_config(run_config, ["--train.out", str(tmp_path / "resumed"),
                                           "--trainer.max_steps", "4"])

    trainer, lit, dm = build(resumed, progress=False)
    seen = {}

    def on_start(*_):
        seen["step"] = trainer.global_step
        opt = trainer.optimizers[0]
        saved = c3["optimizer_states"][0]["state"]
        live = opt.state_dict()["state"]
        seen["same_opt"] = all(torch.equal(saved[k]["exp_avg"], live[k]["exp_avg"]) for k in saved)

    lit.on_train_start = on_start
    trainer.fit(lit, datamodule=dm, ckpt_path=str(step3), weights_only=True)
    assert seen == {"step": 3, "same_opt": True}
    assert trainer.global_step == 4


def test_the_heldout_benchmark_compares_models_on_the_same_windows(run_config, trained, tmp_path) -> None:
    """``benchmarks/heldout.py``: a copy of a model against the model is a ratio of exactly 1 on every
    source (the same windows for both), and each loss is a positive, finite number per source."""
    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "heldout.py"
    copy = shutil.copytree(trained, tmp_path / "copy")
    out = tmp_path / "heldout.json"
    subprocess.run([sys.executable, str(bench), "--config", str(run_config), "--model", str(trained),
                    "--model", str(copy), "--windows", "4", "--out", str(out)],
                   check=True, capture_output=True, text=True)
    result = json.loads(out.read_text())
    loss = result["loss"][str(trained)]
    sources = set(yaml.safe_load(Path(run_config).read_text())["data"]["sources"])
    assert "demo" in loss and set(loss) <= sources and all(math.isfinite(v) and v > 0 for v in loss.values())
    assert result["loss"][str(copy)] == loss and result["over_first"] == {str(copy): dict.fromkeys(loss, 1.0)}


def test_fresh_run_never_continues_an_earlier_one(run_config, tmp_path) -> None:
    """Without --resume, a folder with an earlier run's checkpoints is refused (Lightning would
    silently load its last.ckpt); with --resume it continues; a new folder starts at step 0."""
    out = tmp_path / "again"
    first = _cli("train", "--config", str(run_config), "--train.out", str(out), "--no-progress",
                 "--trainer.max_steps", "3")
    assert first.returncode == 0, first.stderr
    before = {p.name: p.stat().st_mtime_ns for p in (out / "checkpoints").iterdir()}
    r = _cli("train", "--config", str(run_config), "--train.out", str(out), "--no-progress",
             "--trainer.max_steps", "6", "--model.n_embd", "128")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "checkpoint(s) of an earlier run; pass --resume" in r.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (out / "checkpoints").iterdir()} == before
    r = _cli("train", "--config", str(run_config), "--train.out", str(out), "--no-progress",
             "--trainer.max_steps", "5", "--resume")
    assert r.returncode == 0, r.stderr
    assert read_checkpoint(out / "checkpoints" / "last.ckpt")["global_step"] == 5


def test_bad_checkpoints_and_model_folders(run_config, trained, tmp_path) -> None:
    out = tmp_path / "bad"
    out.mkdir()
    evil = out / "evil.ckpt"

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(out / "pwned"),))

    torch.save({"state_dict": {}, "hyper_parameters": {}, "x": Payload()}, evil)
    with pytest.raises(FileFormatError, match="refusing to load .*evil.ckpt"):
        read_checkpoint(evil)
    assert not (out / "pwned").exists()
    (out / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(FileFormatError, match="not a readable checkpoint"):
        read_checkpoint(out / "junk.ckpt")
    r = _cli("train", "--config", str(run_config), "--ckpt-path", str(evil), "--no-progress",
             "--train.out", str(out / "run"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "refusing to load" in r.stderr and not (out / "run").exists()
    # a checkpoint of another architecture
    run = load_run_config(run_config)
    ckpt = Path(run.train.out) / "checkpoints" / "last.ckpt"
    r = _cli("train", "--config", str(run_config), "--ckpt-path", str(ckpt), "--model.n_embd", "128",
             "--no-progress", "--train.out", str(out / "run2"))
    assert r.returncode == 2 and "another architecture: n_embd=64" in r.stderr, r.stderr
    assert not (out / "run2").exists()
    # shards built for another vocabulary: refused, nothing rebuilt or written
    index = Path(run.data.root) / "data.json"
    before = index.read_bytes()
    r = _cli("train", "--config", str(run_config), "--model.text_vocab_size", "1024", "--no-progress",
             "--train.out", str(out / "run3"))
    assert r.returncode == 2, r.stderr
    assert "built for another model config (text_vocab_size=512" in r.stderr, r.stderr
    assert index.read_bytes() == before and not (out / "run3").exists()
    # model folders: missing and corrupt files
    model = GatoModel(model_config(SMALL))
    from gato_mini.model.export import export_model

    tok = Path(run.data.root) / "tokenizer.json"
    folder = export_model(out / "m", model, tok, {"sources": {}})
    load_model(folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(FileFormatError, match="model.safetensors is corrupt"):
        load_model(folder)
    (folder / "sources.json").unlink()
    with pytest.raises(FileFormatError, match="lacks sources.json"):
        load_model(folder)


def _two_process(run_config, out: Path, strategy: str) -> subprocess.CompletedProcess:
    return _cli("train", "--config", str(run_config), "--no-progress", "--train.out", str(out),
                "--train.record_batches", "true", "--trainer.strategy", strategy, "--trainer.devices", "2",
                "--trainer.accelerator", "cpu", "--trainer.max_steps", "3",
                "--trainer.limit_val_batches", "0")


def test_two_process_ddp_and_fsdp_read_different_data_and_export_the_same_model(run_config, tmp_path) -> None:
    """DDP on 2 CPU processes: the ranks read different batches and end with identical weights. FSDP on
    2 CPU processes (torch's FSDP over gloo; Lightning itself refuses ``fsdp`` without a GPU): the same
    batches, gradients clipped over all shards, and an export gathered from the shards that loads in
    one process and gives the DDP model's logits (to float rounding: the two reduce in other orders)."""
    ddp, fsdp = tmp_path / "ddp", tmp_path / "fsdp"
    r = _two_process(run_config, ddp, "ddp")
    assert r.returncode == 0, r.stderr[-3000:]
    audit = ddp / "audit"
    b0 = (audit / "batches-rank0.txt").read_text().split()
    b1 = (audit / "batches-rank1.txt").read_text().split()
    assert len(b0) == len(b1) == 3 and not set(b0) & set(b1)
    assert (audit / "weights-rank0.txt").read_text() == (audit / "weights-rank1.txt").read_text()
    r = _two_process(run_config, fsdp, "fsdp")
    assert r.returncode == 0, r.stderr[-3000:]
    for rank in (0, 1):
        name = f"batches-rank{rank}.txt"
        assert (fsdp / "audit" / name).read_text() == (audit / name).read_text()
    a, _, _ = load_model(ddp / "model")
    b, _, _ = load_model(fsdp / "model")
    assert a.state_dict().keys() == b.state_dict().keys()
    x = torch.randint(0, a.cfg.text_vocab_size, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        la, lb = a.logits(x), b.logits(x)
    init = _cli("train", "--config", str(run_config), "--no-progress", "--train.out", str(tmp_path / "zero"),
                "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0", "--train.lr", "1e-12",
                "--train.min_lr", "0")
    assert init.returncode == 0, init.stderr[-2000:]
    c, _, _ = load_model(tmp_path / "zero" / "model")  # the initial weights (one step of lr 1e-12)

    def gap(m, n) -> float:
        pairs = zip(m.parameters(), n.parameters(), strict=True)
        return sum((p - q).norm().item() ** 2 for p, q in pairs) ** 0.5

    # Adam's first steps are about lr x sign(gradient): a gradient near zero whose sign the reduction
    # order flips moves that weight the other way, so the two runs differ by far less than they moved.
    # A lost shard or unsynced gradients would make the gap as large as the motion.
    assert gap(a, b) < 0.05 * gap(a, c) and gap(a, c) > 0.01, (gap(a, b), gap(a, c))
    assert (la - lb).abs().max().item() < 0.05 * (la - c.logits(x).detach()).abs().max().item()
    print(f"FSDP vs DDP: weights {gap(a, b):.2e} apart, {gap(a, c):.2e} from the start; "
          f"logits {(la - lb).abs().max().item():.2e} apart")


def test_missing_episodes_stop_before_anything_is_written(tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"model": SMALL, "data": {"root": "data", "episodes": "eps",
                                                            "sources": {"atari-pong": {}}},
                                   "train": {"out": "run"}}))
    r = _cli("train", "--config", str(cfg), "--no-progress", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "gato-mini train: error: source 'atari-pong': dataset not found: eps/atari-pong/expert-v0; "
        "record it with `gato-mini collect --task atari-pong --episodes N --out eps`"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


@pytest.mark.parametrize("bad", [float("nan"), -3, "many"])
@pytest.mark.parametrize("path, named", [
    (("train", "lr"), "'train.lr'"),
    (("train", "batch_size"), "'train.batch_size'"),
    (("data", "val_fraction"), "'data.val_fraction'"),
    (("data", "val_windows"), "'data.val_windows'"),
    (("data", "sources", "caption-shapes", "weight"), "source 'caption-shapes': weight"),
    (("data", "sources", "caption-shapes", "count"), "source 'caption-shapes': 'count'"),
    (("trainer", "max_steps"), "'trainer.max_steps'"),
    (("model", "n_layer"), "'model.n_layer'"),
    (("model", "dropout"), "'model.dropout'"),
    (("quickstart", "eval", "episodes"), "quickstart.eval.episodes"),
    (("quickstart", "collect", "control-pendulum", "episodes"),
     "quickstart.collect.control-pendulum.episodes"),
])
def test_every_config_section_refuses_bad_numbers_alike(tmp_path: Path, path: tuple, named: str, bad) -> None:
    """A NaN, a negative number or a word where a number goes: one ConfigError naming the key, whichever
    section (model, data, a source, train, trainer, the quickstart plan) holds it."""
    from gato_mini.quickstart import load_config

    raw = {"model": {"name": "tiny", "n_layer": 2},
           "data": {"sources": {"caption-shapes": {"count": 40, "val_count": 8}}},
           "train": {"lr": 1e-3}, "trainer": {"max_steps": 3},
           "quickstart": {"collect": {"control-pendulum": {"episodes": 2}}, "eval": {"episodes": 2}}}
    at = raw
    for key in path[:-1]:
        at = at[key]
    at[path[-1]] = bad
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=re.escape(named)):
        parse_run_config(load_config(f, tmp_path)[1])
