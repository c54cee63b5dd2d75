"""What every evaluator shares: :class:`Evaluation` (what a source kind's evaluation is, and how a
model's source finds its own), the report of one source, the model's sources, and the JSON, video and
grid outputs. The evaluations: :mod:`~gato_mini.agent.eval_control`,
:mod:`~gato_mini.agent.eval_captions`, :mod:`~gato_mini.agent.eval_text`; the loop over a model's
sources: :mod:`~gato_mini.agent.evaluate`."""

from __future__ import annotations

import importlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from gato_mini.agent.rollout import EpisodeResult
from gato_mini.data.sources import KINDS, Source, source_of
from gato_mini.envs.registry import TASKS, baseline, get_task, human_normalized, normalized
from gato_mini.errors import GatoError
from gato_mini.options import Checked, count, number, seed
from gato_mini.procs import write_atomic
from gato_mini.reports.aggregate import aggregate_summaries

if TYPE_CHECKING:
    from gato_mini.model.model import GatoModel
    from gato_mini.tokenizers.text import TextTokenizer


@dataclass(frozen=True)
class EvalOptions(Checked):
    """How a source is evaluated: built once by ``gato-mini eval`` (from its flags, checked before the
    model loads) or by the quickstart, and read by every evaluator;
    :func:`~gato_mini.agent.evaluate.evaluate_source` checks it too, for callers from Python.

    ``episodes``/``num_envs``: None takes the source's evaluation's default (:attr:`Evaluation.defaults`;
    episodes 0 is every held-out image of a caption source, every held-out turn of a chat). ``seed``:
    episode i uses seed + i.
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

    def for_evaluation(self, evaluation: Evaluation, **changes: Any) -> EvalOptions:
        """These options for one source evaluated by ``evaluation``: its default episodes and
        environments where none were chosen, and ``changes`` (a video path, a step cap, ...)."""
        defaults = evaluation.defaults
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
    evaluation: str = ""  # the name of the Evaluation that made it (the eval JSON's "evaluation")

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
        return {"source": self.source, "evaluation": self.evaluation,
                "episodes": len(self.episodes), "failed": len(self.failed),
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


@dataclass(frozen=True)
class QuickstartAsk:
    """What the quickstart asks of each source's evaluation (its plan's ``eval`` section): ``episodes``
    per control task, ``images`` per caption source and ``questions`` per visual-question source (0:
    every held-out one), ``num_envs`` for the control tasks; for this source, ``dataset`` (the
    recording a control task is prompted with, when the quickstart recorded it), ``max_steps`` (its step
    cap), ``video`` (a path for its first episode) and ``out`` (the quickstart's folder, for a sample
    image)."""

    episodes: int
    images: int
    num_envs: int
    out: Path
    questions: int = 0
    dataset: str | None = None
    max_steps: int | None = None
    video: str | None = None


class Evaluation:
    """How one source kind is evaluated, reported and asked for from Python: one subclass per family of
    kinds, named by the kind's class (:attr:`Source.evaluation <gato_mini.data.source.Source.evaluation>`),
    so that ``gato-mini eval``, the quickstart, the report and :class:`gato_mini.Gato` dispatch on the
    kind and never on its name. Subclasses set the class attributes and :meth:`evaluate`; the rest has
    defaults for a source scored without episodes.

    ``name``: what the eval JSON's ``evaluation`` says (so a report read later finds its presenter);
    ``label``: the score table's kind column; ``defaults``: episodes and environments at once when none
    are asked for; ``plays``: it acts in environments episode by episode (its progress bar counts
    episodes and shows the mean return; the quickstart times it before training to keep its reserve);
    ``api``: the method of :class:`gato_mini.Gato` that asks it from Python; ``compared``: the number
    a generalist and a specialist are compared on (summary key, higher is better, scale;
    ``benchmarks/specialists.py``).
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    defaults: ClassVar[dict[str, int]] = {"episodes": 0, "num_envs": 1}
    plays: ClassVar[bool] = False
    api: ClassVar[str] = ""
    compared: ClassVar[tuple[str, bool, float]] = ("", True, 1.0)

    def evaluate(self, model: GatoModel, tokenizer: TextTokenizer, trained: dict[str, Any], name: str,
                 options: EvalOptions, progress: Any = None) -> SourceReport:
        """Score the source ``name`` of a model (``trained``: its ``sources.json``); ``progress`` is called
        after each episode (or batch) with its result (None for a batch)."""
        raise NotImplementedError

    def progress(self, options: EvalOptions) -> tuple[int | None, str]:
        """(the progress bar's total, or None when unknown; what it counts)."""
        return None, "batches"

    def for_quickstart(self, base: EvalOptions, ask: QuickstartAsk, name: str) -> EvalOptions:
        """The options the quickstart evaluates the source ``name`` with."""
        return replace(base, episodes=0)

    def headline(self, summary: dict[str, Any]) -> dict[str, Any]:
        """The few numbers the quickstart keeps of a summary (its ``scores``)."""
        return {k: summary[k] for k in ("return_mean", "normalized_mean") if summary.get(k) is not None}

    def metrics(self, summary: dict[str, Any]) -> str:
        """The score table's metrics cell: one phrase."""
        return "-"

    def cells(self, summary: dict[str, Any]) -> dict[str, str]:
        """The score table's cells for one summary (the terminal's and the report's tables): ``kind``,
        ``episodes``, ``raw``, ``normalized``, ``random``, ``constant``, ``expert``, ``metrics``,
        ``steps_per_s`` and ``prompt``. A source without episodes has dashes but for its metrics."""
        return {"kind": self.label, **dict.fromkeys(("episodes", "raw", "normalized", "random", "constant",
                                                      "expert", "steps_per_s", "prompt"), "-"),
                "metrics": self.metrics(summary)}

    def section(self, summary: dict[str, Any], out: Path) -> list[str]:
        """Markdown lines of this source's part of the quickstart's report (images relative to ``out``)."""
        return []

    def samples(self, summary: dict[str, Any]) -> list[dict[str, Any]]:
        """What the quickstart prints of this source's evaluation (each sample's ``shown``: one line) and
        keeps in ``samples.json``."""
        return []


def _num(x: Any, fmt: str = "{:.1f}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


class EpisodeEvaluation(Evaluation):
    """An evaluation that plays episodes and scores their returns against references (control tasks,
    and captions, whose return is a caption's BLEU): its table cells."""

    def cells(self, summary: dict[str, Any]) -> dict[str, str]:
        s = summary
        norm = (f"{_num(s['normalized_mean'])} ± {_num(s['normalized_std'])}"
                if s.get("normalized_mean") is not None else "-")
        failed = f" ({s['failed']} failed)" if s["failed"] else ""
        return {"kind": self.label, "episodes": f"{s['episodes'] - s['failed']}{failed}",
                "raw": f"{_num(s['return_mean'], '{:.2f}')} ± {_num(s['return_std'], '{:.2f}')}",
                "normalized": norm,
                **{k: _num(s.get(k), "{:.2f}") for k in ("random", "constant", "expert")},
                "metrics": self.metrics(s), "steps_per_s": _num(s.get("steps_per_s")),
                "prompt": "yes" if s.get("prompt") else "none"}


def resolve_evaluation(kind: str) -> Evaluation:
    """The :class:`Evaluation` of the source kind ``kind`` (its class's ``evaluation``: a class, or its
    dotted path ``module:Class``, imported now)."""
    if kind not in KINDS:
        raise GatoError(f"unknown source kind {kind!r}; known: {', '.join(KINDS)}")
    named = KINDS[kind].evaluation
    if named is None:
        raise GatoError(f"source kind {kind!r} names no evaluation (Source.evaluation)")
    if isinstance(named, str):
        module, _, attr = named.partition(":")
        named = getattr(importlib.import_module(module), attr)
    return named()


def source_evaluation(trained: dict[str, Any], name: str) -> Evaluation:
    """The :class:`Evaluation` of the source ``name`` of a model (``trained``: its ``sources.json``)."""
    kind = source_entry(trained, name).get("kind", "")
    if kind not in KINDS:
        raise GatoError(f"{name}: the model's sources.json names an unknown source kind {kind!r}")
    return resolve_evaluation(kind)


def summary_evaluation(summary: dict[str, Any]) -> Evaluation:
    """The :class:`Evaluation` that wrote a summary of the eval JSON (its ``evaluation``: a name of one
    of the registered kinds' evaluations). An eval JSON written before summaries named it (gato-mini
    0.3) is read by what it holds: perplexity (text), an exact-match rate (captions), else episodes."""
    wanted = summary.get("evaluation")
    if wanted is None:
        wanted = "text" if "perplexity" in summary else "captions" if "exact_match" in summary else "control"
    for kind in KINDS:
        evaluation = resolve_evaluation(kind) if KINDS[kind].evaluation is not None else None
        if evaluation is not None and evaluation.name == wanted:
            return evaluation
    raise GatoError(f"{summary.get('source', '?')}: the eval JSON names an evaluation {wanted!r} that no "
                    "source kind has")


def trained_image_size(trained: dict[str, Any],
                       base: type[Source]) -> tuple[tuple[int, int] | None, str | None]:
    """(the size a model's sources of the kinds under ``base`` (captions, questions) fitted their images to
    in training, per ``sources.json``; a note when they differ). None for a model trained on none.
    Sources of different sizes give the largest (an image fitted into it loses the least) and a note
    naming the others."""
    sizes = {}
    for name, entry in trained.get("sources", {}).items():
        kind = entry.get("kind", "")
        if kind in KINDS and issubclass(KINDS[kind], base):
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
