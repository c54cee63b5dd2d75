"""Running episodes with an `Agent` over a batch of environments.

Episode ``j`` always uses seed ``seed + j`` whichever slot runs it, so a batch
of N environments gives the same episodes as N single runs. Slots are stepped
in lockstep; a slot whose episode ends starts the next episode at once (the
agent resets that slot only). An environment that raises, hangs past its time
limit or dies (see :class:`~gato_mini.agent.procenv.ProcessEnv`) ends its
episode as *failed* with the error recorded; the other slots carry on.
Environments with ``step_async``/``step_wait`` (process envs) are all sent
their actions before any answer is awaited, so they step in parallel.

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

    def start(slot: int) -> None:
        nonlocal next_episode
        while next_episode < episodes:
            r = EpisodeResult(next_episode, seed + next_episode)
            next_episode += 1
            current[slot] = r
            try:
                o, _ = envs[slot].reset(seed=r.seed)
            except Exception as exc:  # noqa: BLE001 - the env's own failure, reported per episode
                r.error = _describe(exc)
                finish(slot)
                continue
            obs[slot] = as_observation_dict(o, envs[slot].observation_space)
            agent.reset(slot)
            if frames is not None and slot == 0 and r.episode == 0:
                frames.append(_render(envs[0]))
            return

    for slot in range(min(len(envs), episodes)):
        start(slot)
    while current:
        actions = agent.act({s: obs[s] for s in current})
        for slot, (action, answer) in _step_all(envs, actions).items():
            r = current[slot]
            if isinstance(answer, BaseException):
                r.error = _describe(answer)
                finish(slot)
                start(slot)
                continue
            o, reward, terminated, truncated, info = answer
            r.ret += float(reward)
            r.length += 1
            if keep_actions:
                r.actions.append(np.asarray(action).tolist())
            if frames is not None and slot == 0 and r.episode == 0:
                frames.append(_render(envs[0]))
            if terminated or truncated:
                r.info = _plain(info)
                finish(slot)
                start(slot)
            else:
                obs[slot] = as_observation_dict(o, envs[slot].observation_space)
    return [results[k] for k in sorted(results)]


def _step_all(envs: list[gym.Env], actions: dict[int, Any]) -> dict[int, tuple[Any, Any]]:
    """Step every slot: ``{slot: (action, (obs, reward, terminated, truncated, info) or the exception)}``.

    Process envs receive all their actions first and are then awaited in turn, so they run in parallel.
    """
    answers: dict[int, tuple[Any, Any]] = {}
    sent = []
    for slot, action in actions.items():
        if hasattr(envs[slot], "step_async"):
            try:
                envs[slot].step_async(action)
                sent.append(slot)
            except Exception as exc:  # noqa: BLE001 - the env's own failure, reported per episode
                answers[slot] = (action, exc)
    for slot, action in actions.items():
        if slot in answers:
            continue
        try:
            answers[slot] = (action, envs[slot].step_wait() if slot in sent else envs[slot].step(action))
        except Exception as exc:  # noqa: BLE001
            answers[slot] = (action, exc)
    return {slot: answers[slot] for slot in actions}


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
