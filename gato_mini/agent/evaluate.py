"""`gato-mini eval`: a model plays tasks; raw and normalized scores, JSON, an optional video.

For each task: the model folder must have been trained on it (``tasks.json``),
its observation and action fields must match the task's, and each episode is
prompted with a demonstration: the last timesteps (within ``prompt_tokens``)
of the highest-return episode of a Minari dataset of the same task (Gato
Sec. 3.3: a successful episode's end), by default ``runs/episodes/<task>/expert-v0``.
Scores: mean ± sd of the raw return and ``100 * (score - random) / (expert - random)``
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
from gato_mini.agent.rollout import EpisodeResult, run_agent
from gato_mini.config import GatoConfig
from gato_mini.data.fields import FieldSpec
from gato_mini.data.sequence import TokenSequence, episode_sequence
from gato_mini.errors import GatoError
from gato_mini.model.model import GatoModel
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

    @property
    def returns(self) -> list[float]:
        return [e.ret for e in self.episodes if e.error is None]

    @property
    def failed(self) -> list[EpisodeResult]:
        return [e for e in self.episodes if e.error is not None]

    def normalized(self, score: float) -> float | None:
        if self.random is None or self.expert is None or self.expert == self.random:
            return None
        return 100.0 * (score - self.random) / (self.expert - self.random)

    def summary(self) -> dict[str, Any]:
        r = np.array(self.returns, dtype=np.float64)
        mean = float(r.mean()) if len(r) else math.nan
        norm = [self.normalized(x) for x in r]
        return {"task": self.task, "episodes": len(self.episodes), "failed": len(self.failed),
                "return_mean": mean, "return_std": float(r.std()) if len(r) else math.nan,
                "normalized_mean": float(np.mean(norm)) if norm and norm[0] is not None else None,
                "normalized_std": float(np.std(norm)) if norm and norm[0] is not None else None,
                "random": self.random, "expert": self.expert, "prompt": self.prompt,
                "steps": self.steps, "seconds": round(self.seconds, 2),
                "steps_per_s": round(self.steps / self.seconds, 1) if self.seconds else None,
                "per_episode": [{k: v for k, v in asdict(e).items() if k != "actions"}
                                for e in self.episodes],
                **self.extra}


def demonstration_prompt(dataset: str | Path, task: str, fields: dict[str, FieldSpec], action: FieldSpec,
                         cfg: GatoConfig, tokenizer: TextTokenizer | None, budget: int) -> TokenSequence:
    """The end of the best episode of a Minari dataset of ``task``, whole timesteps within ``budget``."""
    from gato_mini.data.minari_io import dataset_fields, iter_episodes, open_dataset
    from gato_mini.envs.registry import TASKS

    ds = open_dataset(dataset)
    namespace = str(getattr(ds.spec, "dataset_id", "")).split("/")[0]
    their_fields, their_action = dataset_fields(ds)
    if (namespace in TASKS and namespace != task) or their_fields != fields or their_action != action:
        raise GatoError(f"prompt dataset {dataset} is of another task ({namespace or 'unknown'}), not {task}")
    best = max(iter_episodes(dataset), key=lambda e: e.episode_return)
    seq = episode_sequence({k: v[:-1] for k, v in best.observations.items()}, best.actions, fields, action,
                           cfg, tokenizer)
    bounds = np.append(seq.starts, len(seq))
    j = int(np.searchsorted(bounds, len(seq) - budget, side="left"))
    if j >= len(bounds) - 1:
        return TokenSequence.empty(cfg)  # one timestep is longer than the budget
    t0 = int(bounds[j])
    slots = seq.tokens[:t0] == cfg.special_id("<|patch|>")
    p0 = int(slots.sum())
    return TokenSequence(seq.tokens[t0:], seq.targets[t0:], seq.local_pos[t0:], seq.patches[p0:],
                         seq.patch_pos[p0:], (bounds[j:-1] - t0).astype(np.int32))


def check_task(tasks: dict[str, Any], task: str) -> tuple[dict[str, FieldSpec], FieldSpec]:
    """The fields a model was trained with for ``task``; a task it does not know is an error."""
    from gato_mini.envs.registry import get_task

    sources = tasks.get("sources", {})
    known = [n for n, s in sources.items() if s.get("kind") == "episodes"]
    if task not in sources or sources[task].get("kind") != "episodes":
        knows = ", ".join(known) or "no control tasks"
        raise GatoError(f"the model was not trained on {task}; it knows: {knows}")
    entry = sources[task]["fields"]
    fields = {k: FieldSpec.from_dict(v) for k, v in entry["observation"].items()}
    action = FieldSpec.from_dict(entry["action"])
    env_fields, env_action = get_task(task).fields()
    if env_fields != fields or env_action != action:
        raise GatoError(f"{task}: the environment's observation/action fields differ from what the model "
                        "was trained on (was the task changed after training?)")
    return fields, action


def evaluate_task(model: GatoModel, tokenizer: TextTokenizer, tasks: dict[str, Any], task: str, episodes: int,
                  num_envs: int, seed: int = 0, prompt_dataset: str | None = None, use_prompt: bool = True,
                  prompt_tokens: int | None = None, temperature: float = 0.0, use_cache: bool = True,
                  max_steps: int | None = None, video: str | None = None, progress: Any = None) -> TaskReport:
    """Run ``episodes`` episodes of ``task`` on ``num_envs`` environments at once."""
    from gato_mini.envs.registry import get_task

    if num_envs < 1 or episodes < 1:
        raise GatoError(f"--num-envs and --episodes must be at least 1, got {num_envs} and {episodes}")
    spec = get_task(task)
    fields, action = check_task(tasks, task)
    cfg = model.cfg
    prompt, prompt_name = None, None
    if use_prompt:
        path = prompt_dataset or str(Path("runs/episodes") / task / "expert-v0")
        if prompt_dataset is not None or Path(path).exists():
            budget = prompt_tokens or cfg.block_size // 4
            prompt = demonstration_prompt(path, task, fields, action, cfg, tokenizer, budget)
            prompt_name = f"{path} ({len(prompt)} tokens)"
    n = min(num_envs, episodes)
    if video:
        os.environ.setdefault("MUJOCO_GL", "egl")
    envs = [spec.make(max_steps, render_mode="rgb_array" if video and k == 0 else None) for k in range(n)]
    agent = Agent(model, fields, action, n, tokenizer, prompt, temperature, use_cache, seed=seed)
    frames: list[np.ndarray] | None = [] if video else None
    refs = spec.references()
    t0 = time.perf_counter()
    try:
        results = run_agent(agent, envs, episodes, seed, on_episode=progress, frames=frames)
    finally:
        for env in envs:
            env.close()
    report = TaskReport(task, results, refs["random"].mean if "random" in refs else None,
                        refs["expert"].mean if "expert" in refs else None, prompt_name,
                        time.perf_counter() - t0, sum(r.length for r in results))
    if video and frames:
        report.extra["video"] = write_video(frames, video)
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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"model": str(model_dir), "tasks": [r.summary() for r in reports]}, indent=1))
    tmp.replace(path)
