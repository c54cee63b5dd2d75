"""Evaluating a caption source: its held-out images through the caption env and the same `Agent`.

The return of an episode is sentence BLEU-4; the task's metrics are exact match
and corpus BLEU-4 (torchmetrics), the rate of each right attribute where the kind
can read its captions (caption-shapes: size, colour, shape, count, relation), and a
grid image of samples.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

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
from gato_mini.data.sources import Captions, source_of
from gato_mini.envs.caption import CaptionEnv, caption_items, score_captions
from gato_mini.envs.registry import TASKS
from gato_mini.errors import GatoError
from gato_mini.fields import FieldSpec, observation_fields
from gato_mini.model.generate import Sampling
from gato_mini.model.model import GatoModel
from gato_mini.references import reference_means
from gato_mini.reports.figures import caption_grid
from gato_mini.reports.report import relative_path
from gato_mini.tokenizers.text import TextTokenizer


def caption_image_size(trained: dict[str, Any]) -> tuple[tuple[int, int] | None, str | None]:
    """(the size a model's caption sources fitted their images to in training, a note when they differ):
    :func:`~gato_mini.agent.eval_common.trained_image_size` of the caption kinds."""
    return trained_image_size(trained, Captions)


def _held_out_images(entry: dict[str, Any], name: str) -> list[Any]:
    """The held-out images of the caption source ``name`` (its ``sources.json`` entry), each with its
    references."""
    items = caption_items(entry["kind"], entry.get("options"), "val", entry.get("val_fraction", 0.05))
    if not items:
        raise GatoError(f"{name} has no held-out images to caption")
    return items


def evaluate_captions(model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any], name: str,
                      options: EvalOptions, progress: Any = None, max_tokens: int = 48) -> SourceReport:
    """Caption ``options.episodes`` held-out images (0 or None: every one once) through the caption env and
    the `Agent`, ``options.num_envs`` at once; exact match and BLEU-4, and each part of a caption where
    the kind can read its captions (``Captions.score_attributes``)."""
    entry = source_entry(trained, name)
    items = _held_out_images(entry, name)
    count = len(items)
    episodes = options.episodes or count  # every held-out image once
    seed, samples = options.seed, options.samples
    n = min(options.num_envs or 1, episodes)
    envs = [CaptionEnv(items, render_mode="rgb_array") for _ in range(n)]  # one list of images, shared
    fields = observation_fields(envs[0].observation_space)
    agent = Agent(model, fields, FieldSpec("text", ()), n, tokenizer, None, AgentOptions(
        Sampling(max_tokens, options.temperature, seed=seed), options.use_cache))
    refs = TASKS[name].references() if name in TASKS else {}
    t0 = time.perf_counter()
    results = run_agent(agent, envs, episodes, seed, on_episode=progress, keep_actions=True)
    report = SourceReport(name, results, *reference_means(refs), None, time.perf_counter() - t0,
                        sum(r.length for r in results))
    done = [r for r in results if r.error is None]
    if done:
        captions, references = [r.info["caption"] for r in done], [r.info["references"] for r in done]
        report.extra.update(score_captions(captions, references))
        attributes = source_of(name, entry["kind"], entry.get("options")).score_attributes(captions,
                                                                                          references)
        if attributes is not None:
            report.extra["attributes"] = attributes
        report.extra["images"] = len(done)
        report.extra["held_out_images"] = count
    if samples and done:
        shown = done[:16]
        images = [items[r.seed % count].load() for r in shown]
        report.extra["samples"] = caption_grid(images, [r.info["caption"] for r in shown],
                                               [r.info["references"] for r in shown], samples)
    return report


def caption_text(summary: dict[str, Any]) -> str:
    """A caption source's metrics in one phrase: exact match, BLEU-4 and, where the kind reads its captions
    by attribute, the rate of each attribute right (the second object's colour apart when it differs)."""
    text = f"exact match {100 * summary['exact_match']:.1f}%, BLEU-4 {100 * summary['bleu4']:.1f}"
    attributes = summary.get("attributes")
    if not attributes:
        return text
    parts = [f"{k} {attributes[k]:.2f}" for k in ("colour", "shape", "size", "relation", "count")
             if attributes.get(k) is not None]
    return f"{text}; {', '.join(parts)}"


def attribute_rows(summary: dict[str, Any]) -> list[str]:
    """Markdown rows of a caption source's attribute rates: every object, then the first and second
    object apart (a wrong second object, or the first one's colour copied onto it, shows there)."""
    attributes = summary.get("attributes")
    if not attributes:
        return []
    by = attributes.get("by_object", {})

    def rate(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    rows = [f"| {summary['source']}: right | all objects | first object | second object |",
            "|---|---|---|---|"]
    for key in ("size", "colour", "shape"):
        rows.append(f"| {key} | {rate(attributes.get(key))} | {rate(by.get('first', {}).get(key))} | "
                    f"{rate(by.get('second', {}).get(key))} |")
    rows.append(f"| whole object | {rate(attributes.get('object'))} | - | - |")
    rows.append(f"| relation ({attributes.get('two_object_scenes', '?')} two-object scenes) | "
                f"{rate(attributes.get('relation'))} | - | - |")
    rows.append(f"| object count | {rate(attributes.get('count'))} | - | - |")
    if attributes.get("seen_combination") is not None:  # caption-shapes' held-out compositions
        rows.append(f"| said as a combination the training scenes use (wrong on a held-out scene) | "
                    f"{rate(attributes['seen_combination'])} | - | - |")
    return rows


class CaptionEvaluation(EpisodeEvaluation):
    """A caption source: its held-out images captioned through the caption env (:func:`evaluate_captions`),
    scored by exact match, BLEU-4 and, where the kind reads its captions, each attribute; asked from
    Python with ``Gato.caption``."""

    name, label = "captions", "caption"
    defaults = {"episodes": 0, "num_envs": 16}
    api = "caption"
    compared = ("exact_match", True, 100.0)

    def evaluate(self, model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any], name: str,
                 options: EvalOptions, progress: Any = None) -> SourceReport:
        return evaluate_captions(model, tokenizer, trained, name, options, progress)

    def progress(self, options: EvalOptions) -> tuple[int | None, str]:
        return options.episodes or None, "images"

    def for_quickstart(self, base: EvalOptions, ask: QuickstartAsk, name: str) -> EvalOptions:
        return replace(base, episodes=ask.images, num_envs=self.defaults["num_envs"],
                       samples=str(ask.out / f"{name}-samples.png"))

    def headline(self, summary: dict[str, Any]) -> dict[str, Any]:
        out = super().headline(summary)
        out.update({k: summary[k] for k in ("exact_match", "bleu4") if k in summary})
        if summary.get("attributes"):  # the rate of each attribute right, without the per-object split
            out["attributes"] = {k: v for k, v in summary["attributes"].items() if k != "by_object"}
        return out

    def metrics(self, summary: dict[str, Any]) -> str:
        if "exact_match" not in summary:
            return "no image captioned"
        return f"{caption_text(summary)} ({summary.get('images', '?')} images)"

    def samples(self, summary: dict[str, Any]) -> list[dict[str, Any]]:
        """The first eight held-out images' captions, each with its first reference."""
        return [{"source": summary["source"], "image": e["info"].get("key"), "caption": e["info"]["caption"],
                 "references": e["info"]["references"],
                 "shown": f"{summary['source']} {e['info'].get('key')}: {e['info']['caption']}   (reference: "
                          f"{e['info']['references'][0]})"}
                for e in summary.get("per_episode", [])[:8] if "caption" in e.get("info", {})]

    def section(self, summary: dict[str, Any], out: Path) -> list[str]:
        """The grid of sampled captions, the attribute rates, and eight captions as text."""
        shown = self.samples(summary)
        if not (summary.get("samples") or summary.get("attributes") or shown):
            return []
        lines = [f"### {summary['source']}: captions", ""]
        if summary.get("samples"):
            lines += [f"Held-out {summary['source']} images with the model's caption (green: exact match, "
                      "red: not) and a reference (grey):", "",
                      f"![captions]({relative_path(summary['samples'], out)})", ""]
        if summary.get("attributes"):
            lines += [f"Each part of the {summary.get('images', '?')} held-out captions, read against the "
                      "reference wording it matches best (either object may come first):", ""]
            lines += attribute_rows(summary) + [""]
        lines += [f"- `{c['image']}`: **{c['caption']}** (reference: {c['references'][0]})" for c in shown]
        return lines + ([""] if shown else [])
