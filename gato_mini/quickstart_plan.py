"""The quickstart's config: its ``quickstart:`` section (what to record, how to evaluate, what to ask in
chat) read and checked into a :class:`Plan`, and the training config around it with every path moved
inside the run's folder (:func:`load_config`). The stages that carry the plan out:
:mod:`gato_mini.quickstart`."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gato_mini.agent.eval_control import ControlEvaluation
from gato_mini.collect import Recording
from gato_mini.config_files import read_config_file
from gato_mini.envs.registry import get_task
from gato_mini.errors import ConfigError, GatoError
from gato_mini.options import Checked, check_options, checked, config_number, count, number

QUICKSTART_KEYS = ("collect", "dagger", "eval", "chat", "reserve_minutes")
COLLECT_KEYS = ("episodes", "max_steps", "noise", "policy")
DAGGER_KEYS = ("at", "policy_share", "num_envs", "collect")
DAGGER_COLLECT_KEYS = ("episodes", "weight", "noise")


@dataclass
class Dagger(Checked):
    """The ``quickstart.dagger`` section: DAgger rounds inside training (Ross et al. 2011). Training pauses
    at each share ``at`` of its minutes; the model trained so far acts in each task of ``collect`` (the
    task's demonstrator's own action executed on ``policy_share`` of steps), the demonstrator labels
    every state it reaches, and training goes on, on its schedule, with those episodes as one more
    source per task and round (weight: the task's, unless given)."""

    at: list[float]
    collect: dict[str, Recording]
    weights: dict[str, float | None]
    policy_share: float = field(default=0.2, metadata=number("quickstart.dagger.policy_share", 0, hi=1,
                                                             optional=False, says="between 0 and 1"))
    num_envs: int = field(default=16, metadata=count("quickstart.dagger.num_envs", hi=4096))

    def dataset(self, out: Path, task: str, round_: int) -> Path:
        """Where round ``round_`` (1, 2, ...) records ``task``:
        ``out/dagger/round<k>/<task>/<policy>-dagger-v0``."""
        return out / "dagger" / f"round{round_}" / task / f"{self.collect[task].policy}-dagger-v0"

    @staticmethod
    def source(task: str, round_: int) -> str:
        """The training source of round ``round_``'s episodes of ``task``."""
        return f"{task}-dagger{round_}"

    @classmethod
    def parse(cls, raw: Any, demonstrators: dict[str, Recording]) -> Dagger:
        if not isinstance(raw, dict) or not raw.get("collect"):
            raise ConfigError("quickstart.dagger needs 'collect' (task: {episodes: N})")
        unknown = sorted(set(raw) - set(DAGGER_KEYS))
        if unknown:
            raise ConfigError(f"unknown key 'quickstart.dagger.{unknown[0]}'; known: "
                              f"{', '.join(DAGGER_KEYS)}")
        at = raw.get("at", [0.5])
        at = [config_number(a) for a in (at if isinstance(at, list) else [at])]
        shares = all(isinstance(a, (int, float)) and not isinstance(a, bool) and 0 < a < 1 for a in at)
        if not at or not shares or at != sorted(set(at)):
            raise ConfigError(f"quickstart.dagger.at must be increasing shares of the training minutes, each "
                              f"between 0 and 1; got {raw.get('at')!r}")
        collect, weights = {}, {}
        for task, spec in raw["collect"].items():
            where = f"quickstart.dagger.collect.{task}"
            spec = _episodes_spec(where, spec, DAGGER_COLLECT_KEYS)
            if task not in demonstrators:
                raise ConfigError(f"{where}: {task} is not in quickstart.collect: the model learns to act "
                                  "there from its demonstrations first")
            weight = spec.get("weight")
            try:
                if weight is not None:
                    checked(config_number(weight), number(f"{where}.weight", 0, open_lo=True, optional=False))
                collect[task] = check_options(Recording(
                    demonstrators[task].policy, config_number(spec["episodes"], whole=True),
                    max_steps=demonstrators[task].max_steps, noise=config_number(spec.get("noise", 0.0)),
                    overwrite=True), where=where)
            except GatoError as exc:
                raise ConfigError(str(exc)) from None
            weights[task] = None if weight is None else float(config_number(weight))
        try:
            return cls([float(a) for a in at], collect, weights,
                       config_number(raw.get("policy_share", 0.2)),
                       config_number(raw.get("num_envs", 16), whole=True)).checked()
        except GatoError as exc:
            raise ConfigError(str(exc)) from None


def run_name(raw: dict[str, Any]) -> str:
    """The model's name in a raw training config (a size name or a mapping with ``name``)."""
    model = raw.get("model")
    return str(model.get("name", "the model") if isinstance(model, dict) else model)


def default_config() -> Path:
    """The packaged ``configs/quickstart.yaml``."""
    return Path(str(resources.files("gato_mini.configs").joinpath("quickstart.yaml")))


@dataclass
class Plan(Checked):
    """The ``quickstart`` section of the config: each task's recording (seed 0, a fresh dataset), and
    how the model is evaluated. Every number is checked by its rule (:meth:`checked`)."""

    collect: dict[str, Recording]
    eval_episodes: int = field(default=8, metadata=count("quickstart.eval.episodes"))
    eval_num_envs: int = field(default=ControlEvaluation.defaults["num_envs"],
                               metadata=count("quickstart.eval.num_envs", hi=4096))
    eval_max_steps: dict[str, int] = field(default_factory=dict)
    caption_images: int = field(default=96, metadata=count("quickstart.eval.caption_images", 0))
    questions: int = field(default=0, metadata=count("quickstart.eval.questions", 0))  # 0: every held-out one
    chat: list[str] = field(default_factory=list)
    # None ("auto"): measured before training (the quickstart's references and its acting rate); a
    # number: that many minutes, whatever evaluation takes
    reserve_minutes: float | None = field(default=None, metadata=number(
        "quickstart.reserve_minutes", 0, hi=1440, says='"auto" or a number of minutes from 0 to 1440'))
    dagger: Dagger | None = None

    def dataset(self, out: Path, task: str) -> Path:
        """Where the quickstart records ``task``'s demonstrations: ``out/episodes/<task>/<policy>-v0``."""
        return out / "episodes" / task / f"{self.collect[task].policy}-v0"

    @classmethod
    def parse(cls, raw: Any) -> Plan:
        if not isinstance(raw, dict) or not raw.get("collect"):
            raise ConfigError("the config needs a 'quickstart' section with 'collect' (task: {episodes: N})")
        unknown = sorted(set(raw) - set(QUICKSTART_KEYS))
        if unknown:
            raise ConfigError(f"unknown key 'quickstart.{unknown[0]}'; known: {', '.join(QUICKSTART_KEYS)}")
        collect = {task: _recording(task, spec) for task, spec in raw["collect"].items()}
        ev = raw.get("eval") or {}
        chat = raw.get("chat") or []
        if not all(isinstance(c, str) and c.strip() for c in chat):
            raise ConfigError("quickstart.chat must be a list of non-empty prompts")
        try:
            caps = {k: checked(config_number(v, whole=True), count(f"quickstart.eval.max_steps.{k}"))
                    for k, v in (ev.get("max_steps") or {}).items()}
            dagger = Dagger.parse(raw["dagger"], collect) if raw.get("dagger") is not None else None
            plan = cls(collect, config_number(ev.get("episodes", 8), whole=True),
                       config_number(ev.get("num_envs", ControlEvaluation.defaults["num_envs"]), whole=True),
                       caps,
                       config_number(ev.get("caption_images", 96), whole=True),
                       config_number(ev.get("questions", 0), whole=True), list(chat),
                       _reserve(raw.get("reserve_minutes", "auto")), dagger)
            return plan.checked()
        except GatoError as exc:
            raise ConfigError(str(exc)) from None


def _reserve(value: Any) -> Any:
    """``quickstart.reserve_minutes``: "auto" (None, measured before training) or a number of minutes."""
    if value is None:
        raise ConfigError('quickstart.reserve_minutes must be "auto" or a number of minutes, got nothing')
    return None if value == "auto" else config_number(value)


def _episodes_spec(where: str, spec: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """A task's entry under ``where``: a mapping with ``episodes`` and only the known ``keys``."""
    spec = spec or {}
    if not isinstance(spec, dict) or spec.get("episodes") is None:
        raise ConfigError(f"{where}: give 'episodes' (at least 1)")
    unknown = sorted(set(spec) - set(keys))
    if unknown:
        raise ConfigError(f"unknown key '{where}.{unknown[0]}'; known: {', '.join(keys)}")
    return spec


def _recording(task: str, spec: Any) -> Recording:
    """``quickstart.collect.<task>`` as the :class:`~gato_mini.collect.Recording` the collect stage runs
    (seed 0, the dataset recorded afresh), its numbers checked by Recording's rules and named by their
    keys."""
    get_task(task)  # an unknown task is named first
    spec = _episodes_spec(f"quickstart.collect.{task}", spec, COLLECT_KEYS)
    policy = str(spec.get("policy", "expert"))
    try:
        get_task(task).policy(policy)
    except GatoError as exc:
        raise ConfigError(f"quickstart.collect.{task}.policy: {exc}") from None
    recording = Recording(policy, config_number(spec["episodes"], whole=True),
                          max_steps=config_number(spec.get("max_steps"), whole=True),
                          noise=config_number(spec.get("noise", 0.0)), overwrite=True)
    try:
        return check_options(recording, where=f"quickstart.collect.{task}")
    except GatoError as exc:
        raise ConfigError(str(exc)) from None


def load_config(path: Path, out: Path) -> tuple[Plan, dict[str, Any]]:
    """(plan, raw training config with every path inside ``out``)."""
    raw = read_config_file(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping")
    try:
        plan = Plan.parse(raw.pop("quickstart", None))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    raw.setdefault("data", {})
    raw["data"] = dict(raw["data"])
    raw["data"]["root"] = str(out / "data")
    raw["data"]["episodes"] = str(out / "episodes")
    raw["train"] = {**(raw.get("train") or {}), "out": str(out / "run")}
    sources = raw["data"].get("sources")
    if isinstance(sources, dict):  # each collected task trains on the demonstrations recorded for it
        raw["data"]["sources"] = {name: ({**(spec or {}), "dataset": str(plan.dataset(out, name))}
                                         if name in plan.collect else spec) for name, spec in sources.items()}
    raw["trainer"] = dict(raw.get("trainer") or {})
    return plan, raw
