"""Evaluating a caption source: its held-out images through the caption env and the same `Agent`.

The return of an episode is sentence BLEU-4; the task's metrics are exact match
and corpus BLEU-4 (torchmetrics), the rate of each right attribute where the kind
can read its captions (caption-shapes: size, colour, shape, count, relation), and a
grid image of samples.
"""

from __future__ import annotations

import time
from typing import Any

from gato_mini.agent.agent import Agent, AgentOptions
from gato_mini.agent.eval_common import EvalOptions, SourceReport, source_entry
from gato_mini.agent.rollout import run_agent
from gato_mini.data.sources import KINDS, source_of
from gato_mini.envs.caption import CaptionEnv, caption_items, score_captions
from gato_mini.envs.registry import TASKS
from gato_mini.errors import GatoError
from gato_mini.fields import FieldSpec, observation_fields
from gato_mini.model.generate import Sampling
from gato_mini.model.model import GatoModel
from gato_mini.references import reference_means
from gato_mini.reports.figures import caption_grid
from gato_mini.tokenizers.text import TextTokenizer


def caption_image_size(trained: dict[str, Any]) -> tuple[tuple[int, int] | None, str | None]:
    """(the size a model's caption sources fitted their images to in training, per ``sources.json``; a
    note when they differ). None for a model trained on no caption source. Sources of different sizes
    give the largest (an image fitted into it loses the least) and a note naming the others."""
    sizes = {}
    for name, entry in trained.get("sources", {}).items():
        kind = entry.get("kind", "")
        if kind in KINDS and KINDS[kind].group == "captions":
            sizes[name] = source_of(name, kind, entry.get("options")).image_size()
    if not sizes:
        return None, None
    best = max(sizes, key=lambda k: sizes[k][0] * sizes[k][1])
    others = {k: v for k, v in sizes.items() if v != sizes[best]}
    if not others:
        return sizes[best], None
    listed = ", ".join(f"{k} at {h}x{w}" for k, (h, w) in others.items())
    h, w = sizes[best]
    return sizes[best], (f"captioning at {h}x{w}, the size {best} trained at ({listed}; --image-size "
                         "chooses)")


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
