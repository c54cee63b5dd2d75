"""Terminal tables for the informational commands (``tokens``, ``sizes``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from gato_mini.config import NAMED_SIZES, SPECIAL_TOKENS, GatoConfig
from gato_mini.envs.registry import HUMAN_SOURCE, TASKS, get_task, save_reference
from gato_mini.errors import GatoError
from gato_mini.model.model import count_params
from gato_mini.references import measure_reference
from gato_mini.reports.aggregate import aggregate_summaries
from gato_mini.terminal import progress_bar, terminal
from gato_mini.tokenizers import TextTokenizer, Vocab


def name_column(table: Table, header: str, names: list[str], **kw) -> None:  # noqa: ANN003
    """A column of names a user types (tasks, sources): never wrapped or cut, whatever the width."""
    table.add_column(header, no_wrap=True, min_width=max([len(header), *map(len, names)]), **kw)


_WHAT = {
    "text": "text, byte-level BPE",
    "discrete": "discrete values 0..1023 (buttons, discrete observations)",
    "continuous": "continuous values, 1024 uniform bins over [-1, 1] (mu-law fields first)",
    "special": "special tokens",
}


def print_token_space(size: str, tokenizer_path: str | None = None, console: Console | None = None) -> None:
    """Print the id ranges of a named size (and how many text ids a tokenizer uses)."""
    cfg = GatoConfig.from_name(size)
    text = TextTokenizer.load(tokenizer_path, cfg) if tokenizer_path else None
    vocab = Vocab(cfg, text)
    table = Table(title=f"gato-mini token space ({size}): {cfg.vocab_size} ids, "
                        f"embedding table padded to {cfg.padded_vocab_size}")
    for col in ("ids", "count", "what"):
        table.add_column(col)
    for r in vocab.ranges:
        what = _WHAT[r.kind]
        if r.kind == "text" and text is not None:
            what += f" ({text.n_text} used by {tokenizer_path})"
        table.add_row(f"[{r.start}, {r.stop})", str(len(r)), what)
    for k, name in enumerate(SPECIAL_TOKENS):
        table.add_row(str(cfg.special_offset + k), "1", f"  {name}")
    terminal(console).print(table)


def print_sizes(console: Console | None = None) -> None:
    """Print every named size with its shape and parameter count."""
    table = Table(title="gato-mini model sizes")
    for col in ("name", "layers", "width", "heads", "FFN (GEGLU)", "context", "text vocab", "params"):
        table.add_column(col, justify="right" if col != "name" else "left", no_wrap=True)
    for name in NAMED_SIZES:
        cfg = GatoConfig.from_name(name)
        table.add_row(name, str(cfg.n_layer), str(cfg.n_embd), str(cfg.n_head),
                      str(cfg.intermediate_size), str(cfg.block_size), str(cfg.text_vocab_size),
                      f"{count_params(cfg) / 1e6:.1f}M")
    terminal(console).print(table)


def _ref(ref) -> str:
    return "-" if ref is None else f"{ref.mean:.1f} ± {ref.std:.1f}"


def print_tasks(console: Console | None = None) -> None:
    """Every registered task: observation fields, action space, step cap, reference scores."""
    table = Table(title="gato-mini tasks (references: mean ± sd return, measured by `gato-mini scores`)")
    name_column(table, "task / env", [n for t in TASKS.values() for n in (t.name, t.env_id)])
    for col in ("observation", "action", "step cap", "random", "expert"):
        table.add_column(col)
    for task in TASKS.values():
        obs, act = task.fields()
        obs_text = "\n".join(f"{k}: {'x'.join(map(str, f.shape)) or '1'} {f.modality}"
                             + (" (mu-law)" if f.mu_law else "") for k, f in obs.items())
        n_act = int(np.prod(act.shape))
        act_text = {"discrete": f"{act.n} buttons", "text": "text (a caption)"}.get(
            act.modality, f"{n_act} torque{'s' if n_act > 1 else ''}")
        refs = task.references()
        table.add_row(f"{task.name}\n[dim]{task.env_id}[/dim]", obs_text, act_text, str(task.max_steps),
                      _ref(refs.get("random")), _ref(refs.get("expert")))
    terminal(console).print(table)


def print_scores(names: list[str], episodes: int, seed: int, max_steps: int | None, out: Path | None,
                 progress: bool, console: Console | None = None,
                 policies: tuple[str, ...] = ("random", "expert", "constant")) -> None:
    """Measure reference scores now (random, expert, best constant action) beside the stored ones; with
    ``out``, store them in that references file (other entries kept)."""
    names = list(TASKS) if names == ["all"] else names
    tasks = [get_task(n) for n in names]  # unknown names fail before any work
    if set(policies) == {"constant"} and names != list(TASKS):
        caption = next((t.name for t in tasks if t.family == "caption"), None)
        if caption:
            raise GatoError(f"{caption} is a captioning task: it has no constant action to measure")
    table = Table(title=f"reference scores: measured now ({episodes} episodes, seed {seed}) vs stored")
    name_column(table, "task", names)
    for col in ("policy", "measured", "stored", "difference / stored sd", "normalized"):
        table.add_column(col)
    for task in tasks:
        stored = task.references()
        wanted = [k for k in policies if not (k == "constant" and task.family == "caption")]
        if not wanted:
            continue  # a caption task asked only for a constant (checked above when named)
        measured = {policy: measure_reference(task.name, policy, episodes, seed, max_steps, progress)
                    for policy in wanted}
        for policy, ref in measured.items():
            old = stored.get(policy)
            if old is None:
                diff = "-"
            elif old.std > 0:
                diff = f"{(ref.mean - old.mean) / old.std:+.2f}"
            else:  # a stored score without spread (a deterministic policy): the raw difference
                diff = "same" if ref.mean == old.mean else f"{ref.mean - old.mean:+.4g} (stored sd 0)"
            norm = task.normalize(ref.mean)
            label = policy if ref.policy is None else f"{policy} ({ref.policy})"
            table.add_row(task.name, label, f"{_ref(ref)} (cap {ref.max_steps})", _ref(old), diff,
                          "-" if norm is None else f"{norm:.1f}")
        if out is not None:
            for policy, ref in measured.items():
                save_reference(task.name, policy, ref, out)
    terminal(console).print(table)
    if out is not None:
        terminal(console).print(f"stored the measured scores in {out}")


def print_prepare(result, console: Console | None = None) -> None:  # noqa: ANN001 (PrepareResult)
    """Print what ``gato-mini prepare`` built or found up to date, with counts and skips."""
    table = Table(title=f"prepared data in {result.root}  (tokenizer: {result.tokenizer}"
                        f"{', trained now' if result.tokenizer_trained else ''})")
    name_column(table, "source", [r.name for r in result.sources])
    for col in ("status", "units train/val", "tokens train/val", "patches", "skipped", "seconds"):
        table.add_column(col, justify="left" if col in ("status", "skipped") else "right")
    for r in result.sources:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(r.skipped.items())) or "-"
        table.add_row(r.name, r.status, f"{r.units.get('train', 0)}/{r.units.get('val', 0)}",
                      f"{r.tokens.get('train', 0):,}/{r.tokens.get('val', 0):,}", f"{r.patches:,}", skipped,
                      f"{r.seconds:.1f}" if r.status == "built" else "-")
    console = terminal(console)
    console.print(table)
    if result.build_seconds > 0:
        console.print(f"tokenized {result.built_tokens:,} tokens in {result.build_seconds:.1f} s of work "
                      f"({result.built_tokens / result.build_seconds:,.0f} tokens/s per process)")


def eval_progress(enabled: bool):  # noqa: ANN201 (a rich Progress)
    """The episode progress bar of ``gato-mini eval`` and the quickstart's evaluation."""
    return progress_bar("{task.fields[note]}", enabled=enabled)


def print_summaries(summaries: list[dict], cells: list[dict[str, str]],
                    console: Console | None = None) -> None:
    """The score table: one row of ``cells`` per summary (each source's evaluation makes them,
    :func:`gato_mini.agent.evaluate.print_eval`), where the references came from when not the
    registry's, and the aggregates over tasks."""
    table = Table(title="gato-mini eval (normalized = 100 (score - baseline) / (expert - baseline), "
                        "baseline = the stronger of random and the best constant action; caption return: "
                        "sentence BLEU-4 in [0, 1])")
    columns = ("kind", "episodes", "raw", "normalized", "random", "constant", "expert", "metrics",
               "steps_per_s", "prompt")
    headers = {"raw": "return", "steps_per_s": "steps/s"}
    name_column(table, "source", [c["source"] for c in cells])
    for col in columns:
        left = col in ("kind", "prompt", "metrics")
        table.add_column(headers.get(col, col), justify="left" if left else "right")
    for c in cells:
        table.add_row(c["source"], *(c[col] for col in columns))
    console = terminal(console)
    console.print(table)
    for s in summaries:  # references that are not the registry's: say where they came from
        origin = s.get("references_from") or {}
        if any(not v.startswith("references.yaml") for v in origin.values()):
            console.print(f"{s['source']} references: " + "; ".join(f"{k} {v}" for k, v in origin.items()))
    print_aggregates(summaries, console)


def print_aggregates(summaries: list[dict], console: Console | None = None) -> None:
    """Mean, median and IQM over tasks of the normalized (and, for Atari, human-normalized) scores,
    each with its 95% stratified bootstrap interval; nothing when no task has a normalized score."""
    agg = aggregate_summaries(summaries)
    rows = [(k, agg[k]) for k in ("normalized", "human_normalized") if agg[k]["tasks"]]
    if not rows:
        return
    note = (f"; human-normalized: {HUMAN_SOURCE}, so a score at a shorter step cap is not comparable with "
            "published tables") if agg["human_normalized"]["tasks"] else ""
    table = Table(title=f"aggregates over tasks, one score per task ({agg['method']}; the interval "
                        f"covers {agg['covers']}){note}")
    for col in ("score", "tasks", "mean [95% CI]", "median [95% CI]", "IQM [95% CI]"):
        table.add_column(col, justify="left" if col in ("score", "tasks") else "right")
    for name, a in rows:
        cells = [f"{a[s]['value']:.1f} [{a[s]['ci_low']:.1f}, {a[s]['ci_high']:.1f}]"
                 for s in ("mean", "median", "iqm")]
        table.add_row(name.replace("_", "-"), str(len(a["tasks"])), *cells)
    terminal(console).print(table)
