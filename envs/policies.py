"""The policy interface shared by scripted experts and the random baseline."""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym


class Policy(Protocol):
    """A policy acting in one (wrapped) environment. ``reset`` starts an episode."""

    def reset(self, env: gym.Env, seed: int | None = None) -> None: ...

    def __call__(self, obs: dict[str, Any], env: gym.Env) -> Any: ...


class RandomPolicy:
    """Uniform random actions from the env's action space, reproducible from the seed."""

    def __init__(self) -> None:
        self._space: gym.Space | None = None

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        self._space = env.action_space
        self._space.seed(seed)

    def __call__(self, obs: dict[str, Any], env: gym.Env) -> Any:
        assert self._space is not None, "call reset() first"
        return self._space.sample()


def reflect(value: float, lo: float, hi: float) -> float:
    """Fold a straight-line extrapolation back between two walls (a bouncing ball)."""
    span = hi - lo
    if span <= 0:
        return lo
    v = (value - lo) % (2 * span)
    return lo + (v if v <= span else 2 * span - v)


class Stateless:
    """Base for experts that need no per-episode state beyond the env."""

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        """Nothing to reset."""
