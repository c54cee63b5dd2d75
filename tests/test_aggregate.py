"""Aggregates over tasks (mean, median, IQM) with stratified bootstrap intervals, and human-normalized
Atari scores, against values computed by hand."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from gato_mini.envs.registry import HUMAN_REFERENCES, human_normalized
from gato_mini.reports.aggregate import (
    aggregate,
    aggregate_summaries,
    eval_summaries,
    iqm,
    stratified_bootstrap,
)
from gato_mini.reports.tables import print_aggregates


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5  # drop 1, 2 and 7, 8
    assert iqm([0, 0, 0, 100]) == 0.0  # the outlier is dropped
    assert iqm([1, 2, 3]) == 2.0  # int(0.75) = 0 dropped from each end
    assert iqm(np.arange(10)) == pytest.approx(np.mean([2, 3, 4, 5, 6, 7]))  # int(2.5) = 2 each side


def test_bootstrap_intervals_by_hand() -> None:
    # one task of episodes [0, 1]: a resampled mean is 0, 0.5 or 1 (p = 1/4, 1/2, 1/4)
    lo, hi = stratified_bootstrap({"a": [0.0, 1.0]}, lambda t: float(t[0].mean()), reps=4000)
    assert (lo, hi) == (0.0, 1.0)
    # stratified: task a always gives 10; task b's mean is 0, 10 or 20; the mean over tasks 5, 10 or 15
    agg = aggregate({"a": [10, 10, 10], "b": [0, 20]}, reps=4000)
    assert agg["mean"] == {"value": 10.0, "ci_low": 5.0, "ci_high": 15.0}
    # constant scores: the interval is the point
    agg = aggregate({"a": [3.0] * 5, "b": [7.0] * 5, "c": [5.0] * 5})
    for stat, value in (("mean", 5.0), ("median", 5.0), ("iqm", 5.0)):
        assert agg[stat] == {"value": value, "ci_low": value, "ci_high": value}, stat
    # seeded: the same scores give the same interval; more episodes give a narrower one
    rng = np.random.default_rng(0)
    few = {k: rng.normal(50, 20, 4) for k in "abc"}
    many = {k: rng.normal(50, 20, 256) for k in "abc"}  # 64 times the episodes: about an eighth the width
    assert aggregate(few) == aggregate(few)
    width = {n: s["iqm"]["ci_high"] - s["iqm"]["ci_low"] for n, s in (("few", aggregate(few)),
                                                                         ("many", aggregate(many)))}
    assert width["many"] < width["few"] / 2
    assert aggregate({}) == {}


def test_median_and_iqm_are_over_task_means() -> None:
    scores = {"a": [0, 0, 0, 0], "b": [10, 10, 10, 10], "c": [100, 100, 100, 100]}
    agg = aggregate(scores, reps=200)
    assert agg["mean"]["value"] == pytest.approx(110 / 3)
    assert agg["median"]["value"] == 10.0
    assert agg["iqm"]["value"] == pytest.approx(110 / 3)  # three task means: int(0.75) = 0 dropped
    eight = {k: [v, v] for k, v in zip("abcdefgh", (0, 1, 2, 3, 4, 5, 6, 100), strict=True)}
    assert aggregate(eight, reps=50)["iqm"]["value"] == pytest.approx(3.5)  # 2 of 8 dropped each end


def test_human_normalized_against_the_formula() -> None:
    for task, (random, human) in HUMAN_REFERENCES.items():
        assert human_normalized(task, random) == 0.0
        assert human_normalized(task, human) == pytest.approx(100.0)
        assert human_normalized(task, (random + human) / 2) == pytest.approx(50.0)
    assert human_normalized("atari-pong", 0.0) == pytest.approx(100 * 20.7 / 35.3)
    assert human_normalized("mujoco-reacher", -5.0) is None


def _summary(source, returns, random, expert, constant=None):
    return {"source": source, "random": random, "expert": expert, "constant": constant,
            "per_episode": [{"ret": r, "error": None} for r in returns] + [{"ret": 0.0, "error": "crashed"}]}


def test_aggregates_of_eval_summaries_and_their_table() -> None:
    summaries = [_summary("atari-pong", [-20.7, 14.6], -20.0, 0.0, -21.0),  # baseline -20 (random)
                 _summary("control-pendulum", [-600.0, -200.0], -1200.0, -200.0, -1000.0),  # baseline -1000
                 _summary("caption-shapes", [0.5], None, None),  # no references: left out
                 {"source": "pydoc", "perplexity": 30.0}]
    agg = aggregate_summaries(summaries, reps=500)
    assert agg["normalized"]["tasks"] == ["atari-pong", "control-pendulum"]
    pong = [100 * (-20.7 + 20) / 20, 100 * (14.6 + 20) / 20]
    pendulum = [100 * (-600 + 1000) / 800, 100.0]
    assert agg["normalized"]["mean"]["value"] == pytest.approx((np.mean(pong) + np.mean(pendulum)) / 2)
    assert agg["normalized"]["iqm"]["value"] == pytest.approx(iqm([np.mean(pong), np.mean(pendulum)]))
    assert "not the spread between training runs" in agg["covers"]
    # one score per task: six times the episodes of one task (caption images against control
    # episodes) do not weigh it six times
    heavy = [_summary("atari-pong", [-20.7, 14.6] * 6, -20.0, 0.0, -21.0), *summaries[1:]]
    assert aggregate_summaries(heavy, reps=50)["normalized"]["iqm"]["value"] == \
        pytest.approx(agg["normalized"]["iqm"]["value"])
    assert agg["human_normalized"]["tasks"] == ["atari-pong"]
    assert agg["human_normalized"]["mean"]["value"] == pytest.approx(50.0)  # 0 and 100: the crash is left out
    out = io.StringIO()
    print_aggregates(summaries, Console(file=out, width=250))
    text = out.getvalue()
    assert "IQM [95% CI]" in text and "human-normalized" in text and "one score per task" in text
    lo, hi = agg["normalized"]["iqm"]["ci_low"], agg["normalized"]["iqm"]["ci_high"]
    assert f"{agg['normalized']['iqm']['value']:.1f} [{lo:.1f}, {hi:.1f}]" in text


def test_eval_files_written_before_the_rename_still_read() -> None:
    """An eval JSON file of an older version names its summaries ``tasks`` and each one's ``task``."""
    new = {"sources": [_summary("atari-pong", [1.0], -20.0, 0.0)]}
    old = {"tasks": [{"task" if k == "source" else k: v for k, v in new["sources"][0].items()}]}
    assert eval_summaries(old) == eval_summaries(new) == new["sources"]
    assert aggregate_summaries(eval_summaries(old), reps=50) == aggregate_summaries(new["sources"], reps=50)


def test_aggregates_over_training_runs_resample_the_runs() -> None:
    from scipy.stats import trim_mean

    from gato_mini.reports.aggregate import aggregate_runs

    # 3 tasks x 2 runs (a task's score in each run): rliable's statistics of the runs x tasks matrix
    scores = {"a": [90.0, 10.0], "b": [50.0, 60.0], "c": [0.0, 100.0]}
    matrix = np.array(list(scores.values())).T  # (runs, tasks)
    out = aggregate_runs(scores, reps=500)
    assert out["runs"] == 2 and out["tasks"] == ["a", "b", "c"] and "training runs" in out["covers"]
    assert out["mean"]["value"] == pytest.approx(matrix.mean(0).mean())
    assert out["median"]["value"] == pytest.approx(np.median(matrix.mean(0)))
    assert out["iqm"]["value"] == pytest.approx(trim_mean(matrix, 0.25, axis=None))
    # each resample takes each task's runs with replacement: the interval spans what the runs allow
    lo_all = np.mean([min(v) for v in scores.values()])
    hi_all = np.mean([max(v) for v in scores.values()])
    assert lo_all <= out["mean"]["ci_low"] < out["mean"]["value"] < out["mean"]["ci_high"] <= hi_all
    # identical runs: no spread between them, a point interval
    same = aggregate_runs({"a": [40.0, 40.0], "b": [70.0, 70.0]})
    assert same["iqm"]["ci_low"] == same["iqm"]["ci_high"] == same["iqm"]["value"]
    with pytest.raises(ValueError, match="every task needs the same runs"):
        aggregate_runs({"a": [1.0, 2.0], "b": [3.0]})
