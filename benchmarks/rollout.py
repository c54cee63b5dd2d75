"""Acting speed on Atari, against the model's own compute floor.

Per model size (untrained weights: speed does not depend on them) and env count, on atari-pong, in one
run:

* ``flops_per_env_step``: what the model must compute for one action (the observation's tokens, the
  separator and the previous action through the trunk at the mean context, the patch ResNet on each
  patch, and one row of the head);
* ``matmul_peak_flops``, measured here (fp32 1024x1024 ``torch.mm``), and the resulting
  ``floor_env_steps_per_s`` (peak / FLOPs: no model can act faster on this machine);
* ``bare``: the agent and in-process envs in a plain loop: env steps/s, its share of the floor, and the
  shares of wall time in the model's forward, in ``env.step`` and in the glue between them;
* ``eval``: the path ``gato-mini eval`` takes (each env in its own process, :func:`run_agent`, in a
  fresh interpreter as the CLI is): the start-up (processes, imports, first reset) apart, then env
  steps/s and the share of the floor. Each env plays one episode capped at ``--steps``, so its resets
  weigh more than in a real evaluation of 1,000-5,000-step episodes;
* ``cached_vs_recomputed``: one Pong step fed at a full context of 1,000 tokens of ``small`` through the
  KV cache, against recomputing the whole context: the headline ratio of the cache.

    python benchmarks/rollout.py [--steps 150] [--out FILE]
"""

from __future__ import annotations

import os
import sys

# benchmarks/tokenize.py would shadow the standard library's tokenize: keep this
# folder at the end of sys.path, not the front.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import matmul_peak, write  # noqa: E402

from gato_mini.agent.agent import Agent  # noqa: E402
from gato_mini.agent.procenv import ProcessEnv  # noqa: E402
from gato_mini.agent.rollout import run_agent  # noqa: E402
from gato_mini.config import GatoConfig  # noqa: E402
from gato_mini.data.sequence import concat  # noqa: E402
from gato_mini.envs.registry import get_task  # noqa: E402
from gato_mini.fields import as_observation_dict  # noqa: E402
from gato_mini.model import GatoModel  # noqa: E402
from gato_mini.model.generate import Engine  # noqa: E402
from gato_mini.tokenizers import image  # noqa: E402

TASK = "atari-pong"


def decode_flops(cfg: GatoConfig, model: GatoModel, tokens: int, patches: int, context: float) -> float:
    """Forward FLOPs of feeding ``tokens`` tokens (``patches`` of them patches) at a mean ``context``,
    with one row of logits: 2 N per token (N: the trunk's matrices), 4 L d per token and key of
    attention, the patch ResNet per patch, 2 d V for the head row."""
    trunk = sum(p.numel() for name, p in model.named_parameters()
                if p.dim() >= 2 and name.startswith("blocks."))
    c, g = cfg.patch_hidden, (cfg.patch_size // 4) ** 2
    patch = 2 * (g * (cfg.image_channels * 16 * c) + 2 * g * (9 * c * c) + g * c * cfg.n_embd)
    return (tokens * (2 * trunk + 4 * cfg.n_layer * cfg.n_embd * context) + patches * patch
            + 2 * cfg.n_embd * cfg.padded_vocab_size)


class Timed:
    """Wraps a model's forward to add up the seconds spent in it."""

    def __init__(self, model: GatoModel) -> None:
        self.seconds, self.real = 0.0, model.forward

        def forward(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            t = time.perf_counter()
            out = self.real(*args, **kwargs)
            self.seconds += time.perf_counter() - t
            return out
        model.forward = forward


def bare(size: str, n_envs: int, steps: int) -> dict:
    torch.manual_seed(0)
    task = get_task(TASK)
    fields, action = task.fields()
    model = GatoModel(GatoConfig.from_name(size))
    agent = Agent(model, fields, action, n_envs)
    timed = Timed(model)
    envs = [task.make() for _ in range(n_envs)]
    obs = {}
    for i, env in enumerate(envs):
        o, _ = env.reset(seed=i)
        obs[i] = as_observation_dict(o, env.observation_space)
        agent.reset(i)
    t_act = t_env = 0.0
    contexts = []
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
        t_act += t1 - t0
        contexts.append(np.mean([agent.engine.pos[i] for i in range(n_envs)]))
    for env in envs:
        env.close()
    total = t_act + t_env
    return {"env_steps_per_s": round(steps * n_envs / total, 1),
            "model_share": round(timed.seconds / total, 3), "env_share": round(t_env / total, 3),
            "glue_share": round((t_act - timed.seconds) / total, 3),
            "mean_context": round(float(np.mean(contexts)), 1)}


def in_eval(size: str, n_envs: int, steps: int) -> dict:
    """As ``gato-mini eval`` runs: one process per env (step timeout on), the agent, run_agent."""
    torch.manual_seed(0)
    task = get_task(TASK)
    fields, action = task.fields()
    model = GatoModel(GatoConfig.from_name(size))
    t0 = time.perf_counter()
    envs = [ProcessEnv(task.factory(steps), 60.0, name=f"{TASK}[{k}]") for k in range(n_envs)]
    for k, env in enumerate(envs):  # start the processes (imports, the emulator) before the clock
        env.reset(seed=10_000 + k)
    startup = time.perf_counter() - t0
    agent = Agent(model, fields, action, n_envs)
    try:
        t1 = time.perf_counter()
        results = run_agent(agent, envs, n_envs, seed=0)
        seconds = time.perf_counter() - t1
    finally:
        for env in envs:
            env.close()
    done = sum(r.length for r in results)
    return {"startup_s": round(startup, 2), "env_steps_per_s": round(done / seconds, 1), "env_steps": done,
            "failed": sum(r.error is not None for r in results)}


def in_eval_process(size: str, n_envs: int, steps: int) -> dict:
    """:func:`in_eval` in a fresh interpreter with no main file, as under ``gato-mini eval``: a spawned env
    process re-imports its parent's main module, and this script's would bring torch into each one."""
    code = (f"import sys, json; sys.path.append({_HERE!r}); import rollout; "
            f"print(json.dumps(rollout.in_eval({size!r}, {n_envs}, {steps})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cached_vs_recomputed(size: str = "small", context: int = 1000, repeats: int = 5) -> dict:
    """One Pong step (the last action, the observation, the separator) after ``context`` tokens."""
    torch.manual_seed(0)
    task = get_task(TASK)
    fields, action = task.fields()
    model = GatoModel(GatoConfig.from_name(size))
    agent = Agent(model, fields, action, 1, use_cache=False)
    env = task.make()
    o, _ = env.reset(seed=0)
    step = agent.observe(as_observation_dict(o, env.observation_space))
    env.close()
    filler = concat([step] * (context // len(step) + 1)).timesteps(0, context // len(step), model.cfg)
    out = {}
    for use_cache in (True, False):
        engine = Engine(model, 1, use_cache)
        engine.feed([0], [filler])
        pos, hist = engine.pos[0], list(engine._history[0])
        times = []
        for _ in range(repeats + 1):
            engine.pos[0], engine._history[0] = pos, list(hist)  # the same full context each time
            t = time.perf_counter()
            engine.feed([0], [step])
            times.append(time.perf_counter() - t)
        engine.close()
        out["cached_s" if use_cache else "recomputed_s"] = float(np.median(times[1:]))
    out.update({"size": size, "context_tokens": len(filler), "step_tokens": len(step),
                "speedup": round(out["recomputed_s"] / out["cached_s"], 1)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="agent steps per case (default: 150)")
    parser.add_argument("--out")
    args = parser.parse_args()
    peak = matmul_peak()
    result: dict = {"task": TASK, "steps": args.steps, "matmul_peak_flops": round(peak), "cases": {}}
    task = get_task(TASK)
    fields, _ = task.fields()
    for size, counts in (("tiny", (1, 4, 8)), ("small", (8,))):
        cfg = GatoConfig.from_name(size)
        model = GatoModel(cfg)
        patches = sum(int(np.prod(image.grid_shape(f.shape, cfg.patch_size))) for f in fields.values()
                      if f.modality == "image")
        for n in counts:
            b = bare(size, n, args.steps)
            e = in_eval_process(size, n, args.steps)
            flops = decode_flops(cfg, model, patches + 2, patches, b["mean_context"])
            floor = peak / flops
            case = {"flops_per_env_step": round(flops), "floor_env_steps_per_s": round(floor, 1),
                    "bare": {**b, "share_of_floor": round(b["env_steps_per_s"] / floor, 3)},
                    "eval": {**e, "share_of_floor": round(e["env_steps_per_s"] / floor, 3)}}
            result["cases"][f"{size}_envs{n}"] = case
            print(f"{size}_envs{n}", case, flush=True)
    result["cached_vs_recomputed"] = cached_vs_recomputed()
    write("rollout", result, args.out)


if __name__ == "__main__":
    main()
