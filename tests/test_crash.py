"""Crashes lose nothing: real SIGKILLs of `train` and `prepare`, resume at the same step, optimizer
state and data position, and interrupted writes that leave the previous good file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from _data import _write_config, _write_dataset

from gato_mini.data.datacfg import load_data_config
from gato_mini.data.prepare import check_shards
from gato_mini.errors import GatoError
from gato_mini.model.export import export_model, load_model, read_checkpoint
from gato_mini.train.config import load_run_config
from gato_mini.train.run import latest_checkpoint, train

EXE = shutil.which("gato-mini") or str(Path(sys.executable).parent / "gato-mini")
MODEL = {"name": "tiny", "n_layer": 2, "n_embd": 64, "n_head": 4, "block_size": 128, "text_vocab_size": 512}
STEPS, EVERY = 40, 10


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("crash")
    path = _write_config(tmp, _write_dataset(tmp / "eps"))
    raw = yaml.safe_load(path.read_text())
    raw["model"] = MODEL
    raw["train"] = {"out": str(tmp / "reference"), "batch_size": 8, "warmup_steps": 2,
                    "checkpoint_every": EVERY, "record_batches": True}
    raw["trainer"] = {"max_steps": STEPS, "val_check_interval": 20, "limit_val_batches": 1,
                      "log_every_n_steps": 5}
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def reference(config) -> Path:
    """An uninterrupted run: its batch hashes and final weights are what a resumed run must match."""
    run = load_run_config(config)
    train(run, progress=False)
    return Path(run.train.out)


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.is_file() else []


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore"}


def test_resume_continues_the_same_data_stream(config, reference, tmp_path) -> None:
    """Resuming from step 10 draws exactly the batches an uninterrupted run drew after step 10 and ends
    with bit-identical weights (same step, optimizer state, schedule and data position)."""
    ref_batches = _lines(reference / "audit" / "batches-rank0.txt")
    assert len(ref_batches) == STEPS and len(set(ref_batches)) == STEPS
    out = tmp_path / "resumed"
    run = load_run_config(config, ["--train.out", str(out)])
    train(run, str(reference / "checkpoints" / f"step{EVERY}.ckpt"), progress=False)
    assert _lines(out / "audit" / "batches-rank0.txt") == ref_batches[EVERY:]
    assert _lines(out / "audit" / "weights-rank0.txt") == _lines(reference / "audit" / "weights-rank0.txt")


def test_sigkill_during_training_then_resume(config, reference, tmp_path) -> None:
    """A real `gato-mini train` is killed with SIGKILL mid-run; `--resume` picks its newest checkpoint,
    loses fewer than `checkpoint_every` steps and finishes with the uninterrupted run's weights."""
    out = tmp_path / "killed"
    audit = out / "audit" / "batches-rank0.txt"
    cmd = [EXE, "train", "--config", str(config), "--no-progress", "--train.out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    try:
        deadline = time.monotonic() + 300
        while len(_lines(audit)) < EVERY + 5:  # past the first checkpoint, before the second
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "training made no progress"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    started = len(_lines(audit))  # batches begun before the kill
    assert EVERY < started < STEPS and not (out / "model").exists()
    ckpt = latest_checkpoint(out / "checkpoints")
    saved = int(read_checkpoint(ckpt)["global_step"])
    assert saved >= EVERY and started - saved <= EVERY  # lost less than one checkpoint interval

    t0 = time.perf_counter()
    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=600, env=_env())
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from {ckpt}" in resumed.stderr
    seconds = time.perf_counter() - t0
    batches = _lines(audit)
    ref = _lines(reference / "audit" / "batches-rank0.txt")
    assert batches[:started] == ref[:started]  # before the kill
    assert batches[started:] == ref[saved:]  # after the resume: on from the checkpoint's step
    assert _lines(out / "audit" / "weights-rank0.txt") == _lines(reference / "audit" / "weights-rank0.txt")
    print(f"killed after {started} batches; resumed from step {saved} (lost {started - saved} steps); "
          f"the resumed run took {seconds:.1f} s for {STEPS - saved} steps")
    load_model(out / "model")


def test_resume_with_no_checkpoint_starts_afresh_and_both_flags_are_refused(config, tmp_path) -> None:
    out = tmp_path / "fresh"
    r = subprocess.run([EXE, "train", "--config", str(config), "--no-progress", "--train.out", str(out),
                        "--resume", "--trainer.max_steps", "2"], capture_output=True, text=True, env=_env(),
                       timeout=600)
    assert r.returncode == 0 and "starting afresh" in r.stderr, r.stderr[-2000:]
    r = subprocess.run([EXE, "train", "--config", str(config), "--resume", "--ckpt-path", "x.ckpt"],
                       capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "gato-mini train: error: give --resume or --ckpt-path, not both"]


def test_latest_checkpoint_skips_torn_and_foreign_files(reference, tmp_path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for step in (10, 20):
        shutil.copy(reference / "checkpoints" / f"step{step}.ckpt", folder / f"step{step}.ckpt")
    # a write killed half-way (a torn file under a checkpoint's name) and a pickle are both skipped
    whole = (reference / "checkpoints" / "step30.ckpt").read_bytes()
    (folder / "step30.ckpt").write_bytes(whole[: len(whole) // 2])
    (folder / "evil.ckpt").write_bytes(b"\x80\x04cos\nsystem\n.")
    assert latest_checkpoint(folder) == folder / "step20.ckpt"
    assert latest_checkpoint(tmp_path / "missing") is None


def test_export_killed_between_its_renames_keeps_a_whole_model(reference, tmp_path) -> None:
    model, _, tasks = load_model(reference / "model")
    out = tmp_path / "model"
    shutil.copytree(reference / "model", out)
    tok = reference / "model" / "tokenizer.json"
    # the state a kill leaves between "model -> .old-model" and ".tmp-model -> model"
    export_model(tmp_path / "staged", model, tok, {"sources": {}, "marker": 1})
    out.rename(tmp_path / ".old-model")
    (tmp_path / "staged").rename(tmp_path / ".tmp-model")
    _, _, loaded = load_model(out)  # the swap is finished, the new folder is in place
    assert loaded.get("marker") == 1 and not (tmp_path / ".old-model").exists()
    # a kill while the new folder is still being written leaves the previous folder untouched
    (tmp_path / ".tmp-model").mkdir()
    (tmp_path / ".tmp-model" / "model.safetensors").write_bytes(b"half")
    export_model(out, model, tok, tasks)
    assert load_model(out)[2] == tasks


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = (task / "children").read_text().split() if (task / "children").is_file() else []
        found += [int(c) for c in children]
    return found


def _gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "\nState:\tZ" in status.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_during_prepare_leaves_no_complete_looking_shard(tmp_path) -> None:
    """`prepare` (two worker processes) is killed mid-build: no shard of the killed build looks complete,
    no worker lives on, training refuses the data, and a rerun finishes the job."""
    path = _write_config(tmp_path, _write_dataset(tmp_path / "eps"), workers=2)
    raw = yaml.safe_load(path.read_text())
    raw["data"]["sources"]["caption-shapes"].update(count=6000, val_count=600)
    path.write_text(yaml.safe_dump(raw))
    root = Path(raw["data"]["root"])
    cmd = [EXE, "prepare", "--config", str(path), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 300
        # kill once the shapes shard is being written (its temporary folder exists)
        while not list((root / "shards" / "caption-shapes").glob(".tmp-train@*")):
            assert proc.poll() is None, "prepare ended before it could be killed"
            assert time.monotonic() < deadline
            workers = _children(proc.pid) or workers
            time.sleep(0.01)
        workers = _children(proc.pid) or workers
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while not all(_gone(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers and all(_gone(w) for w in workers), "a prepare worker outlived its parent"
    assert not (root / "shards" / "caption-shapes" / "train" / "meta.json").exists()
    data, cfg = load_data_config(path)
    with pytest.raises(GatoError, match="prepare"):
        check_shards(data, cfg)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=_env())
    assert again.returncode == 0, again.stderr[-2000:]
    check_shards(data, cfg)
    leftovers = [p.name for p in (root / "shards").rglob(".*") if p.name.startswith((".tmp-", ".old-"))]
    assert leftovers == []


def test_checkpoints_hold_only_tensors_and_plain_values(reference) -> None:
    """What a resume reads back is loadable with weights_only=True (no pickled objects)."""
    ckpt = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == STEPS and ckpt["optimizer_states"]


def test_disk_full_during_prepare_is_one_line_and_leaves_no_partial_shard(tmp_path, monkeypatch,
                                                                          capsys) -> None:
    """ENOSPC while writing a shard (simulated: a write raises it): one line, exit 2, no partial shard;
    once there is space again the same command finishes."""
    import errno

    from gato_mini.cli import main
    from gato_mini.data.shards import ShardWriter

    path = _write_config(tmp_path, _write_dataset(tmp_path / "eps"), workers=1)
    real_add, calls = ShardWriter.add, []

    def add(self, seq):
        calls.append(1)
        if len(calls) == 50:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.tmp / "tokens.bin"))
        return real_add(self, seq)

    monkeypatch.setattr(ShardWriter, "add", add)
    assert main(["prepare", "--config", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gato-mini prepare: error: no space left on the device: "), err
    root = tmp_path / "out"
    assert not [p for p in root.rglob("*") if p.name.startswith(".tmp-")]
    monkeypatch.setattr(ShardWriter, "add", real_add)
    assert main(["prepare", "--config", str(path), "--no-progress"]) == 0
    data, cfg = load_data_config(path)
    check_shards(data, cfg)


def test_an_exception_inside_training_saves_a_checkpoint_to_resume_from(config, tmp_path) -> None:
    """A crash inside `fit` (here: a callback raising at step 7) leaves checkpoints/interrupted.ckpt at
    the step reached, which `--resume` picks over the older step checkpoints."""
    import lightning as L

    from gato_mini.train import run as run_module

    class Boom(L.Callback):
        def on_train_batch_start(self, trainer, *args) -> None:
            if trainer.global_step == 7:
                raise RuntimeError("boom")

    run = load_run_config(config, ["--train.out", str(tmp_path / "boom"), "--train.record_batches", "false"])
    real_build = run_module.build

    def build(run, progress=True, **kw):
        trainer, lit, dm = real_build(run, progress, **kw)
        trainer.callbacks.append(Boom())
        return trainer, lit, dm

    run_module.build = build
    try:
        with pytest.raises(RuntimeError, match="boom"):
            train(run, progress=False)
    finally:
        run_module.build = real_build
    ckpt = latest_checkpoint(tmp_path / "boom" / "checkpoints")
    assert ckpt is not None and ckpt.name == "interrupted.ckpt"
    assert read_checkpoint(ckpt)["global_step"] == 7


def test_an_exception_before_the_first_step_leaves_no_checkpoint(config, tmp_path) -> None:
    """A run stopped before it trained a step (here: its data folder held by another run) leaves no
    interrupted.ckpt, so the same command runs once the folder is free instead of being refused as
    "an earlier run"."""
    out = tmp_path / "held"
    run = load_run_config(config, ["--train.out", str(out), "--train.record_batches", "false"])
    hold = (f"import time\nfrom gato_mini.procs import folder_lock\nwith folder_lock({str(run.data.root)!r}, "
            "'prepare'):\n    print('held', flush=True)\n    time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(GatoError, match="in use by another gato-mini run"):
            train(run, progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert not list(out.rglob("*.ckpt"))
