"""What every evaluator shares: the report of one source, the model's sources, the defaults per kind,
and the JSON, video and grid outputs. The evaluators: :mod:`~gato_mini.agent.eval_control`,
:mod:`~gato_mini.agent.eval_captions`, :mod:`~gato_mini.agent.eval_text`; the dispatch by a source's
group: :mod:`~gato_mini.agent.evaluate`."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from gato_mini.agent.rollout import EpisodeResult
from gato_mini.data.sources import KINDS, Source, source_of
from gato_mini.envs.registry import TASKS, baseline, get_task, human_normalized, normalized
from gato_mini.errors import GatoError
from gato_mini.options import Checked, count, number, seed
from gato_mini.procs import write_atomic
from gato_mini.reports.aggregate import aggregate_summaries

#: What ``gato-mini eval`` and the quickstart run per source group when not told otherwise: episodes
#: (captions: 0, every held-out image once) and environments at once.
EVAL_DEFAULTS: dict[str, dict[str, int]] = {
    "actions": {"episodes": 10, "num_envs": 4},
    "captions": {"episodes": 0, "num_envs": 16},
    "text": {"episodes": 0, "num_envs": 1},
}


@dataclass(frozen=True)
class EvalOptions(Checked):
    """How a source is evaluated: built once by ``gato-mini eval`` (from its flags, checked before the
    model loads) or by the quickstart, and read by every evaluator;
    :func:`~gato_mini.agent.evaluate.evaluate_source` checks it too, for callers from Python.

    ``episodes``/``num_envs``: None takes the source group's default (:data:`EVAL_DEFAULTS`; episodes 0 is
    every held-out image of a caption source). ``seed``: episode i uses seed + i.
    ``prompt_dataset``/``use_prompt``/``prompt_tokens``: the demonstration a control episode is prompted
    with (:func:`~gato_mini.agent.eval_control.demonstration_prompt`). ``temperature``: 0 is greedy.
    ``value_point``: a greedy continuous action's bin is its distribution's median or mode
    (:class:`~gato_mini.agent.agent.AgentOptions`). ``use_cache``: False recomputes the whole context each
    step. ``max_steps``: the episode step cap (None: the task's). ``step_timeout``: control envs run in
    their own processes and one that does not answer a reset or step within this many seconds fails its
    episode; None or 0 runs them in this process, with no limit. ``offline``: also the teacher-forced
    action metrics on held-out logged episodes. ``env_id``/``imports``: the gymnasium env to play an
    ``episodes`` source on instead of the registry's or the dataset's stored one. ``video``: the first
    episode as a .gif or .mp4; ``samples``: a caption source's grid image of samples; ``reference_cache``:
    where references measured at eval are kept (beside the model), so a normalized score always compares
    like with like.
    """

    episodes: int | None = field(default=None, metadata=count("--episodes", 0))
    num_envs: int | None = field(default=None, metadata=count("--num-envs", hi=4096))
    seed: int = field(default=1000, metadata=seed())
    prompt_dataset: str | None = None
    use_prompt: bool = True
    prompt_tokens: int | None = field(default=None, metadata=count("--prompt-tokens"))
    temperature: float = field(default=0.0, metadata=number("--temperature", 0, hi=100, optional=False))
    value_point: str = "median"
    use_cache: bool = True
    max_steps: int | None = field(default=None, metadata=count("--max-steps"))
    step_timeout: float | None = field(default=60.0, metadata=number(
        "--step-timeout", 0, hi=86400, says="0 (no limit) or a positive number of seconds"))
    offline: bool = True
    env_id: str | None = None
    imports: tuple[str, ...] = ()
    video: str | None = None
    samples: str | None = None
    reference_cache: Path | None = None

    def for_group(self, group: str, **changes: Any) -> EvalOptions:
        """These options for one source of the group ``group``: the group's default episodes and
        environments where none were chosen, and ``changes`` (a video path, a step cap, ...)."""
        defaults = EVAL_DEFAULTS[group]
        return replace(self, episodes=defaults["episodes"] if self.episodes is None else self.episodes,
                       num_envs=defaults["num_envs"] if self.num_envs is None else self.num_envs, **changes)


@dataclass
class SourceReport:
    """What ``eval`` says about one source."""

    source: str
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
        human = [human_normalized(self.source, x) for x in r]
        extra = {"human_normalized_mean": float(np.mean(human))} if human and human[0] is not None else {}
        return {"source": self.source, "episodes": len(self.episodes), "failed": len(self.failed),
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


def source_entry(trained: dict[str, Any], name: str) -> dict[str, Any]:
    """What a model's ``sources.json`` (``trained``) says of the source ``name``; a source the model was
    not trained on is an error."""
    sources = trained.get("sources", {})
    if name not in sources and name not in TASKS:
        get_task(name)  # an unknown name: the registry's error, with a did-you-mean
    if name not in sources:
        raise GatoError(f"the model was not trained on {name}; it knows: {', '.join(sources) or 'nothing'}")
    return sources[name]


def source_group(trained: dict[str, Any], name: str) -> str:
    """The group of the source ``name`` of a model (``actions``, ``captions`` or ``text``): its evaluator."""
    kind = source_entry(trained, name).get("kind", "")
    if kind not in KINDS:
        raise GatoError(f"{name}: the model's sources.json names an unknown source kind {kind!r}")
    return KINDS[kind].group


def trained_source(entry: dict[str, Any], name: str) -> Source:
    """The :class:`~gato_mini.data.sources.Source` a model was trained on, rebuilt from its ``sources.json``
    entry (kind and options), so eval reads the same held-out split."""
    return source_of(name, entry.get("kind", "episodes"), entry.get("options"))


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


def write_json(reports: list[SourceReport], path: str | Path, model_dir: str) -> None:
    """All reports as one JSON file (written then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    summaries = [r.summary() for r in reports]
    write_atomic(path, json.dumps({"model": str(model_dir), "sources": summaries,
                                   "aggregate": aggregate_summaries(summaries)}, indent=1))
