"""`gato-mini quickstart` end to end on a fast config: every report section, resume, bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from gato_mini.config import model_config
from gato_mini.quickstart import STAGES, default_config, load_config

EXE = shutil.which("gato-mini") or str(Path(sys.executable).parent / "gato-mini")
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "datacollector-cartpole"
FAST = {
    "quickstart": {
        "collect": {"atari-pong": {"episodes": 2, "max_steps": 40, "policy": "tracker", "noise": 0.2},
                    "atari-breakout": {"episodes": 1, "max_steps": 30},
                    "control-pendulum": {"episodes": 3, "max_steps": 30},
                    "mujoco-reacher": {"episodes": 3}},
        "eval": {"episodes": 2, "num_envs": 2, "caption_images": 6,
                 "max_steps": {"atari-pong": 20, "atari-breakout": 20, "control-pendulum": 30}},
        "chat": ["hello", "how are you?"],
        "reserve_minutes": 0.5},
    "model": {"name": "tiny", "n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 128,
              "text_vocab_size": 300},
    "data": {"val_windows": 2, "sources": {
        "atari-pong": {}, "atari-breakout": {}, "control-pendulum": {}, "mujoco-reacher": {},
        "caption-shapes": {"count": 200, "val_count": 12}, "text-pydoc": {"max_modules": 3},
        "chat-chatterbot": {"weight": 0.5},
        # a user's env, outside the registry: Minari's own DataCollector recorded it (issue 18)
        "cartpole-dc": {"kind": "episodes", "dataset": str(FIXTURE)}}},
    "train": {"batch_size": 4, "checkpoint_every": 4, "warmup_steps": 2},
    "trainer": {"max_steps": 8, "log_every_n_steps": 1, "limit_val_batches": 2},
}
SECTIONS = ("## Scores", "figures/scores.png", "## Training", "figures/loss.png", "## Samples",
            "### caption-shapes: captions", "caption-shapes-samples.png", "### atari-pong: an episode",
            "atari-pong.gif", "### chat-chatterbot: replies", "## Chat",
            "## Time per stage", "## How this was made", "| torch |")


def _run(out: Path, config: Path, *extra: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, "quickstart", "--out", str(out), "--config", str(config), "--minutes", "10",
                           "--no-progress", *extra], capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def fast_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("qsconfig") / "fast.yaml"
    path.write_text(yaml.safe_dump(FAST, sort_keys=False))
    return path


def test_the_packaged_config_is_the_documented_default(tmp_path: Path) -> None:
    from gato_mini.envs.registry import TASKS

    plan, raw = load_config(default_config(), tmp_path)
    families = [TASKS[t].family for t in plan.collect]
    assert families.count("atari") >= 2 and families.count("control") >= 2
    assert {"caption-shapes", "text-pydoc", "chat-chatterbot"} <= set(raw["data"]["sources"])
    assert model_config(raw["model"]).name == "tiny" and "max_steps" not in raw["trainer"]  # sized in time
    assert raw["train"]["out"] == str(tmp_path / "run")
    assert plan.eval_episodes >= 16  # issue 16: scores over at least 16 episodes
    # every collected task trains on (and is prompted with) the dataset recorded for it
    for task, recording in plan.collect.items():
        path = tmp_path / "episodes" / task / f"{recording.policy}-v0"
        assert raw["data"]["sources"][task]["dataset"] == str(path)


def test_fast_quickstart_writes_a_full_report_and_resumes_without_retraining(tmp_path: Path,
                                                                             fast_config: Path) -> None:
    out = tmp_path / "qs"
    r = _run(out, fast_config)
    assert r.returncode == 0, r.stderr[-3000:]
    report = (out / "report.md").read_text()
    for section in SECTIONS:
        assert section in report, section
    for figure in ("figures/scores.png", "figures/loss.png", "figures/sources.png",
                   "caption-shapes-samples.png", "atari-pong.gif"):
        assert (out / figure).stat().st_size > 0, figure
    state = json.loads((out / "quickstart.json").read_text())
    assert all(state["stages"][s]["done"] for s in STAGES)
    scores = state["scores"]
    assert {"atari-pong", "atari-breakout", "control-pendulum", "mujoco-reacher", "cartpole-dc"} <= \
        set(scores)
    assert "normalized_mean" in scores["cartpole-dc"]  # references measured at eval, expert = its data
    # the benchmark that regenerates the README's table reads the finished run
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "quickstart.py"
    b = subprocess.run([sys.executable, str(bench), "--out", str(out), "--json", str(tmp_path / "b.json")],
                       capture_output=True, text=True, timeout=120)
    assert b.returncode == 0 and "| atari-pong | return" in b.stdout, b.stderr[-2000:]
    assert "colour" in b.stdout  # the README's caption row names the attributes
    assert json.loads((tmp_path / "b.json").read_text())["steps_trained"] == 8
    assert "exact_match" in scores["caption-shapes"] and "bleu4" in scores["caption-shapes"]
    assert 0 <= scores["caption-shapes"]["attributes"]["colour"] <= 1  # read by attribute (issue 40)
    assert "| colour |" in report and "| relation (" in report  # the attribute table under the samples
    assert scores["text-pydoc"]["perplexity"] > 1 and scores["chat-chatterbot"]["perplexity"] > 1
    chat = scores["chat-chatterbot"]["chat"]  # replies to held-out turns, scored (issue 41)
    assert 0 <= chat["f1"] <= 1 and chat["decoding"] == "greedy, no 2-gram repeated"
    assert "replies F1" in report
    assert "| prompt | reply | reference | F1 |" in report and "(decoding: greedy, no 2-gram" in report
    assert "perplexity" in r.stdout and "total" in r.stdout  # the final table and the stage times

    # The README's Python snippet, as written, on the model this run exported (from a user's folder
    # where runs/quickstart is this run, with the photo.png it captions)
    from PIL import Image

    from tests.test_readme import readme_blocks

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    snippet = [b.body for b in readme_blocks(readme) if b.lang == "python"]
    assert len(snippet) == 1 and "gato_mini.load(" in snippet[0]
    home = tmp_path / "user"
    (home / "runs").mkdir(parents=True)
    (home / "runs" / "quickstart").symlink_to(out)
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(home / "photo.png")
    py = subprocess.run([sys.executable, "-c", snippet[0]], cwd=home, capture_output=True, text=True,
                        timeout=300)
    assert py.returncode == 0, py.stderr[-3000:]
    assert "atari-pong" in py.stdout.splitlines()[0]  # print(gato.sources)

    # Interrupt during evaluation (after training), then rerun: training is not redone.
    weights = out / "run" / "model" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    state["stages"].pop("eval")
    state["stages"].pop("samples")
    (out / "quickstart.json").write_text(json.dumps(state))
    cmd = [EXE, "quickstart", "--out", str(out), "--config", str(fast_config), "--minutes", "10",
           "--no-progress"]
    # Unbuffered, so that the stage header arrives when the stage starts (eval takes several seconds);
    # SIGINT restored to its default, since a shell's background jobs inherit it ignored (as a user's
    # Ctrl-C in a terminal is not).
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    seen = ""
    while time.time() < deadline and "[4/6] eval" not in seen:
        chunk = os.read(proc.stdout.fileno(), 4096).decode(errors="replace")
        if not chunk:
            break  # the process ended
        seen += chunk
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted during eval" in err
    r = _run(out, fast_config)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "[3/6] train: done in an earlier run, skipped" in r.stdout
    assert "[1/6] collect: done in an earlier run, skipped" in r.stdout
    assert weights.stat().st_mtime_ns == before
    assert len(json.loads((out / "quickstart.json").read_text())["runs"]) == 3


@pytest.mark.parametrize("args, message", [
    (["--minutes", "0"], "--minutes must be a positive number"),
    (["--minutes", "nan"], "--minutes must be a positive number"),
    (["--out", "/proc/gato-mini-cannot-write"], "cannot write to /proc/gato-mini-cannot-write"),
    (["--config", "missing.yaml"], "config file not found: missing.yaml"),
    (["--minutes", "1"], "give --minutes 3 or more"),  # the default plan (a measured reserve, 1 min at least)
])
def test_quickstart_bad_input(tmp_path: Path, args: list[str], message: str, capsys) -> None:
    """In this process (the command's own exit code and stderr; the console script's start-up is tested
    by the end-to-end quickstart test), so each case does not pay 10 s of imports."""
    from gato_mini.cli import main

    full = ["--out", str(tmp_path / "qs"), *args] if "--out" not in args else args
    code = main(["quickstart", "--no-progress", *full])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not (tmp_path / "qs" / "episodes").exists()  # refused before recording


def test_quickstart_refuses_a_budget_too_small_to_train(tmp_path: Path, fast_config: Path) -> None:
    raw = yaml.safe_load(fast_config.read_text())
    raw["trainer"].pop("max_steps")
    raw["quickstart"]["reserve_minutes"] = 5
    config = tmp_path / "tight.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    r = subprocess.run([EXE, "quickstart", "--out", str(tmp_path / "qs"), "--config", str(config),
                        "--minutes", "5", "--no-progress"], capture_output=True, text=True, timeout=600)
    # known before anything runs: nothing is recorded, one line says how many minutes would do
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "give --minutes 6 or more" in lines[0], r.stderr[-2000:]
    assert not (tmp_path / "qs" / "episodes").exists()


def test_the_benchmark_on_an_unfinished_run_says_so_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "qs").mkdir()
    (tmp_path / "qs" / "quickstart.json").write_text("{}")  # started, never evaluated
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "quickstart.py"
    r = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "qs")], capture_output=True,
                       text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "holds no finished quickstart (no eval.json)" in lines[0]


DAGGER = {
    "quickstart": {
        "collect": {"control-pendulum": {"episodes": 4, "max_steps": 40, "noise": 0.2}},
        "dagger": {"at": [0.4, 0.7], "collect": {"control-pendulum": {"episodes": 3, "weight": 2}}},
        "eval": {"episodes": 2, "num_envs": 2, "caption_images": 0},
        "reserve_minutes": "auto"},
    "model": {"name": "tiny", "n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 128,
              "text_vocab_size": 300},
    "data": {"val_windows": 2, "sources": {"control-pendulum": {}, "text-pydoc": {"max_modules": 3}}},
    "train": {"batch_size": 4, "checkpoint_every": 4, "warmup_steps": 2},
    "trainer": {"log_every_n_steps": 1, "limit_val_batches": 2},
}


def test_quickstart_dagger_rounds_pause_training_collect_and_go_on_on_time(tmp_path: Path) -> None:
    """Two DAgger rounds in a run sized in time: training pauses at 40% and 70% of its minutes, the model
    acts while the expert labels, training resumes on its schedule with each round as one more source,
    and the whole run still ends within its minutes; the rounds are evaluated as the task, not apart."""
    from gato_mini.data.minari_io import read_collection

    config = tmp_path / "dagger.yaml"
    config.write_text(yaml.safe_dump(DAGGER, sort_keys=False))
    out = tmp_path / "qs"
    start = time.time()
    r = subprocess.run([EXE, "quickstart", "--out", str(out), "--config", str(config), "--minutes", "1.3",
                        "--no-progress"], capture_output=True, text=True, timeout=600)
    wall = time.time() - start
    assert r.returncode == 0, r.stderr[-3000:]
    assert "DAgger round 1, control-pendulum: the model acted (0.2 of steps by the expert)" in r.stdout
    state = json.loads((out / "quickstart.json").read_text())
    train = state["train"]
    rounds = train["dagger_rounds"]
    assert [x["round"] for x in rounds] == [1, 2]
    assert [x["at_minutes"] for x in rounds] == pytest.approx([0.4 * train["planned_minutes"],
                                                              0.7 * train["planned_minutes"]], abs=0.01)
    assert train["minutes"] < train["planned_minutes"]  # the pauses came out of training's minutes
    # the evaluation reserve was measured before training (the pendulum's episodes timed, the rest in step
    # times), and evaluation took no longer
    assert set(train["eval_prediction"]) == {"control-pendulum", "the rest"}
    assert "control-pendulum: references" in r.stdout
    assert state["stages"]["eval"]["seconds"] <= train["eval_reserve_seconds"]
    assert "Evaluation was kept" in (out / "report.md").read_text()
    for k in (1, 2):
        meta = read_collection(out / "dagger" / f"round{k}" / "control-pendulum" / "expert-dagger-v0")
        assert meta["episodes"] == 3 and meta["acting"]["policy_share"] == 0.2
        assert f"DAgger round {k}" in meta["acting"]["by"]
    assert meta["seed"] != 0  # not the demonstrations' seeds
    sources = json.loads((out / "run" / "model" / "sources.json").read_text())["sources"]
    assert {"control-pendulum-dagger1", "control-pendulum-dagger2"} <= set(sources)
    config_used = yaml.safe_load((out / "run" / "config.yaml").read_text())
    assert config_used["data"]["sources"]["control-pendulum-dagger2"]["weight"] == 2
    # every round reads the pendulum's observation vector with the demonstrations' statistics
    demos = str(out / "episodes" / "control-pendulum" / "expert-v0")
    assert config_used["data"]["sources"]["control-pendulum-dagger2"]["stats_dataset"] == demos
    fields = {name: sources[name]["fields"]["observation"] for name in
              ("control-pendulum", "control-pendulum-dagger1", "control-pendulum-dagger2")}
    assert [f["layout"] for f in fields["control-pendulum"].values()] == ["vector"]
    demo_fields = fields["control-pendulum"]
    assert fields["control-pendulum-dagger1"] == fields["control-pendulum-dagger2"] == demo_fields
    assert set(state["scores"]) == {"control-pendulum", "text-pydoc"}  # the rounds are the task's data
    report = (out / "report.md").read_text()
    assert "DAgger round 2 (training paused at" in report
    # the learning curves run over all three parts of the run, from its first steps to its last
    from gato_mini.reports.figures import read_metrics

    logs = sorted((out / "run" / "logs").glob("version_*/metrics.csv"))
    assert len(logs) == 3
    steps = [s for s, _ in read_metrics(*logs)["train/loss"]]
    assert steps == sorted(steps) and steps[0] < 10 and steps[-1] >= train["steps"] - 5
    assert wall < 1.3 * 60 + 30  # on time, give or take the imports


@pytest.mark.parametrize("dagger, message", [
    ({"at": [1.5], "collect": {"control-pendulum": {"episodes": 3}}}, "quickstart.dagger.at must be"),
    ({"at": [0.6, 0.3], "collect": {"control-pendulum": {"episodes": 3}}}, "quickstart.dagger.at must be"),
    ({"collect": {"mujoco-reacher": {"episodes": 3}}}, "mujoco-reacher is not in quickstart.collect"),
    ({"collect": {"control-pendulum": {"episodes": 0}}}, "episodes must be positive"),
    ({"collect": {"control-pendulum": {"episodes": 3, "weight": -1}}}, "weight must be above 0"),
    ({"collect": {"control-pendulum": {"episodes": 3}}, "policy_share": 2}, "policy_share must be between"),
    ({"collect": {"control-pendulum": {"episodes": 3}}, "rounds": 2},
     "unknown key 'quickstart.dagger.rounds'"),
    ({}, "quickstart.dagger needs 'collect'"),
])
def test_a_bad_dagger_section_is_named(dagger, message) -> None:
    from gato_mini.errors import ConfigError
    from gato_mini.quickstart_plan import Plan

    with pytest.raises(ConfigError, match=re.escape(message)):
        Plan.parse({**DAGGER["quickstart"], "dagger": dagger})


def test_the_parts_of_a_run_read_as_one_series(tmp_path: Path) -> None:
    """A run resumed from step 4 (its second part redoes step 5, after the earlier part's checkpoint)
    reads as one series: the later part's rows replace the earlier's from its first step on."""
    from gato_mini.reports.figures import read_metrics

    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("epoch,step,train/loss,val/loss\n" + "".join(f"0,{s},{10 - s},\n" for s in range(7))
                     + "0,6,,3.5\n")
    second.write_text("epoch,step,train/loss\n" + "".join(f"0,{s},{20 - s}\n" for s in range(5, 9)))
    series = read_metrics(first, second)
    assert series["train/loss"] == [(s, 10.0 - s) for s in range(5)] + [(s, 20.0 - s) for s in range(5, 9)]
    assert series["val/loss"] == []  # logged at step 6, which the second part redid
    assert read_metrics(first)["val/loss"] == [(6, 3.5)]


def test_the_documented_dagger_section_parses_beside_the_default_collect(tmp_path: Path) -> None:
    """docs/own-data.md's ``dagger:`` section, added to the packaged config as it says, is a valid plan."""
    from gato_mini.quickstart_plan import Plan

    page = (Path(__file__).resolve().parents[1] / "docs" / "own-data.md").read_text()
    block = re.search(r"```text\n(  dagger:.*?)```", page, re.S).group(1)
    raw = yaml.safe_load(default_config().read_text())
    raw["quickstart"]["dagger"] = yaml.safe_load(block)["dagger"]
    plan = Plan.parse(raw["quickstart"])
    assert plan.dagger.at == [0.4, 0.7] and set(plan.dagger.collect) == {"control-pendulum"}
    assert plan.dagger.policy_share == 0.2 and plan.dagger.num_envs == 16
    default = Plan.parse(yaml.safe_load(default_config().read_text())["quickstart"]).dagger  # on: two rounds
    assert default.at == [0.4, 0.7] and set(default.collect) == {"control-pendulum"}
    assert default.weights == {"control-pendulum": 0.2}


@pytest.mark.slow
def test_the_specialists_benchmark_trains_one_specialist_per_source_on_its_tokens(tmp_path: Path,
                                                                                fast_config: Path) -> None:
    """`benchmarks/specialists.py` on a finished fast quickstart: one specialist per evaluated source (the
    pendulum-free fast recipe: every source alone), each trained on the target tokens the generalist
    trained on its source, evaluated as the quickstart evaluated, and a table of both with ratios."""
    out = tmp_path / "qs"
    r = _run(out, fast_config)
    assert r.returncode == 0, r.stderr[-3000:]
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "specialists.py"
    b = subprocess.run([sys.executable, str(bench), "--generalist", str(out), "--out", str(tmp_path / "spec"),
                        "--json", str(tmp_path / "s.json")], capture_output=True, text=True, timeout=900)
    assert b.returncode == 0, b.stderr[-3000:]
    result = json.loads((tmp_path / "s.json").read_text())
    rows = result["runs_detail"][0]["sources"]
    generalist = json.loads((out / "run" / "model" / "sources.json").read_text())["sources"]
    assert set(rows) == set(json.loads((out / "quickstart.json").read_text())["scores"])
    for name, row in rows.items():
        assert row["target_tokens"] == generalist[name]["target_tokens"] > 0
        # stopped within one step of its tokens (one batch of 4 windows of 128 at most past them)
        assert 0 < row["specialist_target_tokens"] <= row["target_tokens"] + 4 * 128, name
        # the same numbers for both (a control task at the fast recipe's 20-step cap may have none:
        # its random and expert references are both 0 there, so nothing is normalized)
        assert row["specialist"].keys() == row["generalist"].keys(), name
    assert rows["caption-shapes"]["specialist"] and rows["text-pydoc"]["specialist"]
    assert "chat_f1" in rows["chat-chatterbot"]["specialist"]
    assert "| caption-shapes | exact match %" in b.stdout
