"""The quickstart's learning measurement: scores, offline action metrics, steps and minutes trained.

Reads ``DIR/quickstart.json`` and ``DIR/eval.json`` (written by ``gato-mini quickstart``);
with ``--run`` it first runs (or resumes) the quickstart itself. Per control task the JSON holds
the raw return, the normalized score, the random, best-constant and expert references it was
normalized with, and the teacher-forced offline metric beside its constant baseline; per
caption task exact match and BLEU-4; per text task perplexity and bits per byte. Writes
``benchmarks/results/quickstart.json`` and prints the markdown table that the
README's results section shows, so that table can be regenerated from a run.

    python benchmarks/quickstart.py [--out runs/quickstart] [--run [--minutes 20] [--config FILE]]
    python benchmarks/quickstart.py --out runs/qs-1 --out runs/qs-2 [--run]   # intervals over runs
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

from _common import write  # noqa: E402

from gato_mini.reports.aggregate import eval_summaries  # noqa: E402


def table(state: dict, evals: list[dict]) -> list[str]:
    """README rows: one per source (its evaluation's cells), then the stage times."""
    from gato_mini.agent.evaluate import score_cells

    rows = ["| source | score | normalized (0 baseline, 100 expert) | metrics |", "|---|---|---|---|"]
    for c in score_cells(evals):
        score = c["raw"] if c["raw"] == "-" else f"return {c['raw']} ({c['episodes']} episodes)"
        rows.append(f"| {c['source']} | {score} | {c['normalized']} | {c['metrics']} |")
    stages = state["stages"]
    times = ", ".join(f"{k} {v['seconds'] / 60:.1f}" for k, v in stages.items())
    total = sum(v["seconds"] for v in stages.values()) / 60
    return rows + ["", f"Minutes per stage: {times}; total {total:.1f}."]


def run_result(out: Path) -> tuple[dict, dict, list[dict]]:
    """(the benchmark's JSON of one finished quickstart folder, its state, its eval summaries)."""
    missing = [f for f in ("quickstart.json", "eval.json") if not (out / f).is_file()]
    if missing:
        print(f"benchmarks/quickstart.py: error: {out} holds no finished quickstart (no {missing[0]}): "
              f"run `gato-mini quickstart --out {out}` to the end first, or pass --run", file=sys.stderr)
        sys.exit(2)
    state = json.loads((out / "quickstart.json").read_text())
    evals = eval_summaries(json.loads((out / "eval.json").read_text()))
    keys = ("return_mean", "return_std", "normalized_mean", "random", "constant", "baseline", "expert",
            "episodes", "failed", "offline", "exact_match", "bleu4", "attributes", "perplexity",
            "bits_per_byte", "chat")
    learning = {t["source"]: {k: t[k] for k in keys if t.get(k) is not None} for t in evals}
    train = state["stages"].get("train", {})
    result = {"out": str(out), "versions": state.get("versions"), "runs": state.get("runs"),
              "stages": state["stages"], "train": state.get("train"), "scores": state.get("scores"),
              "learning": learning, "steps_trained": train.get("steps", train.get("max_steps")),
              "minutes_trained": round(train.get("seconds", 0) / 60, 2),
              "total_seconds": round(sum(v["seconds"] for v in state["stages"].values()), 1)}
    return result, state, evals


def over_runs(results: list[dict]) -> tuple[dict, list[str]]:
    """Aggregates over several runs of one recipe (each task's mean normalized score per run), with
    intervals over the runs, and the README rows that show them."""
    from gato_mini.reports.aggregate import aggregate_runs

    tasks = [t for t, v in results[0]["learning"].items() if v.get("normalized_mean") is not None]
    tasks = [t for t in tasks if all(r["learning"].get(t, {}).get("normalized_mean") is not None
                                     for r in results)]
    scores = {t: [r["learning"][t]["normalized_mean"] for r in results] for t in tasks}
    agg = aggregate_runs(scores)
    head = " | ".join(f"run {k + 1} ({r['steps_trained']} steps)" for k, r in enumerate(results))
    rows = [f"| normalized | {head} |", "|---|" + "---|" * len(results)]
    rows += [f"| {t} | " + " | ".join(f"{v:.0f}" for v in scores[t]) + " |" for t in tasks]
    cells = ", ".join(f"{k} {agg[k]['value']:.0f} [{agg[k]['ci_low']:.0f}, {agg[k]['ci_high']:.0f}]"
                      for k in ("mean", "median", "iqm") if k in agg)
    rows += ["", f"Over the {agg['runs']} runs ({agg['method']}; the intervals cover {agg['covers']}): "
                 f"{cells}."]
    return agg, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", action="append", help="the quickstart's folder (default runs/quickstart); "
                    "repeat for several runs of one recipe: aggregates with intervals over the runs")
    ap.add_argument("--run", action="store_true", help="run (or resume) the quickstart first")
    ap.add_argument("--minutes", default="20")
    ap.add_argument("--config")
    ap.add_argument("--json", default=None, help="result file (default: benchmarks/results/quickstart.json)")
    args = ap.parse_args()
    outs = [Path(o) for o in (args.out or ["runs/quickstart"])]
    if args.run:
        for out in outs:
            cmd = ["gato-mini", "quickstart", "--out", str(out), "--minutes", args.minutes]
            code = subprocess.run(cmd + (["--config", args.config] if args.config else [])).returncode
            if code:
                sys.exit(code)
    done = [run_result(out) for out in outs]
    if len(done) == 1:
        result, state, evals = done[0]
        write("quickstart", result, args.json)
        print("\n".join(table(state, evals)))
        return
    agg, rows = over_runs([d[0] for d in done])
    write("quickstart", {"runs_detail": [d[0] for d in done], "over_runs": agg}, args.json)
    for (result, state, evals) in done:
        print(f"{result['out']}:")
        print("\n".join(table(state, evals)))
        print()
    print("\n".join(rows))


if __name__ == "__main__":
    main()
