"""The acting benchmark's own accounting, on a few steps (its numbers are measured by running it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def rollout():
    sys.path.append(str(BENCH))  # at the end: benchmarks/tokenize.py must not shadow the standard library
    try:
        import rollout as module
        yield module
    finally:
        if str(BENCH) in sys.path:  # a benchmark's own import may have moved it
            sys.path.remove(str(BENCH))


def test_the_bare_loop_splits_its_time_into_shares_that_add_up(rollout) -> None:
    b = rollout.bare("tiny", 2, 48)  # 2 x 48 Pong steps overflow tiny's 512-token context once
    shares = [b[k] for k in ("model_share", "refill_share", "env_share", "glue_share")]
    assert all(s >= 0 for s in shares) and sum(shares) == pytest.approx(1, abs=0.01)
    assert b["refill_share"] > 0 and b["model_share"] > b["refill_share"]
    assert b["env_steps_per_s"] > 0


def test_the_eval_path_reports_start_up_and_resets_apart(rollout) -> None:
    e = rollout.in_eval("tiny", 2, 10)  # env processes, as under gato-mini eval
    assert e["env_steps"] == 20 and e["failed"] == 0
    assert e["startup_s"] > 0 and e["reset_s"] > 0
    shares = [e[k] for k in ("model_share", "refill_share", "env_share", "glue_share")]
    assert all(s >= 0 for s in shares) and sum(shares) == pytest.approx(1, abs=0.01)


@pytest.fixture(scope="module")
def specialists():
    sys.path.append(str(BENCH))
    try:
        import specialists as module
        yield module
    finally:
        if str(BENCH) in sys.path:  # a benchmark's own import may have moved it
            sys.path.remove(str(BENCH))


def test_each_specialist_gets_the_target_tokens_the_generalist_trained_on_its_source(specialists,
                                                                                     tmp_path) -> None:
    """A hand-built two-source generalist: the pendulum's specialist trains on the pendulum and its DAgger
    round, for the tokens the generalist spent on both; the chat's on the chat alone; its config keeps
    only those sources (their weights), the generalist's tokenizer, and is sized in target tokens."""
    trained = {"sources": {"control-pendulum": {"target_tokens": 1200},
                           "control-pendulum-dagger1": {"target_tokens": 300},
                           "chat-chatterbot": {"target_tokens": 5000}}}
    members = {"control-pendulum": ["control-pendulum", "control-pendulum-dagger1"],
               "chat-chatterbot": ["chat-chatterbot"]}
    plan = specialists.specialist_plan(trained, members)
    assert plan == {"control-pendulum": {"sources": members["control-pendulum"], "target_tokens": 1500},
                    "chat-chatterbot": {"sources": ["chat-chatterbot"], "target_tokens": 5000}}
    run = {"model": "tiny", "data": {"root": "g/data", "sources": {
        "control-pendulum": {"weight": 0.4},
        "control-pendulum-dagger1": {"kind": "episodes", "weight": 0.2, "dataset": "d1"},
        "chat-chatterbot": {"weight": 0.5}}}, "train": {"minutes": 16.2, "out": "g/run", "seed": 3},
        "trainer": {"max_steps": 99}}
    cfg = specialists.specialist_config(run, plan["control-pendulum"]["sources"], 1500, tmp_path / "g",
                                        tmp_path / "s")
    assert cfg["data"]["sources"] == {"control-pendulum": {"weight": 0.4}, "control-pendulum-dagger1": {
        "kind": "episodes", "weight": 0.2, "dataset": "d1"}}
    assert cfg["data"]["tokenizer"] == str(tmp_path / "g" / "data" / "tokenizer.json")
    assert cfg["train"] == {"out": str(tmp_path / "s" / "run"), "seed": 3, "target_tokens": 1500}
    assert "max_steps" not in cfg["trainer"] and run["train"]["minutes"] == 16.2  # the generalist's untouched
    from gato_mini.train.config import parse_run_config

    assert parse_run_config(cfg).train.target_tokens == 1500  # a config training accepts
    with pytest.raises(Exception, match="does not count the target tokens of chat-chatterbot"):
        specialists.specialist_plan({"sources": {"chat-chatterbot": {}}},
                                    {"chat-chatterbot": ["chat-chatterbot"]})
    with pytest.raises(Exception, match="was not trained on text-pydoc"):
        specialists.specialist_plan(trained, {"text-pydoc": ["text-pydoc"]})
    # the ratio: the share of the specialist's score kept; perplexity the other way round; none at baseline
    assert specialists.ratio(40, 80, True) == 0.5 and specialists.ratio(30, 15, False) == 0.5
    assert specialists.ratio(10, -5, True) is None


def test_the_specialists_benchmark_on_a_folder_that_is_no_quickstart_says_so(tmp_path) -> None:
    import subprocess

    r = subprocess.run([sys.executable, str(BENCH / "specialists.py"), "--generalist", str(tmp_path),
                        "--out", str(tmp_path / "s")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "holds no finished quickstart" in r.stderr
    assert not (tmp_path / "s").exists()
