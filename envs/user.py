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

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from gato_mini.envs.policies import OBSERVATION_KEY, import_modules
from gato_mini.envs.registry import Task
from gato_mini.envs.wrappers import (
    DictObservation,
    Float32Observation,
    mujoco_warnings_as_python_warnings,
    unit_actions,
)
from gato_mini.errors import GatoError, did_you_mean


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
        hint = did_you_mean(env_id, ids)
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
    imports = tuple(imports)
    import_modules(imports)
    spec = check_env_id(env_id)
    cap = max_steps or spec.max_episode_steps or 1000
    return Task(task_name(env_id), env_id, "gym", f"gymnasium env {env_id}", int(cap),
                functools.partial(make_user_env, imports=imports), _no_expert(env_id))


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
    spec = gym.envs.registration.EnvSpec.from_json(spec_json)
    return Task(name, spec.id, "gym", f"gymnasium env {spec.id} (from the dataset's stored spec)",
                int(max_steps), functools.partial(_from_spec, spec_json), _no_expert(spec.id))
