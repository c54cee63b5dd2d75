"""Agent speed on Atari: steps per second with the KV cache and with full recomputation.

For the ``tiny`` and ``small`` models (untrained weights: speed does not depend
on them) on atari-pong with 1, 4 and 8 environments: agent steps per second
(one step = one action in each environment), the share of wall time spent in
the model (``Agent.act``) versus the emulator (``env.step``), with the KV cache
and with the whole context recomputed each step. ``cache_speedup`` is the
headline ratio. Contexts fill up within the run (27 tokens per Pong step), so
the numbers include the cache refills that context overflow causes.

    python benchmarks/rollout.py [--steps 60] [--out FILE]
"""

from __future__ import annotations

import os
import sys

# benchmarks/tokenize.py would shadow the standard library's tokenize: keep this
# folder at the end of sys.path, not the front.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from _common import write  # noqa: E402

from gato_mini.agent import Agent  # noqa: E402
from gato_mini.config import GatoConfig  # noqa: E402
from gato_mini.envs.registry import get_task  # noqa: E402
from gato_mini.fields import as_observation_dict  # noqa: E402
from gato_mini.model import GatoModel  # noqa: E402

TASK = "atari-pong"


def bench(size: str, n_envs: int, use_cache: bool, steps: int) -> dict:
    torch.manual_seed(0)
    task = get_task(TASK)
    fields, action = task.fields()
    model = GatoModel(GatoConfig.from_name(size))
    agent = Agent(model, fields, action, n_envs, use_cache=use_cache)
    envs = [task.make() for _ in range(n_envs)]
    obs = {}
    for i, env in enumerate(envs):
        o, _ = env.reset(seed=i)
        obs[i] = as_observation_dict(o, env.observation_space)
        agent.reset(i)
    t_model = t_env = 0.0
    for _ in range(steps):
        t0 = time.perf_counter()
        actions = agent.act(obs)
        t1 = time.perf_counter()
        for i, a in actions.items():
            o, _, term, trunc, _ = envs[i].step(a)
            if term or trunc:
                o, _ = envs[i].reset()
                agent.reset(i)
            obs[i] = as_observation_dict(o, envs[i].observation_space)
        t_env += time.perf_counter() - t1
        t_model += t1 - t0
    for env in envs:
        env.close()
    total = t_model + t_env
    return {"steps_per_s": round(steps / total, 2), "env_steps_per_s": round(steps * n_envs / total, 1),
            "model_share": round(t_model / total, 3), "env_share": round(t_env / total, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out")
    args = parser.parse_args()
    result: dict = {"task": TASK, "steps": args.steps, "cases": {}}
    for size in ("tiny", "small"):
        for n in (1, 4, 8):
            cached = bench(size, n, True, args.steps)
            plain = bench(size, n, False, args.steps)
            key = f"{size}_envs{n}"
            result["cases"][key] = {"cache": cached, "recompute": plain,
                                    "cache_speedup": round(cached["steps_per_s"] / plain["steps_per_s"], 2)}
            print(key, result["cases"][key], flush=True)
    write("rollout", result, args.out)


if __name__ == "__main__":
    main()
