"""Evaluating a control task: episodes in its env, prompted with a demonstration, scored raw and
normalized against the references, with the teacher-forced offline metrics beside.

The model folder must have been trained on the source (``sources.json``), its
observation and action fields must match the env's, and each episode is
prompted with a demonstration: the last timesteps (within ``prompt_tokens``) of
the highest-return episode of a Minari dataset of the same task (Gato Sec. 3.3:
a successful episode's end), by default ``runs/episodes/<task>/expert-v0``.
Scores: mean ± sd of the raw return and ``100 * (score - baseline) / (expert -
baseline)``, the baseline being the stronger of random and the best constant
action, with the registry's references (or, off the registry or below a task's
step cap, references measured at eval and cached beside the model).
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
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
    trained_source,
    write_video,
)
from gato_mini.agent.offline import offline_metrics
from gato_mini.agent.procenv import ProcessEnv
from gato_mini.agent.rollout import run_agent
from gato_mini.catalog import task_dataset
from gato_mini.config import GatoConfig
from gato_mini.data.minari_io import dataset_fields, iter_episodes, open_dataset
from gato_mini.data.sequence import TokenSequence, episode_sequence
from gato_mini.envs.policies import import_modules
from gato_mini.envs.registry import TASKS
from gato_mini.envs.user import spec_task, user_task
from gato_mini.errors import GatoError
from gato_mini.fields import FieldSpec, same_spaces
from gato_mini.model.generate import Sampling
from gato_mini.model.model import GatoModel
from gato_mini.references import eval_references, reference_means
from gato_mini.reports.report import relative_path
from gato_mini.tokenizers.text import TextTokenizer


def demonstration_prompt(dataset: str | Path, name: str, fields: dict[str, FieldSpec], action: FieldSpec,
                         cfg: GatoConfig, tokenizer: TextTokenizer | None, budget: int,
                         image_size: tuple[int, int] | None = None) -> TokenSequence:
    """The end of the best episode of a Minari dataset of the task ``name``, whole timesteps within
    ``budget``; images are fitted to ``image_size`` as the source's training data was."""
    ds = open_dataset(dataset)
    namespace = str(getattr(ds.spec, "dataset_id", "")).split("/")[0]
    their_fields, their_action = dataset_fields(ds)
    same = same_spaces((their_fields, their_action), (fields, action))
    if (namespace in TASKS and namespace != name) or not same:
        raise GatoError(f"prompt dataset {dataset} is of another task ({namespace or 'unknown'}), not {name}")
    best = max(iter_episodes(dataset), key=lambda e: e.episode_return)
    seq = episode_sequence({k: v[:-1] for k, v in best.observations.items()}, best.actions, fields, action,
                           cfg, tokenizer, image_size)
    bounds = np.append(seq.starts, len(seq))
    j = int(np.searchsorted(bounds, len(seq) - budget, side="left"))
    if j >= len(bounds) - 1:
        return TokenSequence.empty(cfg)  # one timestep is longer than the budget
    return seq.timesteps(j, len(seq.starts), cfg)


def source_prompt(cfg: GatoConfig, tokenizer: TextTokenizer | None, entry: dict[str, Any], name: str,
                  io: tuple[dict[str, FieldSpec], FieldSpec], dataset: str | None = None,
                  tokens: int | None = None) -> tuple[TokenSequence | None, str | None]:
    """(the demonstration prompt, what it is) for acting on the source ``name`` (``entry``: its
    ``sources.json`` entry; ``io``: its observation and action fields): the end of the best episode of
    ``dataset``, by default the task's ``runs/episodes/<task>/expert-v0`` or a user's source's own
    demonstrations, within ``tokens`` (default a quarter of the block). (None, None) when no dataset was
    named and the default one is not on this machine."""
    default = task_dataset("runs/episodes", name)
    if name not in TASKS and entry.get("options", {}).get("dataset"):
        default = Path(entry["options"]["dataset"])  # a user's source: its own demonstrations
    path = dataset or str(default)
    if dataset is None and not Path(path).exists():
        return None, None
    prompt = demonstration_prompt(path, name, *io, cfg, tokenizer, tokens or cfg.block_size // 4,
                                  source_image_size(entry))
    return prompt, f"{path} ({len(prompt)} tokens)"


def source_image_size(entry: dict[str, Any]) -> tuple[int, int] | None:
    """The size an ``episodes`` source's images were fitted to in training (its ``image_size`` option),
    or None where they kept the env's size."""
    return _pair((entry.get("options") or {}).get("image_size"))


def _pair(size: Any) -> tuple[int, int] | None:
    """An ``image_size`` option (an int, or [height, width]) as (height, width); None stays None."""
    if size is None:
        return None
    h, w = (size, size) if isinstance(size, int) else size
    return int(h), int(w)


def source_task(trained: dict[str, Any], name: str, env_id: str | None = None,
                imports: tuple[str, ...] = ()) -> tuple[Any, dict[str, FieldSpec], FieldSpec]:
    """(the env's Task, observation fields, action field) to evaluate the ``episodes`` source ``name``
    on: ``env_id`` when given (any gymnasium id), else the registered task of that name, else the env the
    source's dataset stored a spec of (``sources.json`` keeps it). The env's fields must be the trained
    ones."""
    entry = source_entry(trained, name)
    if entry.get("kind") != "episodes":
        raise GatoError(f"{name} is a {entry.get('kind')} source, not a control task")
    fields, action = source_fields(entry)
    import_modules(imports)
    if env_id is not None:
        spec = user_task(env_id, entry.get("step_cap"), imports)
    elif name in TASKS:
        spec = TASKS[name]
    elif entry.get("env_spec"):
        spec = spec_task(name, entry["env_spec"], entry.get("step_cap") or 1000)
    else:
        raise GatoError(f"{name}: its dataset stores no env spec, so its env cannot be recreated; pass "
                        "--env ENV_ID")
    env_fields, env_action = spec.fields()
    if not same_spaces((env_fields, env_action), (fields, action)):
        raise GatoError(f"{name}: the env {spec.env_id} has {show_fields(env_fields, env_action)}, but the "
                        f"model was trained on {show_fields(fields, action)}")
    return spec, fields, action


def source_fields(entry: dict[str, Any]) -> tuple[dict[str, FieldSpec], FieldSpec]:
    """(observation fields, action field) an ``episodes`` source was trained on, from its ``sources.json``
    entry."""
    obs = {k: FieldSpec.from_dict(v) for k, v in entry["fields"]["observation"].items()}
    return obs, FieldSpec.from_dict(entry["fields"]["action"])


def show_fields(fields: dict[str, FieldSpec], action: FieldSpec) -> str:
    """Observation and action fields in one line, for an error naming a mismatch."""
    obs = ", ".join(f"{k}: {v.modality} {tuple(v.shape)}" for k, v in fields.items())
    n = f" n={action.n}" if action.n else ""
    return f"observation {{{obs}}}, action {action.modality} {tuple(action.shape)}{n}"


def source_agent(model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any], name: str, n: int,
                 options: EvalOptions) -> tuple[Any, Agent, str | None]:
    """(the env's Task, an :class:`Agent` of ``n`` slots, what its prompt is) to play the ``episodes``
    source ``name`` as ``options`` say (its env, prompt, temperature, seed and cache): the agent of
    ``gato-mini eval`` and of :meth:`gato_mini.api.Gato.agent`."""
    o = options
    spec, fields, action = source_task(trained, name, o.env_id, o.imports)
    entry = source_entry(trained, name)
    prompt, prompt_name = None, None
    if o.use_prompt:
        prompt, prompt_name = source_prompt(model.cfg, tokenizer, entry, name, (fields, action),
                                            o.prompt_dataset, o.prompt_tokens)
    agent = Agent(model, fields, action, n, tokenizer, prompt,
                  AgentOptions(Sampling(temperature=o.temperature, seed=o.seed), o.use_cache,
                               image_size=source_image_size(entry), value_point=o.value_point))
    return spec, agent, prompt_name


def evaluate_control(model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any], name: str,
                     options: EvalOptions, progress: Any = None) -> SourceReport:
    """Play ``options.episodes`` episodes of the ``episodes`` source ``name`` on ``options.num_envs`` envs at
    once (:class:`~gato_mini.agent.eval_common.EvalOptions` says what each option means)."""
    o = options
    episodes, max_steps, seed, video = o.episodes or 0, o.max_steps, o.seed, o.video
    if episodes < 1:
        raise GatoError(f"--episodes must be at least 1 for a control task, got {episodes}")
    n = min(o.num_envs or 1, episodes)
    spec, agent, prompt_name = source_agent(model, tokenizer, trained, name, n, o)
    if video:
        os.environ.setdefault("MUJOCO_GL", "egl")
    envs = eval_envs(spec, name, n, max_steps, o.step_timeout, video=bool(video))
    frames: list[np.ndarray] | None = [] if video else None
    refs, origin = source_references(spec, trained, name, o)
    t0 = time.perf_counter()
    try:
        results = run_agent(agent, envs, episodes, seed, on_episode=progress, frames=frames)
    finally:
        for env in envs:
            env.close()
    report = SourceReport(name, results, *reference_means(refs), prompt_name, time.perf_counter() - t0,
                          sum(r.length for r in results),
                          constant=refs["constant"].mean if "constant" in refs else None)
    report.extra["references_from"] = origin
    report.extra["observation_layout"] = observation_layout(agent.fields)
    report.extra["value_point"] = agent.point  # how a greedy action was read: its bins' median or mode
    if o.offline:
        report.extra["offline"] = offline_task_metrics(model, tokenizer, trained, name, agent.action,
                                                           point=agent.point)
    if video and frames:
        report.extra["video"] = write_video(frames, video)
    return report


def source_references(spec: Any, trained: dict[str, Any], name: str, options: EvalOptions
                      ) -> tuple[dict[str, Any], dict[str, str]]:
    """(references, where each came from) an evaluation of the ``episodes`` source ``name`` on ``spec``
    (its Task) compares with, at ``options``' episodes, seeds and step cap: stored, cached, or measured
    now into ``options.reference_cache``."""
    o = options
    return eval_references(spec, source_entry(trained, name), o.episodes or 1, o.seed, o.max_steps,
                           o.reference_cache, registered=name in TASKS and o.env_id is None)


def eval_envs(spec: Any, name: str, n: int, max_steps: int | None, step_timeout: float | None,
              video: bool = False) -> list[Any]:
    """The ``n`` envs an evaluation of ``name`` plays on (``spec``: its Task), each in its own process
    when ``step_timeout`` is set; with ``video`` the first renders frames."""
    modes = ["rgb_array" if video and k == 0 else None for k in range(n)]
    if step_timeout:
        return [ProcessEnv(spec.factory(max_steps, m), step_timeout, name=f"{name}[{k}]")
                for k, m in enumerate(modes)]
    return [spec.make(max_steps, render_mode=m) for m in modes]


class _Enough(Exception):
    """Raised by :class:`_TimedAgent` once it has acted the steps it was asked to time."""


class _TimedAgent:
    """An agent whose batched steps are timed (``times``: when each began), stopping the run with
    :class:`_Enough` at step ``steps``."""

    def __init__(self, agent: Agent, steps: int) -> None:
        self.agent, self.steps, self.times = agent, steps, []

    def reset(self, i: int) -> None:
        self.agent.reset(i)

    def act(self, observations: dict[int, dict[str, Any]]) -> dict[int, Any]:
        self.times.append(time.perf_counter())
        if len(self.times) > self.steps:
            raise _Enough
        return self.agent.act(observations)


def acting_seconds(model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any], name: str,
                   options: EvalOptions, steps: int = 64) -> float:
    """The seconds :func:`evaluate_control` will take to play ``options.episodes`` episodes of ``name``
    (references and offline metrics aside), predicted from ``steps`` batched steps of the same agent on
    the same envs, timed: their start (the envs' processes, the first resets, the prompt's prefill) is
    paid once a batch of episodes, a step's mean cost at each step up to the cap (the refills of a
    sliding context included), every episode taken to run to the cap, so the prediction errs long where
    episodes end early. The weights do not matter, only the model's size: the quickstart asks this of
    its untrained model to size the time it keeps for evaluation."""
    o = options
    episodes = o.episodes or 1
    n = min(o.num_envs or 1, episodes)
    spec, agent, _ = source_agent(model, tokenizer, trained, name, n, o)
    cap = o.max_steps or spec.max_steps
    timed = _TimedAgent(agent, min(steps, cap) + 1)
    t0 = time.perf_counter()
    envs = eval_envs(spec, name, n, max_steps=cap, step_timeout=o.step_timeout)
    try:
        run_agent(timed, envs, n * (steps + 1), o.seed)  # type: ignore[arg-type]
    except _Enough:
        pass
    finally:
        for env in envs:
            env.close()
    t = timed.times
    if len(t) < 3:  # the run ended before it stepped twice
        return math.ceil(episodes / n) * cap * (t[-1] - t0 if t else 1.0)
    start, step = t[1] - t0, (t[-1] - t[1]) / (len(t) - 2)
    return math.ceil(episodes / n) * (start + cap * step)


def observation_layout(fields: dict[str, FieldSpec]) -> dict[str, str]:
    """Field -> how the model reads it: "vector" (one token), "values" (a token per value), "image",
    "discrete" or "text" (the eval JSON and the report name it)."""
    return {k: f.layout if f.modality == "continuous" else f.modality for k, f in fields.items()}


def offline_task_metrics(model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any], name: str,
                         action: FieldSpec, max_windows: int = 64, point: str = "median") -> dict[str, Any]:
    """Teacher-forced action metrics on the held-out episodes of the source ``name`` (the split training
    held out); ``{"error": ...}`` when its dataset is not on this machine."""
    entry = source_entry(trained, name)
    source = trained_source(entry, name)
    source.trained_fields = source_fields(entry)  # tokenized as trained: the stored statistics
    if not source.options.get("dataset"):
        return {"error": "no offline metrics: the model's sources.json names no dataset for this source"}
    try:
        source.check(model.cfg)
    except GatoError as exc:
        return {"error": f"no offline metrics: {exc}"}
    held = [seq for _, seq in source.units("val", model.cfg, tokenizer, entry.get("val_fraction", 0.05),
                                           Counter())]
    if not held:  # a dataset of one episode holds none out
        return {"error": "no offline metrics: the source holds out no episode"}
    metrics = offline_metrics(model, held, action, max_windows, point)
    return {**metrics, "dataset": str(source.options["dataset"])}


def layout_text(layout: dict[str, str]) -> str:
    """How a control source's observation fields were tokenized, e.g. ``observation: one vector token``."""
    said = {"vector": "one vector token", "values": "a token per value", "image": "image patches",
            "discrete": "a token per value", "text": "text"}
    return ", ".join(f"{k}: {said.get(v, v)}" for k, v in layout.items())


def offline_text(offline: dict[str, Any] | None) -> str:
    """The offline action metric of a summary, beside the best constant's: one short phrase."""
    if not offline:
        return "-"
    if "error" in offline:
        return "offline: no held-out data"
    if offline["metric"] == "accuracy":
        return f"offline accuracy {offline['value']:.3f} (majority {offline['baseline']:.3f})"
    return f"offline bin error {offline['value']:.1f} (constant {offline['baseline']:.1f})"


class ControlEvaluation(EpisodeEvaluation):
    """A control task (an ``episodes`` source): episodes in its env (:func:`evaluate_control`), scored
    raw and normalized, the offline metrics beside; asked from Python with ``Gato.agent``."""

    name = label = "control"
    defaults = {"episodes": 10, "num_envs": 4}
    plays = True
    api = "agent"
    compared = ("normalized_mean", True, 1.0)

    def evaluate(self, model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any], name: str,
                 options: EvalOptions, progress: Any = None) -> SourceReport:
        return evaluate_control(model, tokenizer, trained, name, options, progress)

    def progress(self, options: EvalOptions) -> tuple[int | None, str]:
        return options.episodes, "episodes, mean return -"

    def for_quickstart(self, base: EvalOptions, ask: QuickstartAsk, name: str) -> EvalOptions:
        return replace(base, episodes=ask.episodes, num_envs=ask.num_envs, prompt_dataset=ask.dataset,
                       max_steps=ask.max_steps, video=ask.video)

    def headline(self, summary: dict[str, Any]) -> dict[str, Any]:
        out = super().headline(summary)
        offline = summary.get("offline")
        if offline and "error" not in offline:
            out["offline"] = {k: offline[k] for k in ("metric", "value", "baseline")}
        return out

    def metrics(self, summary: dict[str, Any]) -> str:
        text = offline_text(summary.get("offline"))
        layout = summary.get("observation_layout")
        return f"{text}; observations: {layout_text(layout)}" if layout else text

    def section(self, summary: dict[str, Any], out: Path) -> list[str]:
        """Its first episode's video, where one was made."""
        if not summary.get("video"):
            return []
        first = summary["per_episode"][0]
        return [f"### {summary['source']}: an episode", "",
                f"The first evaluation episode (return {first['ret']:.1f}):", "",
                f"![{summary['source']}]({relative_path(summary['video'], out)})", ""]
