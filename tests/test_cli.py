"""The gato-mini command as a user runs it: subprocesses of the real console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

EXE = shutil.which("gato-mini") or os.path.join(os.path.dirname(sys.executable), "gato-mini")


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "120", **(env or {})})


def test_help_lists_subcommands():
    out = run("--help")
    assert out.returncode == 0
    for name in ("tokens", "sizes"):
        assert name in out.stdout


def test_no_command_prints_help_and_fails():
    out = run()
    assert out.returncode == 2 and "COMMAND" in out.stdout


def test_tokens_shows_every_range():
    from gato_mini.config import GatoConfig

    out = run("tokens", "--size", "small")
    assert out.returncode == 0
    cfg = GatoConfig.from_name("small")
    ranges = [(0, cfg.text_vocab_size), (cfg.discrete_offset, cfg.discrete_offset + cfg.discrete_bins),
              (cfg.continuous_offset, cfg.continuous_offset + cfg.continuous_bins),
              (cfg.special_offset, cfg.vocab_size)]
    for lo, hi in ranges:
        assert f"[{lo}, {hi})" in out.stdout, (lo, hi)
    for text in ("<|sep|>", "<|patch|>"):
        assert text in out.stdout


def test_tokens_counts_a_real_tokenizer(tmp_path, text_tokenizer):
    path = tmp_path / "tokenizer.json"
    text_tokenizer.save(path)
    out = run("tokens", "--tokenizer", str(path))
    assert out.returncode == 0 and f"{text_tokenizer.n_text} used by" in out.stdout


def test_sizes_lists_gato_shapes():
    """Every row's numbers equal the config's, and its parameter count the built model's (on the meta
    device, so even 1.18B costs nothing)."""
    import torch

    from gato_mini.config import NAMED_SIZES, GatoConfig
    from gato_mini.model import GatoModel

    out = run("sizes", env={"COLUMNS": "200"})
    assert out.returncode == 0
    rows = {}
    for line in out.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 8 and cells[0] in NAMED_SIZES:
            rows[cells[0]] = cells[1:]
    assert list(rows) == list(NAMED_SIZES)
    for name, cells in rows.items():
        cfg = GatoConfig.from_name(name)
        shape = [cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.intermediate_size, cfg.block_size,
                 cfg.text_vocab_size]
        assert [int(c) for c in cells[:6]] == shape, name
        with torch.device("meta"):
            params = GatoModel(cfg).num_params()
        assert cells[6] == f"{params / 1e6:.1f}M", (name, cells[6], params)
    assert rows["gato-79m"][:3] == ["8", "768", "24"]  # Gato's Table 1


@pytest.mark.parametrize(("args", "message"), [
    (("tokens", "--size", "huge"), "unknown model size 'huge'"),
    (("tokens", "--tokenizer", "/no/such/tokenizer.json"), "tokenizer file not found"),
])
def test_user_errors_are_one_line_exit_2(args, message):
    out = run(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("gato-mini tokens: error:")
    assert "Traceback" not in out.stderr


def test_debug_shows_the_traceback():
    out = run("--debug", "tokens", "--size", "huge")
    assert out.returncode != 0 and "Traceback" in out.stderr
    out = run("tokens", "--size", "huge", env={"GATO_MINI_DEBUG": "1"})
    assert "Traceback" in out.stderr


def test_corrupt_tokenizer_file(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_bytes(b"\x00\xff garbage")
    out = run("tokens", "--tokenizer", str(bad))
    assert out.returncode == 2 and "tokenizer file" in out.stderr and "Traceback" not in out.stderr


def test_tasks_lists_every_task_with_references():
    from gato_mini.envs.registry import TASKS

    out = run("tasks")
    assert out.returncode == 0
    for name in TASKS:
        assert name in out.stdout
    assert "80x80x1 image" in out.stdout and "mu-law" in out.stdout


def test_collect_then_refuse_overwrite(tmp_path):
    args = ("collect", "--task", "control-pendulum", "--episodes", "2", "--max-steps", "20", "--out",
            str(tmp_path), "--no-progress")
    out = run(*args)
    assert out.returncode == 0, out.stderr
    assert "mean return" in out.stdout and str(tmp_path / "control-pendulum" / "expert-v0") in out.stdout
    again = run(*args)
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    assert run(*args, "--overwrite").returncode == 0


@pytest.mark.parametrize(("args", "message"), [
    (("collect", "--task", "atari-pongg", "--episodes", "1", "--out", "x"), "did you mean 'atari-pong'"),
    (("collect", "--task", "atari-pong", "--episodes", "0", "--out", "x"), "--episodes must be positive"),
    (("collect", "--task", "atari-pong", "--policy", "human", "--episodes", "1", "--out", "x"),
     "unknown policy"),
    (("scores", "--task", "nope"), "unknown task 'nope'"),
])
def test_collect_and_scores_user_errors(tmp_path, args, message):
    out = run(*args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x").exists()


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = run("collect", "--task", "control-pendulum", "--episodes", "1", "--out", str(blocker / "sub"))
    assert out.returncode == 2 and "cannot write" in out.stderr


def test_scores_measures_and_compares(tmp_path):
    out = run("scores", "--task", "control-pendulum", "--episodes", "2", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "random" in out.stdout and "expert" in out.stdout and "normalized" in out.stdout


@pytest.mark.parametrize("command", ["train", "prepare"])
def test_a_yaml_tag_that_would_run_code_is_refused(tmp_path, command):
    marker = tmp_path / "pwned"
    config = tmp_path / "evil.yaml"
    config.write_text(f'model: tiny\ndata: !!python/object/apply:os.system ["touch {marker}"]\n')
    r = subprocess.run([EXE, command, "--config", str(config)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "evil.yaml:2: not valid YAML" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and not marker.exists()  # one line, and the payload never ran


FOREIGN = ("warning", "warn(", "tip:", "💡", "gpu available", "tpu available", "hpu available",
           "checkpoint_connector", "exists and is not empty", "flops", "epoch 0/", "v_num", "leafspec",
           "litlogger", "deprecat", "settotalmass", "you are using", "consider", "lightning.pytorch")


def test_a_fresh_train_collect_tasks_and_eval_print_only_gato_minis_own_lines(tmp_path) -> None:
    """Everything a user sees is ours: no library's info line, tip or warning, with the progress bars
    on (a resumed run too, which is where Lightning warns about checkpoints)."""
    import yaml

    config = tmp_path / "quiet.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "tiny", "n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 64,
                  "text_vocab_size": 300},
        "data": {"episodes": str(tmp_path / "eps"), "val_windows": 1,
                 "sources": {"mujoco-halfcheetah": {}, "caption-shapes": {"count": 20, "val_count": 4}}},
        "train": {"out": str(tmp_path / "run"), "batch_size": 2, "checkpoint_every": 2},
        "trainer": {"max_steps": 3, "val_check_interval": 3, "limit_val_batches": 1,
                    "log_every_n_steps": 1}}))
    steps = [("tasks",),
             ("collect", "--task", "mujoco-halfcheetah", "--episodes", "2", "--max-steps", "8", "--out",
              str(tmp_path / "eps"), "--policy", "expert"),
             ("train", "--config", str(config)),
             ("train", "--config", str(config), "--resume", "--trainer.max_steps", "5"),
             ("eval", "--model", str(tmp_path / "run" / "model"), "--source", "mujoco-halfcheetah",
              "--task", "caption-shapes", "--episodes", "2", "--max-steps", "5", "--num-envs", "2")]
    for args in steps:
        r = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           env={k: v for k, v in os.environ.items()
                                if k not in ("PYTHONWARNINGS", "COLUMNS")})
        assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
        for line in (r.stdout + r.stderr).splitlines():
            assert not any(f in line.lower() for f in FOREIGN), (args, line)
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in names and not [n for n in names if n.startswith("last-v")], names  # rewritten
    # --verbose gives the libraries their voice back
    r = subprocess.run([EXE, "--verbose", "train", "--config", str(config), "--out", str(tmp_path / "loud"),
                        "--no-progress"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0 and "GPU available" in r.stdout + r.stderr, r.stderr[-2000:]


def test_train_help_lists_the_recipes_and_flags_are_spelled_alike(tmp_path) -> None:
    from gato_mini.config_files import recipes

    out = run("train", "--help")
    assert out.returncode == 0
    for name in recipes():
        assert f"  {name} " in out.stdout, name
    assert "--ckpt-path" in out.stdout and "--out" in out.stdout and "_" not in \
        "".join(w for w in out.stdout.split() if w.startswith("--") and "." not in w)
    # a typo on the command line is the command line's, not the config file's
    r = subprocess.run([EXE, "train", "--config", "tiny", "--train.lrr", "1"], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == ("gato-mini train: error: on the command line: unknown config key "
                                "'train.lrr' (did you mean 'lr'?)"), r.stderr


def test_names_a_user_types_survive_80_columns_and_pipes() -> None:
    """`gato-mini tasks | grep atari-breakout` finds its row, and on an 80-column terminal no task name
    is cut; the bars keep their counts and times at 80 columns."""
    import io

    from rich.console import Console

    from gato_mini.envs.registry import TASKS
    from gato_mini.reports.tables import print_tasks
    from gato_mini.terminal import progress_bar

    piped = subprocess.run([EXE, "tasks"], capture_output=True, text=True, timeout=120)
    assert any("atari-breakout" in line and "5000" in line for line in piped.stdout.splitlines())
    narrow = io.StringIO()
    print_tasks(Console(file=narrow, width=80, force_terminal=True, color_system=None))
    text = narrow.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    for name in TASKS:
        assert name in text, name
    out = io.StringIO()
    bar = progress_bar("episodes, mean return {task.fields[note]}",
                       console=Console(file=out, width=80, force_terminal=True, color_system=None))
    with bar:
        t = bar.add_task("control-pendulum", total=16, note="-1234.56")
        bar.update(t, advance=3)
    shown = [line for line in out.getvalue().splitlines() if "3/16" in line]
    assert shown, out.getvalue()
    last = shown[-1]
    assert "control-pendulum" in last and "-1234.56" in last and "0:00:0" in last, last


def test_scores_out_writes_the_users_file_and_update_never_writes_an_installed_package(
        tmp_path, monkeypatch, capsys) -> None:
    import yaml

    from gato_mini.cli import main
    from gato_mini.envs import registry

    packaged = registry.references_path().read_bytes()
    mine = tmp_path / "refs" / "mine.yaml"
    mine.parent.mkdir()
    mine.write_text("someone-else: {random: {mean: 1.0, std: 0.0, episodes: 1, seed: 0, max_steps: 5}}\n")
    args = ["scores", "--task", "control-pendulum", "--episodes", "1", "--max-steps", "5", "--policy",
            "random", "--no-progress"]
    assert main([*args, "--out", str(mine)]) == 0
    stored = yaml.safe_load(mine.read_text())
    assert set(stored) == {"someone-else", "control-pendulum"}  # the other entry is kept
    # measured below the task's 200-step cap: filed apart, where an evaluation at that cap finds it
    assert set(stored["control-pendulum"]) == {"at_cap"}
    assert stored["control-pendulum"]["at_cap"]["cap=5 seed=0 episodes=1"]["random"]["max_steps"] == 5
    assert registry.load_references(mine)["control-pendulum"] == {}
    capped = registry.load_capped_references(mine)["control-pendulum"]["cap=5 seed=0 episodes=1"]
    assert capped["random"].max_steps == 5
    assert registry.references_path().read_bytes() == packaged  # the packaged file is untouched
    # an installed package (site-packages) is never written, even with --update
    fake = tmp_path / "site-packages" / "gato_mini" / "envs" / "references.yaml"
    monkeypatch.setattr(registry, "references_path", lambda: fake)
    capsys.readouterr()
    assert main([*args, "--update"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only a source checkout" in err[0] and "--out FILE" in err[0], err
    assert not fake.exists()
    # a checkout's envs/references.yaml is the one --update may rewrite
    monkeypatch.undo()
    assert registry.packaged_references_writable() == registry.references_path()
