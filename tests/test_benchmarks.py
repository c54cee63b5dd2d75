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
