"""The policy interface shared by scripted experts and the random baseline."""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym

from gato_mini.errors import ConfigError


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


class ConstantPolicy:
    """One action, every step: button ``index`` of a Discrete space, or the middle of a Box (zero torque
    for the [-1, 1] actions of the control tasks). The "do nothing" baseline a learned policy must beat."""

    def __init__(self, index: int | None = None) -> None:
        self.index = index
        self._action: Any = None

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        import numpy as np
        from gymnasium import spaces

        space = env.action_space
        if isinstance(space, spaces.Discrete):
            k = 0 if self.index is None else self.index
            if not 0 <= k < space.n:
                raise ConfigError(f"constant action {k} is outside the {space.n} actions")
            self._action = int(space.start + k)
        elif isinstance(space, spaces.Box):
            if self.index is not None:
                raise ConfigError("a Box action space has one constant policy (its middle), "
                                  "not numbered ones")
            bounded = np.isfinite(space.low) & np.isfinite(space.high)
            mid = np.where(bounded, (space.low + space.high) / 2, 0.0)
            self._action = np.clip(mid, space.low, space.high).astype(space.dtype)
        else:
            raise TypeError(f"no constant policy for a {type(space).__name__} action space")

    def __call__(self, obs: dict[str, Any], env: gym.Env) -> Any:
        assert self._action is not None, "call reset() first"
        return self._action


def constant_kinds(space: gym.Space) -> list[str]:
    """The policy kinds of every constant action of ``space``: ``constant:K`` per button, or ``constant``."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return [f"constant:{k}" for k in range(int(space.n))]
    return ["constant"]


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
