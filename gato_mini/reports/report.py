"""``DIR/report.md`` of a quickstart run: scores, figures, samples, commands and versions.

Built only from files the earlier stages left in ``DIR`` (``eval.json``,
``samples.json``, the training log, ``quickstart.json``), so it can be
regenerated at any time. Written to a temporary file, then renamed.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

from gato_mini.procs import write_atomic
from gato_mini.reports.aggregate import eval_summaries
from gato_mini.reports.figures import loss_curves, read_metrics, score_bars, source_curves, source_names
from gato_mini.reports.tables import attribute_rows, caption_text, layout_text, offline_text, text_text


def _num(x: Any, fmt: str = "{:.1f}") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return fmt.format(x)


def duration(seconds: float) -> str:
    """``42 s`` or ``3.5 min``."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _relative(path: str, out: Path) -> str:
    """A path as the report links it: relative to the report's folder when inside it."""
    p = Path(path)
    return str(p.relative_to(out)) if p.is_relative_to(out) else str(p)


def _cell(text: str, width: int = 80) -> str:
    """Text fit for one cell of a markdown table: one line, no pipes, at most ``width`` characters."""
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def score_rows(summaries: list[dict[str, Any]]) -> list[str]:
    """Markdown rows of the score table, one per evaluated source."""
    rows = ["| source | kind | raw score | normalized (0 baseline, 100 expert) | random | best constant "
            "| expert | metrics |",
            "|---|---|---|---|---|---|---|---|"]
    for t in summaries:
        if "perplexity" in t:
            rows.append(f"| {t['source']} | {'chat' if t.get('chat') else 'text'} | - | - | - | - | - | "
                        f"{text_text(t)} |")
            continue
        caption = "exact_match" in t
        metrics = (f"{caption_text(t)} ({t.get('images', '?')} images)" if caption else
                   f"{t['episodes'] - t['failed']} episodes"
                   + (f", {t['failed']} failed" if t["failed"] else "")
                   + (f"; {offline_text(t['offline'])}" if t.get("offline") else "")
                   + (f"; observations: {layout_text(t['observation_layout'])}"
                      if t.get("observation_layout") else ""))
        norm = (f"{_num(t['normalized_mean'])} ± {_num(t['normalized_std'])}"
                if t.get("normalized_mean") is not None else "-")
        rows.append(f"| {t['source']} | {'caption' if caption else 'control'} | "
                    f"{_num(t['return_mean'], '{:.2f}')} ± {_num(t['return_std'], '{:.2f}')} | {norm} | "
                    f"{_num(t['random'], '{:.2f}')} | {_num(t.get('constant'), '{:.2f}')} | "
                    f"{_num(t['expert'], '{:.2f}')} | {metrics} |")
    return rows


def write_report(out: Path, state: dict[str, Any], argv: list[str]) -> Path:
    """Write ``out/report.md`` (and its figures under ``out/figures``); returns its path."""
    figures = out / "figures"
    evals = eval_summaries(json.loads((out / "eval.json").read_text()))
    samples = json.loads((out / "samples.json").read_text()) if (out / "samples.json").is_file() else {}
    lines = ["# gato-mini quickstart report", "",
             "One `tiny` Transformer trained on control episodes, image captions, text and chat at once, "
             "then evaluated on each. Normalized score = 100 (score - baseline) / (expert - baseline), where "
             "the baseline is the stronger of a random policy and the best constant action (zero torque, "
             "or one button held): a policy that does nothing scores at most 0. Offline metrics are "
             "teacher-forced on held-out logged episodes, beside the best constant's.", ""]

    lines += ["## Scores", ""] + score_rows(evals) + [""]
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

    grids = [t for t in evals if t.get("samples")]
    if grids or samples.get("captions"):
        lines += ["## Captions", ""]
        for t in grids:
            rel = _relative(t["samples"], out)
            lines += [f"Held-out {t['source']} images with the model's caption (green: exact match, "
                      "red: not) and a reference (grey):", "", f"![captions]({rel})", ""]
            if t.get("attributes"):
                lines += [f"Each part of the {t.get('images', '?')} held-out captions, read against the "
                          "reference wording it matches best (either object may come first):", ""]
                lines += attribute_rows(t) + [""]
        for c in samples.get("captions", []):
            lines.append(f"- `{c['image']}`: **{c['caption']}** (reference: {c['references'][0]})")
        lines.append("")

    gifs = [t for t in evals if t.get("video")]
    if gifs:
        lines += ["## An Atari episode", ""]
        for t in gifs:
            rel = _relative(t["video"], out)
            first = t["per_episode"][0]
            lines += [f"{t['source']}, first evaluation episode (return {first['ret']:.1f}):", "",
                      f"![{t['source']}]({rel})", ""]

    if samples.get("chat"):
        how = f" (decoding: {samples['chat_decoding']})" if samples.get("chat_decoding") else ""
        lines += ["## Chat", "", f"The quickstart's prompts{how}:", "", "```"]
        for turn in samples["chat"]:
            lines += [f"user:      {turn['user']}", f"gato-mini: {turn['assistant']}"]
        lines += ["```", ""]
    for t in evals:
        replies = (t.get("chat") or {}).get("samples") or []
        if replies:
            lines += [f"Held-out {t['source']} turns, the model's reply against the reference reply "
                      f"(unigram F1; {t['chat']['decoding']}):", "",
                      "| prompt | reply | reference | F1 |", "|---|---|---|---|"]
            lines += [f"| {_cell(r['prompt'])} | {_cell(r['reply'])} | {_cell(r['reference'])} "
                      f"| {r['f1']:.2f} |" for r in replies] + [""]

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
