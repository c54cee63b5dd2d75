"""Any gymnasium env as a task (issue 18): ``gato-mini collect --env ID``, and eval of a model trained
on such an env's episodes.

The env gets the wrappers every task gets, each recording its arguments (so its spec rebuilds it): a
float64 Box observation becomes float32, a non-dict observation sits under the key ``observation``
(the field name gato-mini gives a non-dict space everywhere, so a dataset recorded by Minari's own
``DataCollector`` tokenizes the same), and a Box action is rescaled to [-1, 1] (actions are binned
directly). ``imports`` are modules to import first, for envs a user's package registers (gymnasium's
own ``module:EnvId`` form works too).

Policies: ``random``, ``constant`` / ``constant:K``, or ``MODULE:CALLABLE``, a user's function from the
env's observation (as the env returns it) to an action in the env's own action space.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from gato_mini.envs.wrappers import (
    DictObservation,
    Float32Observation,
    mujoco_warnings_as_python_warnings,
    unit_actions,
)
from gato_mini.errors import GatoError

OBSERVATION_KEY = "observation"


def import_modules(modules: Sequence[str]) -> None:
    """Import the modules that register a user's envs; one that fails is a one-line error."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 (any failure of the user's module is reported, in one line)
            raise GatoError(f"cannot import {name!r}: {type(exc).__name__}: {exc}") from None


def check_env_id(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec of ``env_id`` (``module:EnvId`` imports the module first, as ``gym.make``
    does); an unknown id is an error with a did-you-mean."""
    if ":" in env_id:
        module, _, env_id = env_id.partition(":")
        import_modules([module])
    try:
        return gym.spec(env_id)
    except (gym.error.Error, ModuleNotFoundError, ImportError, AttributeError, ValueError) as exc:
        ids = list(gym.registry)
        close = difflib.get_close_matches(env_id, ids, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        detail = "" if isinstance(exc, gym.error.Error) else f": {type(exc).__name__}: {exc}"
        raise GatoError(f"unknown gymnasium env {env_id!r}{hint}{detail}; pass --import MODULE for an env "
                        "your own package registers") from None


def standardize(env: gym.Env) -> gym.Env:
    """gato-mini's wrappers on a plain env (see the module docstring)."""
    obs = env.observation_space
    if isinstance(obs, spaces.Box) and np.issubdtype(obs.dtype, np.floating) and obs.dtype != np.float32:
        env = Float32Observation(env)
    if not isinstance(env.observation_space, spaces.Dict):
        env = DictObservation(env, OBSERVATION_KEY)
    if isinstance(env.action_space, spaces.Box):
        env = unit_actions(env)  # an unbounded Box cannot be binned: a clear error
    return env


def make_user_env(env_id: str, max_steps: int, render_mode: str | None = None,
                  imports: tuple[str, ...] = ()) -> gym.Env:
    """``gym.make(env_id)`` capped at ``max_steps`` with gato-mini's wrappers (a task ``maker``)."""
    import_modules(imports)
    check_env_id(env_id)
    mujoco_warnings_as_python_warnings()
    kwargs = {} if render_mode is None else {"render_mode": render_mode}  # an env may take no render_mode
    try:
        env = gym.make(env_id, max_episode_steps=max_steps, **kwargs)
    except Exception as exc:  # noqa: BLE001 (the user's env failed to build: one line, not a traceback)
        raise GatoError(f"cannot make the env {env_id}: {type(exc).__name__}: {exc}") from None
    return standardize(env)


def task_name(env_id: str) -> str:
    """A name usable as a Minari dataset namespace: ``CartPole-v1`` -> ``cartpole-v1``."""
    return re.sub(r"[^a-z0-9-]+", "-", env_id.lower()).strip("-") or "env"


def _no_expert(env_id: str) -> Callable[[], Any]:
    def make() -> Any:
        raise GatoError(f"{env_id} has no scripted expert; use --policy random, constant, constant:K or "
                        "MODULE:CALLABLE (your own function from observation to action)")
    return make


def user_task(env_id: str, max_steps: int | None = None, imports: Sequence[str] = ()) -> Any:
    """A :class:`~gato_mini.envs.registry.Task` for the gymnasium env ``env_id`` (not in the registry);
    its step cap is ``max_steps``, else the env's own limit, else 1000."""
    from gato_mini.envs.registry import Task

    imports = tuple(imports)
    import_modules(imports)
    spec = check_env_id(env_id)
    cap = max_steps or spec.max_episode_steps or 1000
    return Task(task_name(env_id), env_id, "gym", f"gymnasium env {env_id}", int(cap),
                functools.partial(make_user_env, imports=imports), _no_expert(env_id))


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


def _from_spec(spec_json: str, env_id: str, max_steps: int, render_mode: str | None = None) -> gym.Env:
    """A task ``maker`` that rebuilds an env from a dataset's stored spec (its wrappers included)."""
    spec = gym.envs.registration.EnvSpec.from_json(spec_json)
    kwargs = {} if render_mode is None else {"render_mode": render_mode}
    try:
        env = gym.make(spec, max_episode_steps=max_steps, **kwargs)
    except Exception as exc:  # noqa: BLE001 (a spec that no longer builds: one line, and the way out)
        raise GatoError(f"cannot recreate the env {spec.id} from the dataset's stored spec "
                        f"({type(exc).__name__}: {exc}); pass --env ENV_ID") from None
    # a spec recorded by Minari's own DataCollector has none of gato-mini's wrappers
    return env if isinstance(env.observation_space, spaces.Dict) else DictObservation(env, OBSERVATION_KEY)


def spec_task(name: str, spec_json: str, max_steps: int) -> Any:
    """A Task (no expert) for the env a dataset's stored spec describes, capped at ``max_steps``."""
    from gato_mini.envs.registry import Task

    spec = gym.envs.registration.EnvSpec.from_json(spec_json)
    return Task(name, spec.id, "gym", f"gymnasium env {spec.id} (from the dataset's stored spec)",
                int(max_steps), functools.partial(_from_spec, spec_json), _no_expert(spec.id))
