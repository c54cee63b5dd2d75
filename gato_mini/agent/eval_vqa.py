"""Evaluating a visual-question source: its held-out questions asked through the question env
(:class:`~gato_mini.envs.vqa.QuestionEnv`) and the same `Agent` that captions and plays.

The return of an episode is the answer's VQA accuracy (``min(1, matching answers / 3)``); the source's
metrics are the mean VQA accuracy, exact match against the most common answer, and both per question
type (caption-shapes' questions: colour, shape, size, count, relation: the most direct probe of what the
image embedding carries). Normalized like every other score: 0 is the blind prior (each question
type's most common training answer, given without looking), 100 every answer right.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from gato_mini.agent.agent import Agent, AgentOptions
from gato_mini.agent.eval_common import (
    EpisodeEvaluation,
    EvalOptions,
    QuickstartAsk,
    SourceReport,
    source_entry,
    trained_image_size,
)
from gato_mini.agent.rollout import run_agent
from gato_mini.data.vqa import Questions, VqaItem, majority_answer, normalize_answer, vqa_accuracy
from gato_mini.envs.vqa import QuestionEnv, question_items
from gato_mini.errors import GatoError
from gato_mini.fields import FieldSpec, observation_fields
from gato_mini.model.generate import Sampling
from gato_mini.model.model import GatoModel
from gato_mini.reports.report import table_cell
from gato_mini.tokenizers.text import TextTokenizer

#: Training questions read for the blind prior (each type's most common answer).
PRIOR_QUESTIONS = 4000


def question_image_size(trained: dict[str, Any]) -> tuple[int, int] | None:
    """The size a model's visual-question sources fitted their images to in training (the largest, when
    they differ): :func:`~gato_mini.agent.eval_common.trained_image_size` of the question kinds."""
    return trained_image_size(trained, Questions)[0]


def blind_prior(train: list[VqaItem]) -> dict[str, str]:
    """Each question type's most common answer over the training questions: what a model that never
    looks at the image would answer ("" for questions without a type)."""
    by_type: dict[str, Counter] = defaultdict(Counter)
    for it in train:
        by_type[it.qtype][normalize_answer(majority_answer(it.answers))] += 1
    return {t: c.most_common(1)[0][0] for t, c in by_type.items()}


def prior_accuracy(prior: dict[str, str], items: list[VqaItem]) -> float:
    """The blind prior's mean VQA accuracy on ``items`` (a type it never saw answers its overall most
    common answer)."""
    fallback = Counter(prior.values()).most_common(1)[0][0] if prior else ""
    return float(np.mean([vqa_accuracy(prior.get(it.qtype, fallback), it.answers) for it in items]))


def evaluate_vqa(model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any], name: str,
                 options: EvalOptions, progress: Any = None, max_tokens: int = 16) -> SourceReport:
    """Ask ``options.episodes`` held-out questions (0 or None: every one once) through the question env
    and the `Agent`, ``options.num_envs`` at once; VQA accuracy and exact match, overall and per type,
    normalized between the blind prior and every answer right."""
    entry = source_entry(trained, name)
    kind, opts, val_fraction = entry["kind"], entry.get("options"), entry.get("val_fraction", 0.05)
    items = question_items(kind, opts, "val", val_fraction)
    if not items:
        raise GatoError(f"{name} has no held-out questions to ask")
    episodes = options.episodes or len(items)
    n = min(options.num_envs or 1, episodes)
    envs = [QuestionEnv(items) for _ in range(n)]  # one list of questions, shared
    agent = Agent(model, observation_fields(envs[0].observation_space), FieldSpec("text", ()), n, tokenizer,
                  None, AgentOptions(Sampling(max_tokens, options.temperature, seed=options.seed),
                                     options.use_cache))
    prior = blind_prior(question_items(kind, opts, "train", val_fraction, PRIOR_QUESTIONS))
    asked = [items[(options.seed + k) % len(items)] for k in range(episodes)]
    t0 = time.perf_counter()
    results = run_agent(agent, envs, episodes, options.seed, on_episode=progress, keep_actions=True)
    report = SourceReport(name, results, prior_accuracy(prior, asked), 1.0, None, time.perf_counter() - t0,
                          sum(r.length for r in results))
    done = [r.info for r in results if r.error is None]
    if done:
        by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for d in done:
            by_type[d["type"]].append(d)
        report.extra.update({**_rates(done), "questions": len(done), "held_out_questions": len(items),
                             "prior": prior, "by_type": {t: {**_rates(ds), "questions": len(ds)}
                                                         for t, ds in sorted(by_type.items())}})
    return report


def _rates(answered: list[dict[str, Any]]) -> dict[str, float]:
    """Mean VQA accuracy and exact match of some answered questions (their episodes' ``info``)."""
    return {"vqa_accuracy": float(np.mean([vqa_accuracy(d["answer"], d["answers"]) for d in answered])),
            "exact_match": float(np.mean([d["exact_match"] for d in answered]))}


class VqaEvaluation(EpisodeEvaluation):
    """A visual-question source: its held-out questions asked (:func:`evaluate_vqa`), scored by VQA
    accuracy and exact match, overall and per question type; asked from Python with ``Gato.ask``."""

    name, label = "vqa", "vqa"
    defaults = {"episodes": 0, "num_envs": 16}
    api = "ask"
    compared = ("vqa_accuracy", True, 100.0)

    def evaluate(self, model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any], name: str,
                 options: EvalOptions, progress: Any = None) -> SourceReport:
        return evaluate_vqa(model, tokenizer, trained, name, options, progress)

    def progress(self, options: EvalOptions) -> tuple[int | None, str]:
        return options.episodes or None, "questions"

    def for_quickstart(self, base: EvalOptions, ask: QuickstartAsk, name: str) -> EvalOptions:
        return replace(base, episodes=ask.questions, num_envs=self.defaults["num_envs"])

    def headline(self, summary: dict[str, Any]) -> dict[str, Any]:
        out = super().headline(summary)
        for k in ("vqa_accuracy", "exact_match"):
            if k in summary:
                out[k] = summary[k]
        if summary.get("by_type"):
            out["by_type"] = {t: round(v["vqa_accuracy"], 4) for t, v in summary["by_type"].items()}
        return out

    def metrics(self, summary: dict[str, Any]) -> str:
        if "vqa_accuracy" not in summary:
            return "no question answered"
        types = ", ".join(f"{t} {v['vqa_accuracy']:.2f}" for t, v in summary.get("by_type", {}).items() if t)
        return (f"VQA accuracy {100 * summary['vqa_accuracy']:.1f}%, exact match "
                f"{100 * summary['exact_match']:.1f}%" + (f"; {types}" if types else "")
                + f" ({summary['questions']} questions)")

    def samples(self, summary: dict[str, Any]) -> list[dict[str, Any]]:
        """The first eight held-out questions with the model's answer and the answers given."""
        return [{"source": summary["source"], "question": e["info"]["question"],
                 "answer": e["info"]["answer"], "answers": e["info"]["answers"],
                 "shown": f"{summary['source']}: {e['info']['question']} {e['info']['answer']}   (answers: "
                          f"{', '.join(dict.fromkeys(e['info']['answers']))})"}
                for e in summary.get("per_episode", [])[:8] if "answer" in e.get("info", {})]

    def section(self, summary: dict[str, Any], out: Path) -> list[str]:
        """Accuracy per question type, and eight questions with the model's answer."""
        if "vqa_accuracy" not in summary:
            return []
        prior = summary.get("random") or 0.0
        lines = [f"### {summary['source']}: questions", "",
                 f"{summary['questions']} held-out questions; 0 normalized is the blind prior (each type's "
                 f"most common training answer, {100 * prior:.1f}% VQA accuracy here).", "",
                 "| question type | VQA accuracy | exact match | questions |", "|---|---|---|---|"]
        lines += [f"| {t or '-'} | {v['vqa_accuracy']:.3f} | {v['exact_match']:.3f} | {v['questions']} |"
                  for t, v in summary.get("by_type", {}).items()]
        lines.append("")
        lines += [f"- {table_cell(s['question'])} **{table_cell(s['answer'])}** (answers: "
                  f"{table_cell(', '.join(dict.fromkeys(s['answers'])))})" for s in self.samples(summary)]
        return lines + [""]
