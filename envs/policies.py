"""The policy interface shared by scripted experts and the random baseline."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from gato_mini.errors import ConfigError, GatoError


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


def constant_policies(space: gym.Space) -> list[str]:
    """The policy names of every constant action of ``space``: ``constant:K`` per button, or ``constant``."""
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


OBSERVATION_KEY = "observation"


def import_modules(modules: Sequence[str]) -> None:
    """Import the modules that register a user's envs; one that fails is a one-line error."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 (any failure of the user's module is reported, in one line)
            raise GatoError(f"cannot import {name!r}: {type(exc).__name__}: {exc}") from None


class CallablePolicy:
    """A user's function ``fn(observation) -> action`` as a policy. It sees the observation as the env
    returns it and answers in the env's own action space; an action outside that space is a one-line
    error. Box actions are then mapped to the [-1, 1] the wrapped env takes."""

    def __init__(self, target: str) -> None:
        module, _, name = target.partition(":")
        if not module or not name:
            raise GatoError(f"policy {target!r} must be MODULE:CALLABLE")
        import_modules([module])
        fn = getattr(importlib.import_module(module), name, None)
        if not callable(fn):
            raise GatoError(f"policy {target!r}: {module} has no callable {name!r}")
        self.target, self.fn = target, fn
        self._space: spaces.Space | None = None
        self._unwrap: bool = False

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        self._space = env.unwrapped.action_space
        self._unwrap = not isinstance(env.unwrapped.observation_space, spaces.Dict)

    def __call__(self, obs: dict[str, Any], env: gym.Env) -> Any:
        assert self._space is not None, "call reset() first"
        action = self.fn(obs[OBSERVATION_KEY] if self._unwrap and OBSERVATION_KEY in obs else obs)
        space = self._space
        value = np.asarray(action, dtype=space.dtype) if isinstance(space, spaces.Box) else action
        try:
            ok = space.contains(value)
        except Exception:  # noqa: BLE001 (a malformed action is reported like any other bad one)
            ok = False
        if not ok:
            raise GatoError(f"policy {self.target} returned {action!r}, outside the action space {space}")
        if isinstance(space, spaces.Box):
            return (2.0 * (value - space.low) / (space.high - space.low) - 1.0).astype(np.float32)
        return action
