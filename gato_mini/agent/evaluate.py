"""`gato-mini eval`: a model is scored on the sources it was trained on; raw and normalized scores,
JSON, an optional video.

Each source is scored by its kind's :class:`~gato_mini.agent.eval_common.Evaluation` (the kind's class
names it: :attr:`Source.evaluation <gato_mini.data.source.Source.evaluation>`):

* control (an ``episodes`` source): episodes in the env (:mod:`~gato_mini.agent.eval_control`);
* captions (a ``caption-*`` source): the held-out images through the caption env
  and the same `Agent` (:mod:`~gato_mini.agent.eval_captions`);
* text and chat: perplexity on the held-out split, a chat's replies scored
  (:mod:`~gato_mini.agent.eval_text`).

The loop over sources, the score table and the report's parts below ask the evaluation and never
the kind's name; what the evaluations share (options, the report of one source, the JSON) is in
:mod:`~gato_mini.agent.eval_common`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from gato_mini.agent.eval_common import EvalOptions, SourceReport, source_evaluation, summary_evaluation
from gato_mini.model.model import GatoModel
from gato_mini.reports.tables import eval_progress, print_summaries
from gato_mini.tokenizers.text import TextTokenizer


def evaluate_source(model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any], name: str,
                    options: EvalOptions, progress: Any = None) -> SourceReport:
    """Evaluate the source ``name`` of a model (``trained``: its ``sources.json``) as ``options`` say, by
    its kind's evaluation: episodes on ``options.num_envs`` environments at once (control and caption
    sources; episodes 0 or None is every held-out image of a caption source), or held-out perplexity
    (text and chat). ``progress`` is called after each episode (or batch of text) with its result."""
    evaluation = source_evaluation(trained, name)
    options = options.for_evaluation(evaluation).checked()
    report = evaluation.evaluate(model, tokenizer, trained, name, options, progress)
    report.evaluation = evaluation.name
    return report


def evaluate_sources(model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any],
                     plan: list[tuple[str, EvalOptions]], progress: bool = True) -> list[SourceReport]:
    """Evaluate each (source, options) of ``plan`` in turn under one progress bar: the one loop of
    ``gato-mini eval`` and of the quickstart's evaluation. A source that plays episodes shows the mean
    return so far."""
    evaluations = {name: source_evaluation(trained, name) for name, _ in plan}  # unknown names fail first
    reports = []
    with eval_progress(progress) as bar:
        for name, options in plan:
            evaluation = evaluations[name]
            total, first = evaluation.progress(options.for_evaluation(evaluation))
            row = bar.add_task(name, total=total, note=first)
            done: list[float] = []

            def tick(result: Any, row: Any = row, done: list[float] = done,
                     plays: bool = evaluation.plays) -> None:
                if result is not None:
                    done.append(result.ret)
                if plays and done:
                    bar.update(row, advance=1, note=f"episodes, mean return {sum(done) / len(done):.2f}")
                else:
                    bar.update(row, advance=1)
            reports.append(evaluate_source(model, tokenizer, trained, name, options, tick))
    return reports


def score_cells(summaries: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Each summary's cells of the score table (its evaluation's :meth:`cells`), with its source."""
    return [{"source": s["source"], **summary_evaluation(s).cells(s)} for s in summaries]


def print_eval(reports: list[SourceReport] | list[dict[str, Any]], console: Console | None = None) -> None:
    """The score table of some reports (or of their summaries, as ``eval.json`` keeps them) and the
    aggregates over tasks."""
    summaries = [r if isinstance(r, dict) else r.summary() for r in reports]
    print_summaries(summaries, score_cells(summaries), console)


def report_sections(summaries: list[dict[str, Any]], out: Path) -> list[str]:
    """The report's part for each source that has one (its evaluation's :meth:`section`), in order."""
    return [line for s in summaries for line in summary_evaluation(s).section(s, out)]


__all__ = ["EvalOptions", "evaluate_source", "evaluate_sources", "print_eval", "report_sections",
           "score_cells"]  # EvalOptions: eval_common is its home
