"""Scores aggregated over tasks, with 95% stratified bootstrap confidence intervals (Agarwal et al. 2021,
"Deep RL at the edge of the statistical precipice", the method of the ``rliable`` package).

Input: per task, the normalized score of each episode. Three statistics over tasks:

* ``mean``: the mean over tasks of each task's mean score;
* ``median``: the median over tasks of each task's mean score;
* ``iqm``: the interquartile mean of the tasks' mean scores, the mean of the middle 50% after
  dropping ``int(0.25 n)`` from each end (``scipy.stats.trim_mean(x, 0.25)``): one score per task,
  so 96 caption images weigh as much as 16 episodes of a control task. This is rliable's IQM of its
  (runs x tasks) score matrix for one training run.

The interval resamples each task's episodes with replacement, independently per task (stratified:
every task keeps its episode count), recomputes the statistic ``reps`` times and takes the 2.5th and
97.5th percentiles. Seeded, so the same scores give the same interval. **It covers the evaluation
episodes of one trained model, not the spread between training runs** (rliable resamples runs; two
runs of the same recipe can differ by more than this interval is wide): :data:`COVERS` says so in the
JSON and the table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from gato_mini.envs.registry import human_normalized, normalized

Scores = Mapping[str, Sequence[float]]


def iqm(x: Any) -> float:
    """Interquartile mean of ``x`` (flattened): the mean after dropping ``int(0.25 n)`` from each end."""
    v = np.sort(np.asarray(x, dtype=np.float64).ravel())
    k = int(0.25 * len(v))
    return float(v[k:len(v) - k].mean())


def _mean(per_task: list[np.ndarray]) -> float:
    return float(np.mean([t.mean() for t in per_task]))


def _median(per_task: list[np.ndarray]) -> float:
    return float(np.median([t.mean() for t in per_task]))


def _iqm(per_task: list[np.ndarray]) -> float:
    return iqm([t.mean() for t in per_task])


STATISTICS: dict[str, Callable[[list[np.ndarray]], float]] = {"mean": _mean, "median": _median, "iqm": _iqm}
#: What the intervals cover, said beside them.
COVERS = "the evaluation episodes of one trained model, not the spread between training runs"


def stratified_bootstrap(scores: Scores, statistic: Callable[[list[np.ndarray]], float], reps: int = 2000,
                         seed: int = 0, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``statistic`` under resampling each task's episodes (see the module)."""
    rng = np.random.default_rng(seed)
    tasks = [np.asarray(v, dtype=np.float64) for v in scores.values()]
    draws = [t[rng.integers(0, len(t), size=(reps, len(t)))] for t in tasks]  # (reps, n_task) each
    values = np.array([statistic([d[r] for d in draws]) for r in range(reps)])
    a = (1 - confidence) / 2
    lo, hi = np.quantile(values, [a, 1 - a])
    return float(lo), float(hi)


def aggregate(scores: Scores, reps: int = 2000, seed: int = 0) -> dict[str, dict[str, float]]:
    """``{statistic: {"value", "ci_low", "ci_high"}}`` over the tasks of ``scores`` (each task with at
    least one episode); ``{}`` for no tasks."""
    scores = {k: v for k, v in scores.items() if len(v)}
    if not scores:
        return {}
    tasks = [np.asarray(v, dtype=np.float64) for v in scores.values()]
    out = {}
    for name, fn in STATISTICS.items():
        lo, hi = stratified_bootstrap(scores, fn, reps, seed)
        out[name] = {"value": fn(tasks), "ci_low": lo, "ci_high": hi}
    return out


def _runs_iqm(per_task: list[np.ndarray]) -> float:
    return iqm(np.concatenate(per_task))  # rliable: the IQM of the whole (runs x tasks) matrix


#: Over training runs (rliable's ``aggregate_mean``/``median``/``iqm`` of a runs x tasks matrix): the mean
#: and median of each task's mean over runs, and the IQM of every (run, task) score.
RUN_STATISTICS: dict[str, Callable[[list[np.ndarray]], float]] = {"mean": _mean, "median": _median,
                                                                  "iqm": _runs_iqm}
COVERS_RUNS = "the training runs (each task's runs resampled, as rliable does)"


def aggregate_runs(scores: Scores, reps: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Aggregates over independent training runs of one recipe: ``scores`` holds, per task, one score
    per run (the task's mean normalized score in that run; every task the same runs). The interval
    resamples the runs of each task (rliable's stratified bootstrap), so it covers what training
    itself varies, which one run's episodes cannot show."""
    scores = {k: v for k, v in scores.items() if len(v)}
    counts = {len(v) for v in scores.values()}
    if len(counts) > 1:
        raise ValueError(f"every task needs the same runs, got {sorted(counts)} scores per task")
    out: dict[str, Any] = {"tasks": sorted(scores), "runs": counts.pop() if counts else 0}
    tasks = [np.asarray(v, dtype=np.float64) for v in scores.values()]
    for name, fn in RUN_STATISTICS.items():
        if tasks:
            lo, hi = stratified_bootstrap(scores, fn, reps, seed)
            out[name] = {"value": fn(tasks), "ci_low": lo, "ci_high": hi}
    out["method"] = f"95% stratified bootstrap over runs, {reps} resamples, seed {seed} (Agarwal et al. 2021)"
    out["covers"] = COVERS_RUNS
    return out


def eval_summaries(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-source summaries of an eval JSON file (``SourceReport.summary()`` dicts). Files written
    before the word "source" replaced "task" for what a model is trained on hold them under ``tasks``,
    each named by ``task``: read either."""
    summaries = results.get("sources", results.get("tasks", []))
    return [{"source": s["task"], **{k: v for k, v in s.items() if k != "task"}} if "source" not in s else s
            for s in summaries]


def aggregate_summaries(summaries: list[dict[str, Any]], reps: int = 2000, seed: int = 0) -> dict[str, Any]:
    """The aggregates of ``SourceReport.summary()`` dicts: over the tasks with a normalized score
    (``normalized``), and over the Atari tasks with a human-normalized one (``human_normalized``)."""
    expert: dict[str, list[float]] = {}
    human: dict[str, list[float]] = {}
    for s in summaries:
        returns = [e["ret"] for e in s.get("per_episode", []) if e.get("error") is None]
        if not returns:
            continue
        norm = [normalized(r, s.get("random"), s.get("expert"), s.get("constant")) for r in returns]
        if norm[0] is not None:
            expert[s["source"]] = norm
        hum = [human_normalized(s["source"], r) for r in returns]
        if hum[0] is not None:
            human[s["source"]] = hum
    return {"normalized": {"tasks": sorted(expert), **aggregate(expert, reps, seed)},
            "human_normalized": {"tasks": sorted(human), **aggregate(human, reps, seed)},
            "method": f"95% stratified bootstrap, {reps} resamples, seed {seed} (Agarwal et al. 2021)",
            "covers": COVERS}
