"""`gato-mini eval`: a model plays tasks; raw and normalized scores, JSON, an optional video.

Three kinds of task, one table and one JSON file, each kind with its evaluator
(the group of its source, :mod:`gato_mini.data.sources`):

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
from gato_mini.agent.eval_common import EvalOptions, TaskReport, source_group
from gato_mini.agent.eval_control import evaluate_control
from gato_mini.agent.eval_text import evaluate_text
from gato_mini.model.model import GatoModel
from gato_mini.reports.tables import eval_progress
from gato_mini.tokenizers.text import TextTokenizer


def evaluate_task(model: GatoModel, tokenizer: TextTokenizer, tasks: dict[str, Any], task: str,
                  options: EvalOptions, progress: Any = None) -> TaskReport:
    """Evaluate the source ``task`` of a model (``tasks``: its ``tasks.json``) as ``options`` say: episodes
    on ``options.num_envs`` environments at once (control and caption sources; episodes 0 or None is
    every held-out image of a caption source), or held-out perplexity (text and chat). ``progress`` is
    called after each episode (or batch of text) with its result."""
    group = source_group(tasks, task)
    options = options.for_group(group).checked()
    if group == "captions":
        return evaluate_captions(model, tokenizer, tasks, task, options, progress)
    if group == "text":
        return evaluate_text(model, tokenizer, tasks, task, progress)
    return evaluate_control(model, tokenizer, tasks, task, options, progress)


def evaluate_tasks(model: GatoModel, tokenizer: TextTokenizer, tasks: dict[str, Any],
                   plan: list[tuple[str, EvalOptions]], progress: bool = True) -> list[TaskReport]:
    """Evaluate each (source, options) of ``plan`` in turn under one progress bar: the one loop of
    ``gato-mini eval`` and of the quickstart's evaluation. A control task's bar shows the mean return
    so far."""
    groups = {task: source_group(tasks, task) for task, _ in plan}  # unknown names fail before any work
    reports = []
    with eval_progress(progress) as bar:
        for task, options in plan:
            group = groups[task]
            options = options.for_group(group)  # evaluate_task checks it
            caption, control = group == "captions", group == "actions"
            total = options.episodes if control or (caption and options.episodes) else None
            first = "episodes, mean return -" if control else ("images" if caption else "batches of text")
            bar_task = bar.add_task(task, total=total, note=first)
            done: list[float] = []

            def tick(result: Any, bar_task: Any = bar_task, done: list[float] = done,
                     control: bool = control) -> None:
                if result is not None:
                    done.append(result.ret)
                if control and done:
                    bar.update(bar_task, advance=1, note=f"episodes, mean return {sum(done) / len(done):.2f}")
                else:
                    bar.update(bar_task, advance=1)
            reports.append(evaluate_task(model, tokenizer, tasks, task, options, tick))
    return reports


__all__ = ["EvalOptions", "evaluate_task", "evaluate_tasks"]  # EvalOptions: eval_common is its home
