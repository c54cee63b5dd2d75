"""``DIR/report.md`` of a quickstart run: scores, figures, samples, commands and versions.

Built only from files the earlier stages left in ``DIR`` (``eval.json``,
``samples.json``, the training log, ``quickstart.json``), so it can be
regenerated at any time. Written to a temporary file, then renamed.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from gato_mini.procs import write_atomic
from gato_mini.reports.aggregate import eval_summaries
from gato_mini.reports.figures import loss_curves, read_metrics, score_bars, source_curves, source_names


def duration(seconds: float) -> str:
    """``42 s`` or ``3.5 min``."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def relative_path(path: str, out: Path) -> str:
    """A path as the report links it: relative to the report's folder when inside it."""
    p = Path(path)
    return str(p.relative_to(out)) if p.is_relative_to(out) else str(p)


def table_cell(text: str, width: int = 80) -> str:
    """Text fit for one cell of a markdown table: one line, no pipes, at most ``width`` characters."""
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def score_rows(cells: list[dict[str, str]]) -> list[str]:
    """Markdown rows of the score table, one per evaluated source (its evaluation's cells)."""
    columns = ("source", "kind", "episodes", "raw", "normalized", "random", "constant", "expert", "metrics")
    rows = ["| source | kind | episodes | raw score | normalized (0 baseline, 100 expert) | random "
            "| best constant | expert | metrics |",
            "|---|---|---|---|---|---|---|---|---|"]
    return rows + ["| " + " | ".join(table_cell(c[k], 400) for k in columns) + " |" for c in cells]


def write_report(out: Path, state: dict[str, Any], argv: list[str], cells: list[dict[str, str]],
                 sections: list[str]) -> Path:
    """Write ``out/report.md`` (and its figures under ``out/figures``); returns its path. ``cells``: the
    score table's, a row per source; ``sections``: the sources' own parts (markdown lines), each made by
    the source's evaluation (:func:`gato_mini.agent.evaluate.score_cells`, ``report_sections``)."""
    figures = out / "figures"
    evals = eval_summaries(json.loads((out / "eval.json").read_text()))
    samples = json.loads((out / "samples.json").read_text()) if (out / "samples.json").is_file() else {}
    lines = ["# gato-mini quickstart report", "",
             "One `tiny` Transformer trained on control episodes, image captions, text and chat at once, "
             "then evaluated on each. Normalized score = 100 (score - baseline) / (expert - baseline), where "
             "the baseline is the stronger of a random policy and the best constant action (zero torque, "
             "or one button held): a policy that does nothing scores at most 0. Offline metrics are "
             "teacher-forced on held-out logged episodes, beside the best constant's.", ""]

    lines += ["## Scores", ""] + score_rows(cells) + [""]
    notes = [f"- {t['source']}: references {t['references']}" for t in evals if t.get("references")]
    lines += notes + ([""] if notes else [])
    normalized = {t["source"]: t["normalized_mean"] for t in evals if t.get("normalized_mean") is not None}
    if normalized:
        score_bars(normalized, figures / "scores.png", "gato-mini quickstart: normalized scores")
        lines += ["![normalized scores](figures/scores.png)", ""]

    logs = sorted((out / "run" / "logs").glob("version_*/metrics.csv"),
                  key=lambda p: int(p.parent.name.split("_")[1]))  # the run's parts, in order
    if logs:
        metrics = read_metrics(*logs)
        loss_curves(metrics, figures / "loss.png")
        lines += ["## Training", "", "Loss per modality (nats per target token): the training loss, "
                  "smoothed, and the loss on held-out windows.", "", "![loss curves](figures/loss.png)", ""]
        if source_names(metrics):
            source_curves(metrics, figures / "sources.png")
            lines += ["A learning curve per source: its loss on held-out windows against the step.", "",
                      "![learning curves per source](figures/sources.png)", ""]
    train = state.get("train", {})
    if train:
        if "minutes" in train:
            how = (f"{train.get('steps', '?')} steps in {train['minutes']} minutes (sized in time: the "
                   "rate at its peak, then decaying over the last fifth of the minutes; a step-time probe "
                   f"read {train['measured_step_seconds']} s a step, {train.get('expected_steps', '?')} "
                   "steps' worth)")
        else:
            how = f"{train.get('steps') or train.get('max_steps')} steps, as the config says"
        lines += [f"Trained for {how}; optimizer {train.get('optimizer', 'adamw')}, precision "
                  f"{train.get('precision', '32-true')}.", ""]
        for r in train.get("dagger_rounds", []):
            made = "; ".join(f"{task}: {c['episodes']} episodes, {c['steps']} steps, the model's return "
                             f"{c['return']}" for task, c in r["collected"].items())
            lines += [f"DAgger round {r['round']} (training paused at {r.get('at_minutes', '?')} minutes, "
                      f"{r['seconds']:.0f} s): the model acted, the demonstrator labelled every state it "
                      f"reached, and training went on with those episodes as more sources. {made}.", ""]

    if sections:
        lines += ["## Samples", "", *sections]

    if samples.get("chat"):
        how = f" (decoding: {samples['chat_decoding']})" if samples.get("chat_decoding") else ""
        lines += ["## Chat", "", f"The quickstart's prompts{how}:", "", "```"]
        for turn in samples["chat"]:
            lines += [f"user:      {turn['user']}", f"gato-mini: {turn['assistant']}"]
        lines += ["```", ""]

    stages = state.get("stages", {})
    if stages:
        lines += ["## Time per stage", "", "| stage | wall time |", "|---|---|"]
        lines += [f"| {name} | {duration(s.get('seconds', 0))} |" for name, s in stages.items()]
        total = sum(s.get("seconds", 0) for s in stages.values())
        lines += [f"| total | {duration(total)} |", ""]
        train = state.get("train", {})
        if train.get("eval_prediction") and "eval" in stages:
            parts = ", ".join(f"{k} {duration(v)}" for k, v in train["eval_prediction"].items())
            kept, took = duration(train["eval_reserve_seconds"]), duration(stages["eval"].get("seconds", 0))
            lines += [f"Evaluation was kept {kept}, measured before training (predicted: {parts}; with a "
                      f"margin), and took {took}.", ""]

    lines += ["## How this was made", "", "```bash", shlex.join(argv)]
    lines += ["# the same steps by hand:",
              f"gato-mini prepare --config {out / 'run' / 'config.yaml'}",
              f"gato-mini eval --model {out / 'run' / 'model'} "
              + " ".join(f"--source {t['source']}" for t in evals),
              f"gato-mini chat --model {out / 'run' / 'model'}", "```", ""]
    runs = state.get("runs", [])
    if len(runs) > 1:
        lines += [f"Resumed {len(runs) - 1} time(s); finished stages were not redone.", ""]
    versions = state.get("versions", {})
    if versions:
        lines += ["| package | version |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in versions.items()] + [""]
    path = out / "report.md"
    write_atomic(path, "\n".join(lines))
    return path
