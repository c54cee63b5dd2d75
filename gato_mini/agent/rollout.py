"""Running episodes with an `Agent` over a batch of environments.

Episode ``j`` always uses seed ``seed + j`` whichever slot runs it, so a batch
of N environments gives the same episodes as N single runs. Slots are stepped
in lockstep; a slot whose episode ends starts the next episode at once (the
agent resets that slot only). An environment that raises, hangs past its time
limit or dies (see :class:`~gato_mini.agent.procenv.ProcessEnv`) ends its
episode as *failed* with the error recorded; the other slots carry on.
Environments with ``step_async``/``step_wait`` (process envs) are all sent
their actions before any answer is awaited, so they step in parallel; slots whose
episodes start together reset in parallel the same way (``reset_async``/``reset_wait``).

Why a list of environments rather than ``gymnasium.vector``: the vector envs
raise for the whole batch when one sub-environment fails, and their
autoreset conventions differ between gymnasium and ale-py. Stepping the same
wrapper stack that collection used keeps observations identical to the
training data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from gato_mini.agent.agent import Agent
from gato_mini.agent.procenv import EnvError, describe
from gato_mini.errors import GatoError
from gato_mini.fields import as_observation_dict


@dataclass
class EpisodeResult:
    """One finished (or failed) episode."""

    episode: int
    seed: int
    ret: float = 0.0
    length: int = 0
    error: str | None = None
    actions: list[Any] = field(default_factory=list, repr=False)
    info: dict[str, Any] = field(default_factory=dict, repr=False)  # the last step's info (plain values)


def run_agent(agent: Agent, envs: list[gym.Env], episodes: int, seed: int = 0,
              on_episode: Callable[[EpisodeResult], None] | None = None,
              frames: list[np.ndarray] | None = None, keep_actions: bool = False) -> list[EpisodeResult]:
    """Run ``episodes`` episodes on ``envs`` (one agent slot each); results in episode order.

    ``frames``: if a list is given, ``envs[0].render()`` of its first episode is appended each step.
    """
    results: dict[int, EpisodeResult] = {}
    current: dict[int, EpisodeResult] = {}
    obs: dict[int, dict[str, Any]] = {}
    next_episode = 0

    def finish(slot: int) -> None:
        r = current.pop(slot)
        obs.pop(slot, None)
        results[r.episode] = r
        if on_episode is not None:
            on_episode(r)

    def start(slots: list[int]) -> None:
        """Begin the next episodes in ``slots``. Their envs reset together, so process envs reset in
        parallel (a seeded Atari reset reloads the ROM: 0.2 s each). A slot whose reset fails ends that
        episode as failed and takes the next one."""
        nonlocal next_episode
        while slots and next_episode < episodes:
            todo: dict[int, EpisodeResult] = {}
            for slot in slots[:episodes - next_episode]:
                todo[slot] = current[slot] = EpisodeResult(next_episode, seed + next_episode)
                next_episode += 1
            slots = []
            for slot, answer in _call_all(envs, "reset", {s: r.seed for s, r in todo.items()}).items():
                if isinstance(answer, BaseException):
                    todo[slot].error = _describe(answer)
                    finish(slot)
                    slots.append(slot)
                    continue
                obs[slot] = as_observation_dict(answer[0], envs[slot].observation_space)
                agent.reset(slot)
                if frames is not None and slot == 0 and todo[slot].episode == 0:
                    frames.append(_render(envs[0]))

    start(list(range(min(len(envs), episodes))))
    while current:
        actions = agent.act({s: obs[s] for s in current})
        ended = []
        for slot, answer in _call_all(envs, "step", actions).items():
            r = current[slot]
            if isinstance(answer, BaseException):
                r.error = _describe(answer)
                finish(slot)
                ended.append(slot)
                continue
            o, reward, terminated, truncated, info = answer
            r.ret += float(reward)
            r.length += 1
            if keep_actions:
                r.actions.append(np.asarray(actions[slot]).tolist())
            if frames is not None and slot == 0 and r.episode == 0:
                frames.append(_render(envs[0]))
            if terminated or truncated:
                r.info = _plain(info)
                finish(slot)
                ended.append(slot)
            else:
                obs[slot] = as_observation_dict(o, envs[slot].observation_space)
        start(ended)
    return [results[k] for k in sorted(results)]


def _call_all(envs: list[gym.Env], what: str, args: dict[int, Any]) -> dict[int, Any]:
    """``step`` (args: actions) or ``reset`` (args: seeds) every slot given: ``{slot: the answer or the
    exception}``. Process envs are all sent their calls first and then awaited in turn, so they run in
    parallel."""
    step = what == "step"
    answers: dict[int, Any] = {}
    sent = set()
    for slot, arg in args.items():
        env = envs[slot]
        if hasattr(env, "step_async" if step else "reset_async"):
            try:
                env.step_async(arg) if step else env.reset_async(seed=arg)
                sent.add(slot)
            except Exception as exc:  # noqa: BLE001 - the env's own failure, reported per episode
                answers[slot] = exc
    for slot, arg in args.items():
        if slot in answers:
            continue
        env = envs[slot]
        try:
            if slot in sent:
                answers[slot] = env.step_wait() if step else env.reset_wait()
            else:
                answers[slot] = env.step(arg) if step else env.reset(seed=arg)
        except Exception as exc:  # noqa: BLE001
            answers[slot] = exc
    return {slot: answers[slot] for slot in args}


def _plain(info: dict[str, Any]) -> dict[str, Any]:
    """The JSON-friendly entries of an env's info dict (strings, numbers, lists of them)."""
    def ok(v: Any) -> bool:
        return isinstance(v, (str, bool, int, float)) or (
            isinstance(v, (list, tuple)) and all(isinstance(x, (str, bool, int, float)) for x in v))
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in info.items() if ok(v)}


def _render(env: gym.Env) -> np.ndarray:
    try:
        return env.render()
    except Exception as exc:  # noqa: BLE001 - missing renderer packages raise many types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GatoError(f"cannot record a video of {env.spec.id if env.spec else env}: {first}") from None


def _describe(exc: BaseException) -> str:
    # a process env's error already names the original one, raised in the child
    return str(exc) if isinstance(exc, EnvError) else describe(exc)
