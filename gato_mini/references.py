"""Reference scores worked out now: every score a normalized number is measured against that is not
read from a references file (the stored ones, packaged and the user's, are
:mod:`gato_mini.envs.registry`'s).

* measured now by playing a policy (:func:`measure_reference`; the best constant action:
  :func:`best_constant`), for ``gato-mini scores`` and eval;
* measured at eval and cached beside the model, where the stored ones do not compare like with like
  (a lower step cap, an env outside the registry): :func:`measured_references`;
* taken from a training dataset (Gato Sec. 3.1's expert score of logged data: its best mean over 100
  consecutive episodes): :func:`best_windowed_mean`, :func:`episodes_env`;
* which of these an evaluation uses, and where each came from: :func:`eval_references`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gato_mini.collect import Recording, run_episodes
from gato_mini.data.minari_io import iter_episodes, open_dataset, read_collection
from gato_mini.envs.policies import constant_policies
from gato_mini.envs.registry import Reference, Task, capped_key, get_task
from gato_mini.errors import GatoError
from gato_mini.procs import write_atomic


def measure_reference(task_name: str | Task, policy_name: str, episodes: int, seed: int = 0,
                      max_steps: int | None = None, progress: bool = True) -> Reference:
    """A reference score measured now (nothing recorded)."""
    if policy_name == "constant":
        return best_constant(task_name, episodes, seed, max_steps, progress)
    task = task_name if isinstance(task_name, Task) else get_task(task_name)
    return _measure(task, policy_name, episodes, seed, max_steps, progress)


def best_constant(task_name: str | Task, episodes: int, seed: int = 0, max_steps: int | None = None,
                  progress: bool = False, scout_episodes: int = 4) -> Reference:
    """The best constant-action policy of a task, measured now: zero torque for a Box, the best single
    button held for a Discrete space (each button is tried on ``scout_episodes`` episodes, then the best
    on all ``episodes``). The "do nothing" baseline: a model that ignores its input scores at most this."""
    task = task_name if isinstance(task_name, Task) else get_task(task_name)
    if task.family == "caption":
        raise GatoError(f"{task.name} is a captioning task: it has no constant action")
    env = task.make(max_steps=1)
    try:
        policies = constant_policies(env.action_space)
    finally:
        env.close()
    scout = episodes if len(policies) == 1 else min(episodes, scout_episodes)
    tried = {k: _measure(task, k, scout, seed, max_steps, progress) for k in policies}
    best = max(tried, key=lambda k: tried[k].mean)
    ref = tried[best] if scout == episodes else _measure(task, best, episodes, seed, max_steps, progress)
    return Reference(ref.mean, ref.std, ref.episodes, ref.seed, ref.max_steps, policy=best)


def _measure(task: Task, policy: str, episodes: int, seed: int, max_steps: int | None,
             progress: bool) -> Reference:
    result = run_episodes(task, Recording(policy, episodes, seed, max_steps), progress=progress)
    return Reference(result.mean, result.std, episodes, seed, max_steps or task.max_steps)


def best_windowed_mean(returns: list[float], window: int = 100) -> tuple[float, int]:
    """Gato Sec. 3.1's expert score of a dataset: the largest mean return over ``window`` consecutive
    episodes (all of them when there are fewer), so data from an improving agent counts its best
    stretch. Returns (that mean, the window used)."""
    window = min(window, len(returns))
    sums = np.convolve(np.asarray(returns, dtype=np.float64), np.ones(window), mode="valid")
    return float(sums.max() / window), window


def episodes_env(dataset: str | Path) -> dict[str, Any]:
    """For a dataset of an env outside the registry: its env spec (JSON, None when the dataset stores
    none), the step cap it was recorded at, and its return (eval's expert reference,
    :func:`best_windowed_mean`), so eval needs neither the working directory nor the original config."""
    collection = read_collection(dataset) or {}
    ds = open_dataset(dataset)
    spec = ds.spec.env_spec
    returns, lengths = [], []
    for ep in iter_episodes(dataset, ds):
        returns.append(float(ep.episode_return))
        lengths.append(len(ep.actions))
    cap = collection.get("step_cap") or (spec.max_episode_steps if spec is not None else None) or max(lengths)
    best, window = best_windowed_mean(returns)
    return {"env_spec": spec.to_json() if spec is not None else None, "step_cap": int(cap),
            "dataset_return": {"mean": best, "window": window,
                               "overall_mean": float(np.mean(returns)), "std": float(np.std(returns)),
                               "episodes": len(returns)}}


def measured_references(spec: Task, policies: tuple[str, ...], episodes: int, seed: int, cap: int,
                        cache: Path | None) -> tuple[dict[str, Reference], str]:
    """References of ``spec`` measured now at step cap ``cap`` and seeds ``seed``... (``policies`` among
    random, constant and expert), cached in ``cache`` (a JSON file beside the model) so they are
    measured once. Returns (references, the key saying how they were measured)."""
    key = f"{spec.env_id} cap={cap} seed={seed} episodes={episodes}"
    try:
        stored = json.loads(cache.read_text()) if cache is not None and cache.is_file() else {}
    except (OSError, ValueError):
        stored = {}  # a torn cache is measured again
    have = stored.setdefault(key, {})
    missing = [k for k in policies if k not in have]
    for k in missing:
        have[k] = measure_reference(spec, k, episodes, seed, cap, progress=False).to_dict()
    if missing and cache is not None:
        try:
            write_atomic(cache, json.dumps(stored, indent=1))
        except OSError:
            pass  # a read-only model folder: measured again next time
    return {k: Reference(**have[k]) for k in policies}, key


def eval_references(spec: Task, entry: dict[str, Any], episodes: int, seed: int, max_steps: int | None,
                    cache: Path | None, registered: bool) -> tuple[dict[str, Reference], dict[str, str]]:
    """The references an evaluation of ``spec`` compares with, and where each came from. A registered
    task played on its own env (``registered``) at its own step cap: ``references.yaml``'s; below that
    cap, all three measured now at this cap and these seeds, since the stored ones are of whole
    episodes. Any other env: random and the best constant measured now, and as expert the return of the
    source's own dataset (``entry``: its ``sources.json`` entry; the best windowed mean, Gato Sec. 3.1)."""
    if registered and max_steps and max_steps < spec.max_steps:
        stored = spec.capped_references(max_steps, seed, episodes)
        if {"random", "constant", "expert"} <= set(stored):  # measured at this cap, seeds and count before
            key = capped_key(max_steps, seed, episodes)
            return stored, {k: f"references.yaml ({key})" for k in stored}
        refs, key = measured_references(spec, ("random", "constant", "expert"), episodes, seed, max_steps,
                                        cache)
        return refs, {k: f"measured at eval ({key})" for k in refs}
    if registered:
        refs = spec.references()
        origin = {"random": "references.yaml", "constant": "references.yaml",
                  "expert": "references.yaml (the scripted expert)"}
        return refs, {k: v for k, v in origin.items() if k in refs}
    cap = max_steps or spec.max_steps
    refs, key = measured_references(spec, ("random", "constant"), episodes, seed, cap, cache)
    origin = {k: f"measured at eval ({key})" for k in refs}
    data = entry.get("dataset_return")
    if data:
        refs["expert"] = Reference(data["mean"], data["std"], data["episodes"], 0,
                                   entry.get("step_cap") or cap, policy="the training dataset")
        window = data.get("window", data["episodes"])
        origin["expert"] = (f"the training dataset's return, the best mean over {window} consecutive of its "
                            f"{data['episodes']} episodes (Gato Sec. 3.1)")
    return refs, origin


def reference_means(refs: dict[str, Reference]) -> tuple[float | None, float | None]:
    """(random, expert) mean returns of some references, None where not measured."""
    return tuple(refs[k].mean if k in refs else None for k in ("random", "expert"))  # type: ignore[return-value]
