"""`gato-mini eval`: a model plays tasks; raw and normalized scores, JSON, an optional video.

Three kinds of task, one table and one JSON file:

* control (an ``episodes`` source that is a registry task): episodes in the env, below;
* captions (a ``caption-*`` source): the held-out images through the caption env
  (``gato_mini.envs.caption``) and the same `Agent`; the return is sentence
  BLEU-4, and the metrics are exact match and corpus BLEU-4 (torchmetrics), with
  a grid image of samples;
* text and chat (``text*``/``chat*`` sources): perplexity on the held-out
  split, over the tokens training puts a loss on (for chat: assistant turns).

For control tasks: the model folder must have been trained on it (``tasks.json``),
its observation and action fields must match the task's, and each episode is
prompted with a demonstration: the last timesteps (within ``prompt_tokens``)
of the highest-return episode of a Minari dataset of the same task (Gato
Sec. 3.3: a successful episode's end), by default ``runs/episodes/<task>/expert-v0``.
Scores: mean ± sd of the raw return and ``100 * (score - baseline) / (expert - baseline)``, the
baseline being the stronger of random and the best constant action,
with the registry's references.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gato_mini.agent.agent import Agent
from gato_mini.agent.offline import offline_metrics
from gato_mini.agent.procenv import ProcessEnv
from gato_mini.agent.rollout import EpisodeResult, run_agent
from gato_mini.catalog import task_dataset
from gato_mini.collect import measure_reference
from gato_mini.config import GatoConfig
from gato_mini.data.datacfg import KIND_OPTIONS, SourceConfig
from gato_mini.data.minari_io import dataset_fields, iter_episodes, open_dataset
from gato_mini.data.sequence import TokenSequence, episode_sequence
from gato_mini.data.shapes import SCENE_SIZE
from gato_mini.data.sources import Source
from gato_mini.data.windows import collate
from gato_mini.envs.caption import CaptionEnv, caption_items, score_captions
from gato_mini.envs.policies import import_modules
from gato_mini.envs.registry import TASKS, Reference, baseline, get_task, human_normalized, normalized
from gato_mini.envs.user import spec_task, user_task
from gato_mini.errors import GatoError
from gato_mini.fields import FieldSpec, observation_fields
from gato_mini.model.model import GatoModel
from gato_mini.reports.aggregate import aggregate_summaries
from gato_mini.reports.figures import caption_grid
from gato_mini.tokenizers.text import TextTokenizer


@dataclass
class TaskReport:
    """What ``eval`` says about one task."""

    task: str
    episodes: list[EpisodeResult]
    random: float | None
    expert: float | None
    prompt: str | None  # the demonstration used, or None
    seconds: float
    steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    constant: float | None = None  # the best constant action's mean return (zero torque; one button held)

    @property
    def returns(self) -> list[float]:
        return [e.ret for e in self.episodes if e.error is None]

    @property
    def failed(self) -> list[EpisodeResult]:
        return [e for e in self.episodes if e.error is not None]

    @property
    def baseline(self) -> float | None:
        """The stronger of random and the best constant action: what 0 normalized means."""
        return baseline(self.random, self.constant)

    def normalized(self, score: float) -> float | None:
        return normalized(score, self.random, self.expert, self.constant)

    def summary(self) -> dict[str, Any]:
        r = np.array(self.returns, dtype=np.float64)
        mean = float(r.mean()) if len(r) else math.nan
        norm = [self.normalized(x) for x in r]
        human = [human_normalized(self.task, x) for x in r]
        extra = {"human_normalized_mean": float(np.mean(human))} if human and human[0] is not None else {}
        return {"task": self.task, "episodes": len(self.episodes), "failed": len(self.failed),
                "return_mean": mean, "return_std": float(r.std()) if len(r) else math.nan,
                "normalized_mean": float(np.mean(norm)) if norm and norm[0] is not None else None,
                "normalized_std": float(np.std(norm)) if norm and norm[0] is not None else None,
                "random": self.random, "expert": self.expert, "constant": self.constant,
                "baseline": self.baseline, "prompt": self.prompt,
                "steps": self.steps, "seconds": round(self.seconds, 2),
                "steps_per_s": round(self.steps / self.seconds, 1) if self.seconds else None,
                "per_episode": [{k: v for k, v in asdict(e).items() if k != "actions"}
                                for e in self.episodes],
                **extra, **self.extra}


def demonstration_prompt(dataset: str | Path, task: str, fields: dict[str, FieldSpec], action: FieldSpec,
                         cfg: GatoConfig, tokenizer: TextTokenizer | None, budget: int,
                         image_size: tuple[int, int] | None = None) -> TokenSequence:
    """The end of the best episode of a Minari dataset of ``task``, whole timesteps within ``budget``;
    images are fitted to ``image_size`` as the source's training data was."""
    ds = open_dataset(dataset)
    namespace = str(getattr(ds.spec, "dataset_id", "")).split("/")[0]
    their_fields, their_action = dataset_fields(ds)
    if (namespace in TASKS and namespace != task) or their_fields != fields or their_action != action:
        raise GatoError(f"prompt dataset {dataset} is of another task ({namespace or 'unknown'}), not {task}")
    best = max(iter_episodes(dataset), key=lambda e: e.episode_return)
    seq = episode_sequence({k: v[:-1] for k, v in best.observations.items()}, best.actions, fields, action,
                           cfg, tokenizer, image_size)
    bounds = np.append(seq.starts, len(seq))
    j = int(np.searchsorted(bounds, len(seq) - budget, side="left"))
    if j >= len(bounds) - 1:
        return TokenSequence.empty(cfg)  # one timestep is longer than the budget
    return seq.timesteps(j, len(seq.starts), cfg)


def source_entry(tasks: dict[str, Any], task: str) -> dict[str, Any]:
    """What ``tasks.json`` says of the source ``task``; a source the model was not trained on is an error."""
    sources = tasks.get("sources", {})
    if task not in sources and task not in TASKS:
        get_task(task)  # an unknown name: the registry's error, with a did-you-mean
    if task not in sources:
        raise GatoError(f"the model was not trained on {task}; it knows: {', '.join(sources) or 'nothing'}")
    return sources[task]


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


def caption_image_size(tasks: dict[str, Any]) -> tuple[tuple[int, int] | None, str | None]:
    """(the size a model's caption sources fitted their images to in training, per ``tasks.json``; a
    note when they differ). None for a model trained on no caption source. Sources of different sizes
    give the largest (an image fitted into it loses the least) and a note naming the others."""
    sizes = {}
    for name, entry in tasks.get("sources", {}).items():
        kind = entry.get("kind", "")
        if not kind.startswith("caption"):
            continue
        size = SCENE_SIZE if kind == "caption-shapes" else \
            {**KIND_OPTIONS.get(kind, {}), **(entry.get("options") or {})}.get("image_size")
        if size is not None:
            sizes[name] = _pair(size)
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


def source_task(tasks: dict[str, Any], task: str, env_id: str | None = None,
                imports: tuple[str, ...] = ()) -> tuple[Any, dict[str, FieldSpec], FieldSpec]:
    """(the env's Task, observation fields, action field) to evaluate the ``episodes`` source ``task`` on:
    ``env_id`` when given (any gymnasium id), else the registered task of that name, else the env the
    source's dataset stored a spec of (``tasks.json`` keeps it). The env's fields must be the trained ones."""
    entry = source_entry(tasks, task)
    if entry.get("kind") != "episodes":
        raise GatoError(f"{task} is a {entry.get('kind')} source, not a control task")
    fields = {k: FieldSpec.from_dict(v) for k, v in entry["fields"]["observation"].items()}
    action = FieldSpec.from_dict(entry["fields"]["action"])
    import_modules(imports)
    if env_id is not None:
        spec = user_task(env_id, entry.get("step_cap"), imports)
    elif task in TASKS:
        spec = TASKS[task]
    elif entry.get("env_spec"):
        spec = spec_task(task, entry["env_spec"], entry.get("step_cap") or 1000)
    else:
        raise GatoError(f"{task}: its dataset stores no env spec, so its env cannot be recreated; pass "
                        "--env ENV_ID")
    env_fields, env_action = spec.fields()
    if env_fields != fields or env_action != action:
        def show(f: dict[str, FieldSpec], a: FieldSpec) -> str:
            obs = ", ".join(f"{k}: {v.modality} {tuple(v.shape)}" for k, v in f.items())
            n = f" n={a.n}" if a.n else ""
            return f"observation {{{obs}}}, action {a.modality} {tuple(a.shape)}{n}"
        raise GatoError(f"{task}: the env {spec.env_id} has {show(env_fields, env_action)}, but the model "
                        f"was trained on {show(fields, action)}")
    return spec, fields, action


def measured_references(spec: Any, kinds: tuple[str, ...], episodes: int, seed: int, cap: int,
                        cache: Path | None) -> tuple[dict[str, Any], str]:
    """References of ``spec`` measured now at step cap ``cap`` and seeds ``seed``.. (``kinds`` among
    random, constant and expert), cached in ``cache`` (a JSON file beside the model) so they are
    measured once. Returns (references, the key saying how they were measured)."""
    key = f"{spec.env_id} cap={cap} seed={seed} episodes={episodes}"
    try:
        stored = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    except (OSError, ValueError):
        stored = {}  # a torn cache is measured again
    have = stored.setdefault(key, {})
    missing = [k for k in kinds if k not in have]
    for k in missing:
        have[k] = measure_reference(spec, k, episodes, seed, cap, progress=False).to_dict()
    if missing and cache is not None:
        try:
            _write_json(cache, stored)
        except OSError:
            pass  # a read-only model folder: measured again next time
    return {k: Reference(**have[k]) for k in kinds}, key


def user_references(spec: Any, entry: dict[str, Any], episodes: int, seed: int, max_steps: int | None,
                    cache: Path | None) -> tuple[dict[str, Any], dict[str, str]]:
    """References of an env outside the registry: random and the best constant action measured now at
    this step cap and these seeds (:func:`measured_references`), and as expert the return of the
    source's own dataset (its best windowed mean, Gato Sec. 3.1). Returns (references, where each came
    from)."""
    cap = max_steps or spec.max_steps
    refs, key = measured_references(spec, ("random", "constant"), episodes, seed, cap, cache)
    origin = {k: f"measured at eval ({key})" for k in refs}
    data = entry.get("dataset_return")
    if data:
        refs["expert"] = Reference(data["mean"], data["std"], data["episodes"], 0,
                                   entry.get("step_cap") or cap, policy="the training dataset")
        window = data.get("window", data["episodes"])
        origin["expert"] = (f"the training dataset's return, the best mean over {window} consecutive of its "
                            f"{data['episodes']} episodes (Gato Sec. 3.1)")
    return refs, origin


def evaluate_task(model: GatoModel, tokenizer: TextTokenizer, tasks: dict[str, Any], task: str, episodes: int,
                  num_envs: int, seed: int = 0, prompt_dataset: str | None = None, use_prompt: bool = True,
                  prompt_tokens: int | None = None, temperature: float = 0.0, use_cache: bool = True,
                  max_steps: int | None = None, video: str | None = None, progress: Any = None,
                  samples: str | None = None, step_timeout: float | None = 60.0,
                  offline: bool = True, env_id: str | None = None, imports: tuple[str, ...] = (),
                  reference_cache: Path | None = None) -> TaskReport:
    """Evaluate ``task``: run ``episodes`` episodes on ``num_envs`` environments at once (control and
    caption tasks; ``episodes`` 0 means every held-out image), or held-out perplexity (text and chat).

    ``samples``: where a caption task's grid image of samples goes. ``step_timeout``: control envs run
    in their own processes and an env that does not answer a reset or step within this many seconds
    fails its episode (its process is killed); None or 0 runs them in this process, with no limit.
    ``offline``: also the teacher-forced action metrics on held-out logged episodes
    (:mod:`gato_mini.agent.offline`), under ``extra["offline"]``. ``env_id``/``imports``: the gymnasium
    env to evaluate an ``episodes`` source on instead of the registry's or the dataset's stored one
    (:func:`source_task`). ``reference_cache``: where the measured references of an env outside the
    registry, or of a registry task at a ``max_steps`` below its own cap, are kept
    (:func:`measured_references`): a normalized score always compares like with like.
    """
    if num_envs < 1 or episodes < 0:
        raise GatoError(f"--num-envs must be at least 1 and --episodes at least 0, got {num_envs} and "
                        f"{episodes}")
    kind = source_entry(tasks, task).get("kind", "")
    if kind.startswith("caption"):
        return evaluate_captions(model, tokenizer, tasks, task, episodes, num_envs, seed, temperature,
                                 use_cache, samples, progress)
    if kind != "episodes":
        return evaluate_text(model, tokenizer, tasks, task, progress)
    if episodes < 1:
        raise GatoError(f"--episodes must be at least 1 for a control task, got {episodes}")
    spec, fields, action = source_task(tasks, task, env_id, imports)
    entry = source_entry(tasks, task)
    size = source_image_size(entry)
    cfg = model.cfg
    prompt, prompt_name = None, None
    if use_prompt:
        default = task_dataset("runs/episodes", task)
        if task not in TASKS and entry.get("options", {}).get("dataset"):
            default = Path(entry["options"]["dataset"])  # a user's source: its own demonstrations
        path = prompt_dataset or str(default)
        if prompt_dataset is not None or Path(path).exists():
            budget = prompt_tokens or cfg.block_size // 4
            prompt = demonstration_prompt(path, task, fields, action, cfg, tokenizer, budget, size)
            prompt_name = f"{path} ({len(prompt)} tokens)"
    n = min(num_envs, episodes)
    if video:
        os.environ.setdefault("MUJOCO_GL", "egl")
    modes = ["rgb_array" if video and k == 0 else None for k in range(n)]
    if step_timeout:
        envs = [ProcessEnv(spec.factory(max_steps, m), step_timeout, name=f"{task}[{k}]")
                for k, m in enumerate(modes)]
    else:
        envs = [spec.make(max_steps, render_mode=m) for m in modes]
    agent = Agent(model, fields, action, n, tokenizer, prompt, temperature, use_cache, image_size=size,
                  seed=seed)
    frames: list[np.ndarray] | None = [] if video else None
    if task in TASKS and env_id is None and max_steps and max_steps < spec.max_steps:
        # references.yaml holds full episodes: compare like with like, at this cap and these seeds
        refs, key = measured_references(spec, ("random", "constant", "expert"), episodes, seed, max_steps,
                                        reference_cache)
        origin = {k: f"measured at eval ({key})" for k in refs}
    elif task in TASKS and env_id is None:
        refs, origin = spec.references(), {"random": "references.yaml", "constant": "references.yaml",
                                           "expert": "references.yaml (the scripted expert)"}
    else:
        refs, origin = user_references(spec, entry, episodes, seed, max_steps, reference_cache)
    t0 = time.perf_counter()
    try:
        results = run_agent(agent, envs, episodes, seed, on_episode=progress, frames=frames)
    finally:
        for env in envs:
            env.close()
    report = TaskReport(task, results, *_reference_means(refs), prompt_name, time.perf_counter() - t0,
                        sum(r.length for r in results),
                        constant=refs["constant"].mean if "constant" in refs else None)
    report.extra["references_from"] = {k: v for k, v in origin.items() if k in refs}
    if offline:
        report.extra["offline"] = offline_task_metrics(model, tokenizer, tasks, task, action)
    if video and frames:
        report.extra["video"] = write_video(frames, video)
    return report


def trained_source(entry: dict[str, Any], task: str) -> Any:
    """The :class:`~gato_mini.data.sources.Source` a model was trained on, rebuilt from its ``tasks.json``
    entry (kind and options), so eval reads the same held-out split."""
    kind = entry.get("kind", "episodes")
    return Source(SourceConfig(task, kind, 1.0, {**KIND_OPTIONS[kind], **entry.get("options", {})}))


def offline_task_metrics(model: GatoModel, tokenizer: TextTokenizer, tasks: dict[str, Any], task: str,
                         action: FieldSpec, max_windows: int = 64) -> dict[str, Any]:
    """Teacher-forced action metrics on the held-out episodes of the source ``task`` (the split training
    held out); ``{"error": ...}`` when its dataset is not on this machine."""
    from collections import Counter

    entry = source_entry(tasks, task)
    source = trained_source(entry, task)
    if not source.opt.get("dataset"):
        return {"error": "no offline metrics: the model's tasks.json names no dataset for this source"}
    try:
        source.check()
    except GatoError as exc:
        return {"error": f"no offline metrics: {exc}"}
    held = [seq for _, seq in source.units("val", model.cfg, tokenizer, entry.get("val_fraction", 0.05),
                                           Counter())]
    if not held:  # a dataset of one episode holds none out
        return {"error": "no offline metrics: the source holds out no episode"}
    metrics = offline_metrics(model, held, action, max_windows)
    return {**metrics, "dataset": str(source.opt["dataset"])}


def _held_out_images(tasks: dict[str, Any], task: str) -> list[Any]:
    """The held-out images of the caption source ``task``, each with its references."""
    entry = source_entry(tasks, task)
    items = caption_items(entry["kind"], entry.get("options"), "val", entry.get("val_fraction", 0.05))
    if not items:
        raise GatoError(f"{task} has no held-out images to caption")
    return items


def _reference_means(refs: dict[str, Any]) -> tuple[float | None, float | None]:
    """(random, expert) mean returns of a task's stored references, None where not measured."""
    return tuple(refs[k].mean if k in refs else None for k in ("random", "expert"))  # type: ignore[return-value]


def evaluate_captions(model: GatoModel, tokenizer: TextTokenizer, tasks: dict[str, Any], task: str,
                      episodes: int, num_envs: int, seed: int = 0, temperature: float = 0.0,
                      use_cache: bool = True, samples: str | None = None, progress: Any = None,
                      max_tokens: int = 48) -> TaskReport:
    """Caption held-out images through the caption env and the `Agent`; exact match and BLEU-4."""
    items = _held_out_images(tasks, task)
    count = len(items)
    episodes = episodes or count  # every held-out image once
    n = min(num_envs, episodes)
    envs = [CaptionEnv(items, render_mode="rgb_array") for _ in range(n)]  # one list of images, shared
    fields = observation_fields(envs[0].observation_space)
    agent = Agent(model, fields, FieldSpec("text", ()), n, tokenizer, None, temperature, use_cache, seed=seed,
                  max_text_tokens=max_tokens)
    refs = TASKS[task].references() if task in TASKS else {}
    t0 = time.perf_counter()
    results = run_agent(agent, envs, episodes, seed, on_episode=progress, keep_actions=True)
    report = TaskReport(task, results, *_reference_means(refs), None, time.perf_counter() - t0,
                        sum(r.length for r in results))
    done = [r for r in results if r.error is None]
    if done:
        metrics = score_captions([r.info["caption"] for r in done], [r.info["references"] for r in done])
        report.extra.update(metrics)
        report.extra["images"] = len(done)
        report.extra["held_out_images"] = count
    if samples and done:
        shown = done[:16]
        images = [items[r.seed % count].load() for r in shown]
        report.extra["samples"] = caption_grid(images, [r.info["caption"] for r in shown],
                                               [r.info["references"] for r in shown], samples)
    return report


def evaluate_text(model: GatoModel, tokenizer: TextTokenizer, tasks: dict[str, Any], task: str,
                  progress: Any = None, batch_size: int = 8) -> TaskReport:
    """Perplexity on the held-out split of a text or chat source: ``exp`` of the mean loss over the
    tokens training puts a loss on (a document's text; a chat's assistant turns)."""
    from collections import Counter

    import torch

    entry = source_entry(tasks, task)
    kind, cfg = entry["kind"], model.cfg
    if kind not in KIND_OPTIONS or kind == "episodes" or kind.startswith("caption"):
        raise GatoError(f"{task}: cannot measure perplexity on a {kind!r} source")
    source = trained_source(entry, task)
    t0 = time.perf_counter()
    windows: list[TokenSequence] = []
    for _, seq in source.units("val", cfg, tokenizer, entry.get("val_fraction", 0.05), Counter()):
        # Windows overlap by one token, so that every token after the first is predicted once.
        for a in range(0, max(len(seq) - 1, 1), cfg.block_size - 1):  # text only: no patches to carry
            b = min(a + cfg.block_size, len(seq))
            windows.append(TokenSequence(seq.tokens[a:b], seq.targets[a:b], seq.local_pos[a:b],
                                         seq.patches[:0], seq.patch_pos[:0], np.zeros(1, np.int32)))
    if not windows:
        raise GatoError(f"{task} has no held-out text")
    device = next(model.parameters()).device
    nll, count, n_bytes = 0.0, 0, 0
    byte_len = torch.from_numpy(tokenizer.byte_lengths())
    model.eval()
    for k in range(0, len(windows), batch_size):
        batch = collate(list(enumerate(windows[k:k + batch_size])), cfg)
        batch = {key: v.to(device) for key, v in batch.items() if key != "task"}
        with torch.no_grad():
            _, loss = model(**batch, reduction="none")
        nll += float(loss.double().sum())
        count += int(batch["loss_mask"].sum())
        scored = batch["targets"][batch["loss_mask"]].cpu()
        text = scored[scored < len(byte_len)]
        n_bytes += int(byte_len[text].sum())
        if progress is not None:
            progress(None)
    report = TaskReport(task, [], None, None, None, time.perf_counter() - t0, 0)
    # Bits per byte compare runs with other vocabularies: the same total loss, per UTF-8 byte of the
    # scored text (end-of-turn tokens add their loss but no bytes).
    report.extra.update({"perplexity": math.exp(nll / max(count, 1)), "loss": nll / max(count, 1),
                         "bits_per_byte": nll / math.log(2) / max(n_bytes, 1), "bytes": n_bytes,
                         "tokens": count, "windows": len(windows)})
    return report


def write_video(frames: list[np.ndarray], path: str, fps: int = 30) -> str:
    """A GIF (Pillow) or, for .mp4, a video through imageio when it is installed."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    frames = [np.asarray(f, dtype=np.uint8) for f in frames if f is not None]
    if out.suffix.lower() == ".gif":
        from PIL import Image

        step = max(1, len(frames) // 400)  # keep GIFs small: at most ~400 frames
        images = [Image.fromarray(f) for f in frames[::step]]
        images[0].save(out, save_all=True, append_images=images[1:], duration=int(1000 * step / fps), loop=0)
        return str(out)
    try:
        import imageio.v3 as iio
    except ImportError:
        raise GatoError(f"writing {out.suffix} needs imageio (pip install imageio imageio-ffmpeg); "
                        "or give a .gif path") from None
    iio.imwrite(out, np.stack(frames), fps=fps)
    return str(out)


def write_json(reports: list[TaskReport], path: str | Path, model_dir: str) -> None:
    """All reports as one JSON file (written then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    summaries = [r.summary() for r in reports]
    _write_json(path, {"model": str(model_dir), "tasks": summaries,
                       "aggregate": aggregate_summaries(summaries)})


def _write_json(path: Path, value: Any) -> None:
    """``value`` as JSON at ``path``, written beside it then renamed (never half-written)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    tmp.replace(path)
