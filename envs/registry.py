"""The task registry: names -> env stack, fields, expert, reference scores.

Reference scores live in ``references.yaml`` beside this file and are measured
by ``gato-mini scores --task NAME --episodes N --update`` (from a source checkout
only; an installed package is never written, and a user writes their own
measurements with ``--out FILE``), never copied from elsewhere. Normalized score =
``100 * (score - baseline) / (expert - baseline)``, the baseline being the stronger
of random and the best constant action.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml

from gato_mini.catalog import BUILTIN_TASKS
from gato_mini.envs import atari, caption, control
from gato_mini.envs.policies import CallablePolicy, ConstantPolicy, Policy, RandomPolicy
from gato_mini.errors import GatoError, did_you_mean
from gato_mini.fields import FieldSpec, action_field, field_spec, observation_fields
from gato_mini.procs import write_atomic

REFERENCES_FILE = "references.yaml"


class UnknownTaskError(GatoError, KeyError):
    """A task name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Reference:
    """A measured mean return with how it was measured."""

    mean: float
    std: float
    episodes: int
    seed: int
    max_steps: int
    policy: str | None = None  # which policy, where a reference has several (the best constant action)

    def to_dict(self) -> dict[str, Any]:
        out = {"mean": round(self.mean, 3), "std": round(self.std, 3), "episodes": self.episodes,
               "seed": self.seed, "max_steps": self.max_steps}
        return out if self.policy is None else {**out, "policy": self.policy}


@dataclass(frozen=True)
class Task:
    """One task: how to build its env, its expert, and its reference scores."""

    name: str
    env_id: str
    family: str  # "atari" | "control" | "caption" | "gym" (a user's env, envs/user.py)
    description: str
    max_steps: int  # episode step cap (agent steps), the same for collection and evaluation
    maker: Callable[[str, int, str | None], gym.Env] = field(repr=False)
    expert_factory: Callable[[], Policy] = field(repr=False)
    random_factory: Callable[[], Policy] = field(default=RandomPolicy, repr=False)
    # Other scripted demonstrators by name (for `collect --policy NAME`); never a reference score.
    demonstrators: dict[str, Callable[[], Policy]] = field(default_factory=dict, repr=False)

    def make(self, max_steps: int | None = None, render_mode: str | None = None) -> gym.Env:
        """The task's env with its full wrapper stack."""
        return self.maker(self.env_id, max_steps or self.max_steps, render_mode)

    def factory(self, max_steps: int | None = None, render_mode: str | None = None) -> Callable[[], gym.Env]:
        """``make`` as a picklable zero-argument callable (for a :class:`ProcessEnv`)."""
        return functools.partial(self.maker, self.env_id, max_steps or self.max_steps, render_mode)

    def policy(self, name: str) -> Policy:
        """A fresh ``expert``, ``random``, ``constant`` (zero torque; button 0), ``constant:K`` policy, or a
        user's ``MODULE:CALLABLE`` (:class:`~gato_mini.envs.policies.CallablePolicy`)."""
        if ":" in name and not name.startswith("constant:"):
            return CallablePolicy(name)  # a user's MODULE:CALLABLE
        if name == "expert":
            return self.expert_factory()
        if name == "random":
            return self.random_factory()
        if name in self.demonstrators:
            return self.demonstrators[name]()
        if name == "constant" and self.family != "caption":
            return ConstantPolicy()
        prefix, _, index = name.partition(":")
        if prefix == "constant" and index.isdigit() and self.family != "caption":
            return ConstantPolicy(int(index))
        names = ("expert", "random", *self.demonstrators, "constant", "constant:K", "MODULE:CALLABLE")
        known = ", ".join(repr(k) for k in names)
        raise GatoError(f"unknown policy {name!r} for {self.name}; use one of {known}")

    def fields(self) -> tuple[dict[str, FieldSpec], FieldSpec]:
        """(observation field specs, action field spec) of the wrapped env."""
        env = self.make()
        try:
            # A caption's action is text; control actions must be values (action_field).
            act = field_spec(env.action_space, "action") if self.family == "caption" else \
                action_field(env.action_space)
            return observation_fields(env.observation_space), act
        finally:
            env.close()

    def references(self) -> dict[str, Reference]:
        """Measured ``random`` and ``expert`` references (empty if not measured yet)."""
        return load_references().get(self.name, {})

    def capped_references(self, cap: int, seed: int, episodes: int) -> dict[str, Reference]:
        """The stored references measured at a step cap below the task's own, at these seeds and this
        many episodes (what an evaluation at that cap compares with; empty where none was stored)."""
        return load_capped_references().get(self.name, {}).get(capped_key(cap, seed, episodes), {})

    def normalize(self, score: float) -> float | None:
        """``100 * (score - baseline) / (expert - baseline)``, the baseline being the stronger of random and
        the best constant action (so doing nothing scores at most 0); None without references."""
        refs = self.references()
        if "random" not in refs or "expert" not in refs:
            return None
        return normalized(score, refs["random"].mean, refs["expert"].mean,
                          refs["constant"].mean if "constant" in refs else None)


# Published Atari-57 references: (random, human) undiscounted returns of full episodes that start with up
# to 30 no-ops, as tabulated in DeepMind's DQN Zoo (dqn_zoo/atari_data.py) and in rliable (from the
# MuZero and Agent57 papers; random and human from Mnih et al. 2015 and Wang et al. 2016). They are the
# references of the human-normalized scores of DQN-family papers, Multi-Game DT and jat.
HUMAN_REFERENCES: dict[str, tuple[float, float]] = {
    "atari-pong": (-20.7, 14.6),
    "atari-breakout": (1.7, 30.5),
    "atari-freeway": (0.0, 29.6),
}
HUMAN_SOURCE = ("Atari-57 random and human returns (DQN Zoo atari_data.py; rliable), full episodes with "
                "no-op starts")


def human_normalized(task: str, score: float) -> float | None:
    """``100 (score - random) / (human - random)`` with the published Atari references
    (:data:`HUMAN_REFERENCES`); None for a task without them. Those references are for full episodes:
    a score at a shorter step cap is not comparable with the published tables."""
    if task not in HUMAN_REFERENCES:
        return None
    random, human = HUMAN_REFERENCES[task]
    return 100.0 * (score - random) / (human - random)


def baseline(random: float | None, constant: float | None = None) -> float | None:
    """What 0 normalized means: the stronger of random and the best constant action."""
    if random is None:
        return None
    return random if constant is None else max(random, constant)


def normalized(score: float, random: float | None, expert: float | None,
               constant: float | None = None) -> float | None:
    """``100 * (score - lo) / (expert - lo)`` with ``lo`` the :func:`baseline`; None when a reference
    is missing or the expert is no better than ``lo``."""
    lo = baseline(random, constant)
    if lo is None or expert is None:
        return None
    return 100.0 * (score - lo) / (expert - lo) if expert > lo else None


def _atari(name: str, game: str, expert: Callable[[], Policy], description: str,
           demonstrators: dict[str, Callable[[], Policy]] | None = None, **frame: Any) -> Task:
    maker = functools.partial(atari.make_atari, **frame) if frame else atari.make_atari
    return Task(name, f"ALE/{game}-v5", "atari", description, 5000, maker, expert,
                demonstrators=demonstrators or {})


def _control(name: str, env_id: str, max_steps: int, expert: Callable[[], Policy], description: str) -> Task:
    return Task(name, env_id, "control", description, max_steps, control.make_control, expert)


def _caption(name: str, description: str) -> Task:
    return Task(name, caption.ENV_IDS[name], "caption", description, 1, caption.make_caption,
                caption.CaptionExpert, caption.ChanceCaption)


caption.register()
TASKS: dict[str, Task] = {t.name: t for t in (
    _atari("atari-pong", "Pong", atari.PongExpert, "Pong; expert intercepts the ball from RAM",
           {"tracker": atari.PongTracker}, size=(80, 32), crop=(34, 194), pool="max"),
    _atari("atari-breakout", "Breakout", atari.BreakoutExpert, "Breakout; expert tracks the ball from RAM",
           {"tracker": atari.BreakoutTracker}, size=(32, 80), crop=(34, 194), pool="max",
           fire_on_new_life=True),
    _atari("atari-freeway", "Freeway", atari.FreewayExpert, "Freeway; expert waits for the cars from RAM"),
    _control("control-pendulum", "Pendulum-v1", 200, control.PendulumExpert,
             "Pendulum swing-up; energy pumping then PD"),
    _control("mujoco-reacher", "Reacher-v5", 50, control.ReacherExpert,
             "2-link arm reaching; damped least-squares IK"),
    _control("mujoco-invertedpendulum", "InvertedPendulum-v5", 1000, control.InvertedPendulumExpert,
             "cart-pole balance; LQR on a finite-difference model"),
    _control("mujoco-halfcheetah", "HalfCheetah-v5", 1000, control.HalfCheetahExpert,
             "HalfCheetah running; open-loop sine gait"),
    _caption("caption-shapes", "caption held-out shape scenes; reward: sentence BLEU-4 in [0, 1]"),
    _caption("caption-digits", "caption held-out handwritten digits; reward: sentence BLEU-4 in [0, 1]"),
)}


if tuple(TASKS) != BUILTIN_TASKS:  # the names data/ sees (gato_mini.catalog) are the registry's own
    raise ImportError(f"gato_mini.catalog.BUILTIN_TASKS {BUILTIN_TASKS} differs from the registry "
                      f"{tuple(TASKS)}")


def get_task(name: str) -> Task:
    """The registered task ``name``; an unknown name lists the known ones."""
    if name not in TASKS:
        raise UnknownTaskError(f"unknown task {name!r}{did_you_mean(name, TASKS)}; known: {', '.join(TASKS)}")
    return TASKS[name]


def references_path() -> Path:
    """Where the packaged ``references.yaml`` lives (inside the installed package)."""
    return Path(str(resources.files("gato_mini.envs").joinpath(REFERENCES_FILE)))


def packaged_references_writable() -> Path:
    """The packaged ``references.yaml`` when it is a source checkout's ``envs/references.yaml`` (an
    editable install), the one case where ``gato-mini scores --update`` may rewrite it; an installed
    package is never written: a :class:`GatoError` says to write the user's own file with ``--out``."""
    path = references_path()
    installed = any(p.name in ("site-packages", "dist-packages") for p in path.parents)
    checkout = (path.parent.parent / "pyproject.toml").is_file() and path.parent.name == "envs"
    if installed or not checkout:
        raise GatoError(f"--update rewrites the packaged {path}, which only a source checkout of gato-mini "
                        "may do; write your measured references to a file of yours with --out FILE")
    return path


AT_CAP = "at_cap"  # a task's references measured at a lower step cap: {capped_key: {policy: reference}}


def capped_key(cap: int, seed: int, episodes: int) -> str:
    """How a reference measured below a task's step cap is filed: ``cap=1000 seed=1000 episodes=16``."""
    return f"cap={cap} seed={seed} episodes={episodes}"


def load_references(path: Path | None = None) -> dict[str, dict[str, Reference]]:
    """All stored references of whole episodes: ``{task: {"random": Reference, "expert": Reference}}``."""
    data = _read_references(path)
    return {task: {policy: Reference(**ref) for policy, ref in refs.items() if policy != AT_CAP}
            for task, refs in data.items()}


def load_capped_references(path: Path | None = None) -> dict[str, dict[str, dict[str, Reference]]]:
    """All stored references measured below their task's step cap: ``{task: {capped_key: {policy:
    Reference}}}`` (``gato-mini scores --max-steps N --update``)."""
    data = _read_references(path)
    return {task: {key: {policy: Reference(**ref) for policy, ref in refs.items()}
                   for key, refs in (entry.get(AT_CAP) or {}).items()} for task, entry in data.items()}


def _read_references(path: Path | None) -> dict[str, Any]:
    path = path or references_path()
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def save_reference(task: str, policy: str, ref: Reference, path: Path) -> None:
    """Store one measured reference in the references file ``path`` (a user's own, or the packaged one
    of a checkout, :func:`packaged_references_writable`), written then renamed; other entries are kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load(path.read_text()) if path.is_file() else {}
    data = data or {}
    entry = data.setdefault(task, {})
    if task in TASKS and ref.max_steps < TASKS[task].max_steps:  # below the task's cap: filed apart
        key = capped_key(ref.max_steps, ref.seed, ref.episodes)
        entry.setdefault(AT_CAP, {}).setdefault(key, {})[policy] = ref.to_dict()
    else:
        entry[policy] = ref.to_dict()
    header = ("# Reference returns measured by `gato-mini scores --task NAME --episodes N --update`\n"
              "# (or --out FILE); at_cap: measured below the task's step cap (--max-steps N --seed S), what\n"
              "# an evaluation at that cap, those seeds and that many episodes compares with.\n"
              "# Do not edit by hand: rerun the command.\n")
    write_atomic(path, header + yaml.safe_dump(data, sort_keys=True))
