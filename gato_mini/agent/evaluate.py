"""`gato-mini eval`: a model is scored on the sources it was trained on; raw and normalized scores,
JSON, an optional video.

Three groups of source, one table and one JSON file, each group with its evaluator
(:attr:`Source.group <gato_mini.data.source.Source.group>`):

* control (an ``episodes`` source): episodes in the env (:mod:`~gato_mini.agent.eval_control`);
* captions (a ``caption-*`` source): the held-out images through the caption env
  and the same `Agent` (:mod:`~gato_mini.agent.eval_captions`);
* text and chat (``text*``/``chat*`` sources): perplexity on the held-out
  split (:mod:`~gato_mini.agent.eval_text`).

What they share (the report, the defaults per kind, the JSON) is in
:mod:`~gato_mini.agent.eval_common`.
"""

from __future__ import annotations

from typing import Any

from gato_mini.agent.eval_captions import evaluate_captions
from gato_mini.agent.eval_common import EvalOptions, SourceReport, source_group
from gato_mini.agent.eval_control import evaluate_control
from gato_mini.agent.eval_text import evaluate_text
from gato_mini.model.model import GatoModel
from gato_mini.reports.tables import eval_progress
from gato_mini.tokenizers.text import TextTokenizer


def evaluate_source(model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any], name: str,
                    options: EvalOptions, progress: Any = None) -> SourceReport:
    """Evaluate the source ``name`` of a model (``trained``: its ``sources.json``) as ``options`` say:
    episodes on ``options.num_envs`` environments at once (control and caption sources; episodes 0 or None is
    every held-out image of a caption source), or held-out perplexity (text and chat). ``progress`` is
    called after each episode (or batch of text) with its result."""
    group = source_group(trained, name)
    options = options.for_group(group).checked()
    if group == "captions":
        return evaluate_captions(model, tokenizer, trained, name, options, progress)
    if group == "text":
        return evaluate_text(model, tokenizer, trained, name, progress, options=options)
    return evaluate_control(model, tokenizer, trained, name, options, progress)


def evaluate_sources(model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any],
                   plan: list[tuple[str, EvalOptions]], progress: bool = True) -> list[SourceReport]:
    """Evaluate each (source, options) of ``plan`` in turn under one progress bar: the one loop of
    ``gato-mini eval`` and of the quickstart's evaluation. A control source's bar shows the mean return
    so far."""
    groups = {name: source_group(trained, name) for name, _ in plan}  # unknown names fail before any work
    reports = []
    with eval_progress(progress) as bar:
        for name, options in plan:
            group = groups[name]
            options = options.for_group(group)  # evaluate_source checks it
            caption, control = group == "captions", group == "actions"
            total = options.episodes if control or (caption and options.episodes) else None
            first = "episodes, mean return -" if control else ("images" if caption else "batches of text")
            row = bar.add_task(name, total=total, note=first)
            done: list[float] = []

            def tick(result: Any, row: Any = row, done: list[float] = done,
                     control: bool = control) -> None:
                if result is not None:
                    done.append(result.ret)
                if control and done:
                    bar.update(row, advance=1, note=f"episodes, mean return {sum(done) / len(done):.2f}")
                else:
                    bar.update(row, advance=1)
            reports.append(evaluate_source(model, tokenizer, trained, name, options, tick))
    return reports


__all__ = ["EvalOptions", "evaluate_source", "evaluate_sources"]  # EvalOptions: eval_common is its home
