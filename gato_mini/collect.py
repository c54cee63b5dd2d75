"""Roll out a task's expert or random policy: record Minari datasets, measure scores.

Episode ``i`` of a run with seed ``S`` resets the env and the policy with seed
``S + i``, so a run is reproducible and any single episode can be replayed.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gato_mini.data.minari_writer import CHUNK_STEPS, DatasetWriter
from gato_mini.envs.registry import Task, get_task
from gato_mini.errors import GatoError
from gato_mini.fields import action_field, observation_fields
from gato_mini.options import Checked, count, number
from gato_mini.options import seed as seed_rule
from gato_mini.terminal import progress_bar


@dataclass
class EpisodeRecord:
    """What one rollout produced (observations only when recording)."""

    episode_return: float
    steps: int
    observations: dict[str, list[Any]] | None = None
    actions: list[Any] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminations: list[bool] = field(default_factory=list)
    truncations: list[bool] = field(default_factory=list)


def perturb(action: Any, space: Any, noise: float, rng: np.random.Generator) -> Any:
    """DART-style noise on an executed action (Laskey et al. 2017); the logged action stays clean.

    Discrete spaces: with probability ``noise`` a uniformly random action instead. Box spaces:
    Gaussian noise of standard deviation ``noise`` times the half-range of each dimension, then
    clipped to the bounds.
    """
    from gymnasium import spaces

    if noise <= 0:
        return action
    if isinstance(space, spaces.Discrete):
        return int(space.start + rng.integers(space.n)) if rng.random() < noise else action
    if isinstance(space, spaces.Box):
        a = np.asarray(action, dtype=np.float64)
        half = (space.high - space.low) / 2.0
        noisy = a + rng.normal(size=a.shape) * noise * half
        return np.clip(noisy, space.low, space.high).astype(space.dtype)
    raise GatoError(f"--noise supports Discrete and Box action spaces, not {type(space).__name__}")


@dataclass(frozen=True)
class Acting:
    """Another policy acts while the recorded one labels (DAgger, Ross et al. 2011): ``policy`` (a trained
    model, :class:`~gato_mini.agent.policy.ModelPolicy`) chooses the executed action, except on a share
    ``share`` of steps where the labeller's own action is executed (DAgger's beta). ``label`` says what
    acts, for ``collection.json``."""

    policy: Any
    label: str
    share: float = 0.0


class _Episode:
    """One episode in progress (see :func:`rollout`): its env, the named policy (the labeller when a model
    acts), the noise and mixing streams seeded by the episode's seed, and the record. :meth:`label` then
    :meth:`step` advance it by one env step."""

    def __init__(self, task: Task, env: Any, policy_name: str, seed: int, record: bool, noise: float,
                 share: float) -> None:
        self.env, self.noise, self.share = env, noise, share
        self.policy = task.policy(policy_name)
        self.rng = np.random.default_rng([seed, 0xDA27])
        self.mix = np.random.default_rng([seed, 0xDA66])  # which steps the labeller acts on
        self.obs, _ = env.reset(seed=seed)
        self.policy.reset(env, seed=seed)
        self.rec = EpisodeRecord(0.0, 0, {k: [v] for k, v in self.obs.items()} if record else None)
        self.done = False
        self._label: Any = None

    def label(self) -> Any:
        """The named policy's action in the current state (the one logged)."""
        self._label = self.policy(self.obs, self.env)
        return self._label

    def step(self, own: Any = None) -> None:
        """Execute the label, or ``own`` (an acting policy's action) but on a ``share`` of steps, perturbed
        by the DART noise; record the state reached and the label."""
        action = self._label
        action_run = action if own is None or self.mix.random() < self.share else own
        executed = perturb(action_run, self.env.action_space, self.noise, self.rng)
        self.obs, reward, terminated, truncated, _ = self.env.step(executed)
        rec = self.rec
        rec.episode_return += float(reward)
        rec.steps += 1
        self.done = bool(terminated or truncated)
        if rec.observations is not None:
            for k, v in self.obs.items():
                rec.observations[k].append(v)
            rec.actions.append(action)
            rec.rewards.append(float(reward))
            rec.terminations.append(bool(terminated))
            rec.truncations.append(bool(truncated))


def rollout(task: Task, env: Any, policy_name: str, seed: int, record: bool = False,
            on_step: Callable[[], None] | None = None, noise: float = 0.0,
            acting: Acting | None = None) -> EpisodeRecord:
    """Run one episode of the policy ``policy_name`` (``expert``/``random``) from ``seed``.

    With ``noise`` > 0 the env executes :func:`perturb`'s noisy action while the record keeps the
    policy's own (clean) action, so demonstrations show recoveries from states the clean expert
    never visits. The noise is drawn from its own stream, seeded by ``seed``. With ``acting``, its
    policy's action is executed instead (but on a share of steps) and the named policy only labels.
    """
    ep = _Episode(task, env, policy_name, seed, record, noise, acting.share if acting else 0.0)
    if acting is not None:
        acting.policy.reset(env, seed=seed)
    while not ep.done:
        ep.label()
        # the acting policy sees every state, so its context stays whole
        ep.step(acting.policy(ep.obs, env) if acting is not None else None)
        if on_step is not None:
            on_step()
    return ep.rec


def rollouts(task: Task, envs: list[Any], policy_name: str, seeds: list[int], acting: Acting,
             record: bool = False, noise: float = 0.0, on_step: Callable[[], None] | None = None):  # noqa: ANN201
    """The episodes of ``seeds`` with a batched acting policy (a model with one slot per env in ``envs``,
    :class:`~gato_mini.agent.policy.ModelPolicy`): every env steps at once, one model call for all of
    them; a slot whose episode ends starts the next seed. Yields ``(index into seeds, EpisodeRecord)``
    as episodes end. Each episode is the one :func:`rollout` runs from its seed (the same labeller, noise
    and mixing streams), the model acting in its own slot."""
    todo = list(enumerate(seeds))[::-1]
    live: dict[int, tuple[int, _Episode]] = {}

    def start(slot: int) -> None:
        k, seed = todo.pop()
        live[slot] = (k, _Episode(task, envs[slot], policy_name, seed, record, noise, acting.share))
        acting.policy.reset_slot(slot, seed)

    for slot in range(min(len(envs), len(todo))):
        start(slot)
    while live:
        for _, ep in live.values():
            ep.label()
        own = acting.policy.act_slots({slot: ep.obs for slot, (_, ep) in live.items()},
                                      envs[next(iter(live))])
        for slot in sorted(live):
            k, ep = live[slot]
            ep.step(own[slot])
            if on_step is not None:
                on_step()
            if ep.done:
                del live[slot]
                yield k, ep.rec
                if todo:
                    start(slot)


def _progress(enabled: bool) -> Any:
    return progress_bar("episodes", "{task.fields[steps]} steps", "{task.fields[rate]:.0f} steps/s",
                        "return {task.fields[ret]}", enabled=enabled, remaining=True)


@dataclass
class RunResult:
    """Returns and timing of a batch of episodes."""

    returns: list[float]
    steps: int
    seconds: float
    path: Path | None = None
    resumed_steps: int = 0  # recorded by an interrupted run and not redone

    @property
    def rate(self) -> float:
        """Env steps per second this run made."""
        return (self.steps - self.resumed_steps) / max(self.seconds, 1e-9)

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))


def policy_label(name: str) -> str:
    """A policy name as given: built-in names are case-free, a user's ``MODULE:CALLABLE`` is not."""
    return name if ":" in name and not name.lower().startswith("constant:") else name.lower()


@dataclass(frozen=True)
class Recording(Checked):
    """How episodes are run (and recorded): the options of ``gato-mini collect``, checked once
    (:meth:`checked`). ``policy``: expert, random, a task's other demonstrator, constant[:K] or a
    ``MODULE:CALLABLE``. Episode i uses seed ``seed + i``; ``max_steps`` caps an episode (None: the
    task's). ``noise``: DART-style perturbation of the executed actions (:func:`perturb`), the clean
    ones logged. ``chunk_steps``: finished episodes are sealed every so many steps (None:
    :data:`~gato_mini.data.minari_writer.CHUNK_STEPS`). ``overwrite``: replace an existing dataset.
    ``share``: with a model acting (:class:`Acting`), the share of steps the policy itself acts on."""

    policy: str
    episodes: int = field(metadata=count("--episodes", says="positive"))
    seed: int = field(default=0, metadata=seed_rule())
    max_steps: int | None = field(default=None, metadata=count("--max-steps", says="positive"))
    noise: float = field(default=0.0, metadata=number("--noise", 0, hi=1, optional=False,
                                                      says="between 0 and 1"))
    share: float = field(default=0.0, metadata=number("--policy-share", 0, hi=1, optional=False,
                                                      says="between 0 and 1"))
    chunk_steps: int | None = field(default=None, metadata=count("--chunk-steps", says="positive"))
    overwrite: bool = False


def run_episodes(task_name: str | Task, recording: Recording, out: str | Path | None = None,
                 progress: bool = True, acting: Any = None) -> RunResult:
    """Run the episodes ``recording`` describes; with ``out``, record them as a Minari dataset under ``out``.

    The dataset id is ``<task>/<policy>-v0``, so it lands in ``out/<task>/<policy>-v0``; the dataset logs
    the clean actions and its ``collection.json`` says how it was made. Recording is resumable
    (:class:`DatasetWriter` with ``recording.chunk_steps``): finished episodes are sealed every so many
    steps, and the same call after a kill records only the missing episodes, with their own seeds, giving
    the dataset an uninterrupted run gives. ``acting``: a callable from the task to an :class:`Acting`
    (a model acts, the policy labels: DAgger); the dataset is then ``<task>/<policy>-dagger-v0``.
    """
    task = task_name if isinstance(task_name, Task) else get_task(task_name)
    policy_name = policy_label(recording.policy)
    task.policy(policy_name)  # an unknown policy name fails before any work
    recording.checked()
    if acting is not None and (policy_name == "random" or policy_name.startswith("constant")):
        raise GatoError(f"a model acting needs a labeller that knows the task: --policy {policy_name} "
                        "labels nothing; use expert, a task's other demonstrator or MODULE:CALLABLE")
    if acting is None and recording.share:
        raise GatoError("--policy-share is the share of steps the policy acts on while a model acts: it "
                        "needs --model")
    r = recording
    episodes, seed, max_steps, noise, overwrite, chunk_steps = r.episodes, r.seed, r.max_steps, r.noise, \
        r.overwrite, r.chunk_steps
    if out is not None and task.family == "caption":
        raise GatoError(f"{task.name} is a captioning task: there are no episodes to record; train on the "
                        f"built-in '{task.name}' source instead (configs/mixture.yaml)")
    cap = max_steps or task.max_steps
    with contextlib.ExitStack() as stack:
        env = task.make(max_steps=cap)
        stack.callback(env.close)
        if task.family != "caption":  # a space that cannot be tokenized fails before any writing
            observation_fields(env.observation_space)
            action_field(env.action_space)
        task.policy(policy_name).reset(env, seed)  # a policy that cannot act here fails before any writing
        if noise:
            # an unsupported action space fails before any episode
            perturb(env.action_space.sample(), env.action_space, noise, np.random.default_rng(0))
        collection = {"task": task.name, "env_id": task.env_id, "policy": policy_name, "seed": seed,
                      "episodes": episodes, "step_cap": cap, "noise": noise_record(noise, env.action_space)}
        if acting is not None:  # a model that cannot act on this env fails before any writing
            made = acting(task)
            acting = Acting(made.policy, made.label, recording.share)
            collection["acting"] = {"by": acting.label, "policy_share": acting.share,
                                    "logged": f"the {policy_name} policy's action at every state"}
        writer = None if out is None else stack.enter_context(
            _writer(task, collection, env, out, overwrite,
                    CHUNK_STEPS if chunk_steps is None else chunk_steps))
        envs = [env]
        for _ in range(1, getattr(acting.policy, "num_envs", 1) if acting is not None else 1):
            envs.append(task.make(max_steps=cap))  # a batched model acts in several envs at once
            stack.callback(envs[-1].close)
        return _run(task, policy_name, envs, writer, episodes, seed, progress, noise, acting)


def noise_record(noise: float, space: Any) -> dict[str, Any] | None:
    """How the executed actions were perturbed, as ``collection.json`` records it (None: not at all)."""
    from gymnasium import spaces

    if noise <= 0:
        return None
    how = (f"a uniformly random action with probability {noise}" if isinstance(space, spaces.Discrete)
           else f"Gaussian noise of sd {noise} x half the action range, clipped")
    return {"kind": "dart", "scale": noise, "executed": how, "logged": "the policy's clean action"}


def _writer(task: Task, collection: dict[str, Any], env: Any, out: str | Path, overwrite: bool,
            chunk_steps: int) -> DatasetWriter:
    """The dataset writer of a collection run, with metadata saying how it was made."""
    c = collection
    noise = "" if c["noise"] is None else f"; executed actions perturbed ({c['noise']['executed']}), " \
                                          "clean actions logged (DART)"
    if c.get("acting"):
        noise += (f"; acted by {c['acting']['by']} ({c['acting']['policy_share']} of steps by the policy), "
                  "the policy's actions logged (DAgger)")
    meta = {"algorithm_name": f"gato-mini {c['policy']} policy", "author": "gato-mini",
            "description": f"gato-mini task {task.name} ({task.env_id}, {task.description}); "
                           f"policy {c['policy']}; seeds {c['seed']}..{c['seed'] + c['episodes'] - 1}; "
                           f"step cap {c['step_cap']}{noise}. Recorded by `gato-mini collect`."}
    try:  # every wrapper records its arguments, so Minari can recreate the env from the stored spec
        env.spec.to_json()
        meta["env"] = env.spec
    except Exception as exc:  # noqa: BLE001 (e.g. an env registered with a class, not a "module:Class" string)
        collection = {**collection, "env_spec": f"not stored: {exc}"}
    slug = re.sub(r"[^a-z0-9]+", "-", c["policy"].lower()).strip("-")  # MODULE:FN -> module-fn
    slug += "-dagger" if c.get("acting") else ""
    return DatasetWriter(out, f"{task.name}/{slug}-v0", env.observation_space, env.action_space,
                         overwrite=overwrite, metadata=meta, collection=collection, chunk_steps=chunk_steps)


def _run(task: Task, policy_name: str, envs: list[Any], writer: DatasetWriter | None, episodes: int,
         seed: int, progress: bool, noise: float = 0.0, acting: Acting | None = None) -> RunResult:
    """The episode loop of :func:`run_episodes`, with its progress bar: one env, or with a batched acting
    model one per slot (:func:`rollouts`; episodes are written in seed order all the same, so an
    interrupted run resumes as a one-env run does)."""
    done = [] if writer is None else writer.done[:episodes]  # sealed by an interrupted run: not redone
    returns, steps, start = [d["return"] for d in done], sum(d["steps"] for d in done), time.perf_counter()
    if done and progress:
        print(f"{task.name} {policy_name}: resuming after {len(done)} episodes an interrupted run recorded "
              f"({writer.partial})", file=sys.stderr)
    with _progress(progress) as bar:
        bar_task = bar.add_task(f"{task.name} {policy_name}", total=episodes, steps=steps, rate=0.0,
                                ret=f"{np.mean(returns):.1f}" if returns else "-", completed=len(done))
        resumed_steps = steps
        counter = [0]

        def tick() -> None:
            counter[0] += 1
            if counter[0] % 200 == 0:
                elapsed = time.perf_counter() - start
                new = steps - resumed_steps + counter[0]
                bar.update(bar_task, steps=steps + counter[0], rate=new / elapsed)

        def finished() -> Any:  # (episode index, record), in index order
            if len(envs) == 1:
                for i in range(len(done), episodes):
                    counter[0] = 0
                    yield i, rollout(task, envs[0], policy_name, seed + i, record=writer is not None,
                                     on_step=tick, noise=noise, acting=acting)
                return
            first, held = len(done), {}
            seeds = [seed + i for i in range(first, episodes)]
            for k, rec in rollouts(task, envs, policy_name, seeds, acting, writer is not None, noise, tick):
                held[seeds[k] - seed] = rec
                while first in held:
                    rec = held.pop(first)
                    counter[0] -= rec.steps  # its steps move from the live count into the total
                    yield first, rec
                    first += 1

        for i, rec in finished():
            if writer is not None:
                obs = {k: np.stack(v) for k, v in rec.observations.items()}
                writer.add(obs, np.stack(rec.actions), rec.rewards, rec.terminations, rec.truncations,
                           seed=seed + i)
            returns.append(rec.episode_return)
            steps += rec.steps
            elapsed = time.perf_counter() - start
            bar.update(bar_task, advance=1, steps=steps, rate=(steps - resumed_steps) / elapsed,
                       ret=f"{np.mean(returns):.1f}")
    path = writer.commit() if writer is not None else None
    return RunResult(returns, steps, time.perf_counter() - start, path, resumed_steps)
