"""Acting speed on Atari, against the model's own compute floor.

Per model size (untrained weights: speed does not depend on them) and env count, on atari-pong, in one
run:

* ``flops_per_env_step``: what the model must compute for one action (the observation's tokens, the
  separator and the previous action through the trunk at the mean context, the patch ResNet on each
  patch, and one row of the head over the action's legal ids, all the agent computes);
* ``matmul_peak_flops``, measured here (fp32 1024x1024 ``torch.mm``), and the resulting
  ``floor_env_steps_per_s`` (peak / FLOPs: no model can act faster on this machine);
* ``bare``: the agent and in-process envs in a plain loop: env steps/s, its share of the floor, and the
  shares of wall time in the model's forward for the step itself (``model_share``), in refilling the
  caches of slots whose context overflowed (``refill_share``: the kept half-context recomputed, about
  every 20 Pong steps), in ``env.step`` and in the glue between them;
* ``eval``: the path ``gato-mini eval`` takes (each env in its own process, :func:`run_agent`, in a
  fresh interpreter as the CLI is): the start-up (processes, imports, first reset) apart, then env
  steps/s, the share of the floor and the same shares of time (the env's share there is the parallel
  step of all env processes, their round trips included). Each env plays one episode capped at
  ``--steps``; its seeded reset (0.2 s: ALE reloads the ROM) is reported apart (``reset_s``) and left
  out of the rate and the shares, as it is all but nothing in a real 1,000-5,000-step episode;
* ``env_alone``: Pong's own steps/s with no model, in this process and through 1, 4 and 8 env processes;
  with the floor it gives ``bound_env_steps_per_s`` per case: the model at its floor followed by the
  env (the bare loop's in-process env, the eval's processes), what no agent stepping env and model in
  turn can beat here;
* ``compile`` (with ``--compile``): one decode step of tiny x 8 eager against ``torch.compile`` of the
  model's forward (the compile time apart). It does not pay on CPU (docs/speed.md), so the agent
  runs eager; the case stays so that anyone can measure it again.

    python benchmarks/rollout.py [--steps 150] [--compile] [--out FILE]
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

from gato_mini.agent import rollout as rollout_module  # noqa: E402
from gato_mini.agent.agent import Agent, AgentOptions  # noqa: E402
from gato_mini.agent.procenv import ProcessEnv  # noqa: E402
from gato_mini.agent.rollout import run_agent  # noqa: E402
from gato_mini.config import GatoConfig  # noqa: E402
from gato_mini.data.sequence import TokenSequence, concat  # noqa: E402
from gato_mini.data.timestep import legal_range  # noqa: E402
from gato_mini.envs.registry import get_task  # noqa: E402
from gato_mini.fields import as_observation_dict  # noqa: E402
from gato_mini.model import GatoModel  # noqa: E402
from gato_mini.model.generate import Engine, model_inputs  # noqa: E402
from gato_mini.tokenizers import image  # noqa: E402

TASK = "atari-pong"


def decode_flops(cfg: GatoConfig, model: GatoModel, tokens: int, patches: int, context: float,
                 head_ids: int) -> float:
    """Forward FLOPs of feeding ``tokens`` tokens (``patches`` of them patches) at a mean ``context``,
    with one row of logits over ``head_ids`` ids: 2 N per token (N: the trunk's matrices), 4 L d per
    token and key of attention, the patch ResNet per patch, 2 d ids for the head row."""
    trunk = sum(p.numel() for name, p in model.named_parameters()
                if p.dim() >= 2 and name.startswith("blocks."))
    c, g = cfg.patch_hidden, (cfg.patch_size // 4) ** 2
    patch = 2 * (g * (cfg.image_channels * 16 * c) + 2 * g * (9 * c * c) + g * c * cfg.n_embd)
    return (tokens * (2 * trunk + 4 * cfg.n_layer * cfg.n_embd * context) + patches * patch
            + 2 * cfg.n_embd * head_ids)


def first_observation(model: GatoModel) -> TokenSequence:
    """Pong's first observation (seed 0), tokenized as the agent feeds it: ``[patches] <|sep|>``."""
    task = get_task(TASK)
    fields, action = task.fields()
    env = task.make()
    o, _ = env.reset(seed=0)
    env.close()
    agent = Agent(model, fields, action, 1, options=AgentOptions(use_cache=False))
    return agent.observe(as_observation_dict(o, env.observation_space))


class Timed:
    """Adds up the seconds spent in the model's decoding call (``logits``), in the agent's refills (that
    call included) and, if given a module and a name, in that function (``env``: the rollout's stepping
    of all envs)."""

    def __init__(self, agent: Agent, module: object | None = None, name: str = "") -> None:
        self.model_s = self.refill_s = self.env_s = self.reset_s = 0.0
        self._refilling = False
        real_logits, real_refill = agent.model.logits, agent._refill

        def logits(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            t = time.perf_counter()
            out = real_logits(*args, **kwargs)
            if not self._refilling:
                self.model_s += time.perf_counter() - t
            return out

        def refill(rows):  # noqa: ANN001, ANN202
            t, self._refilling = time.perf_counter(), True
            try:
                return real_refill(rows)
            finally:
                self._refilling = False
                self.refill_s += time.perf_counter() - t
        agent.model.logits, agent._refill = logits, refill
        if module is not None:
            real_env = getattr(module, name)

            def env(envs, what, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
                t = time.perf_counter()
                out = real_env(envs, what, *args, **kwargs)
                if what == "reset":
                    self.reset_s += time.perf_counter() - t
                else:
                    self.env_s += time.perf_counter() - t
                return out
            setattr(module, name, env)

    def shares(self, total: float) -> dict:
        """Shares of ``total`` seconds, resets left out (they are reported apart)."""
        total -= self.reset_s
        glue = total - self.model_s - self.refill_s - self.env_s
        return {"model_share": round(self.model_s / total, 3),
                "refill_share": round(self.refill_s / total, 3),
                "env_share": round(self.env_s / total, 3), "glue_share": round(glue / total, 3)}


def bare(size: str, n_envs: int, steps: int) -> dict:
    torch.manual_seed(0)
    task = get_task(TASK)
    fields, action = task.fields()
    model = GatoModel(GatoConfig.from_name(size))
    agent = Agent(model, fields, action, n_envs)
    timed = Timed(agent)
    envs = [task.make() for _ in range(n_envs)]
    obs = {}
    for i, env in enumerate(envs):
        o, _ = env.reset(seed=i)
        obs[i] = as_observation_dict(o, env.observation_space)
        agent.reset(i)
    t_act = 0.0
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
        timed.env_s += time.perf_counter() - t1
        t_act += t1 - t0
        contexts.append(np.mean([agent.engine.pos[i] for i in range(n_envs)]))
    for env in envs:
        env.close()
    total = t_act + timed.env_s
    return {"env_steps_per_s": round(steps * n_envs / total, 1), **timed.shares(total),
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
    timed = Timed(agent, rollout_module, "_call_all")
    try:
        t1 = time.perf_counter()
        results = run_agent(agent, envs, n_envs, seed=0)
        seconds = time.perf_counter() - t1
    finally:
        for env in envs:
            env.close()
    done = sum(r.length for r in results)
    return {"startup_s": round(startup, 2), "reset_s": round(timed.reset_s, 2),
            "env_steps_per_s": round(done / (seconds - timed.reset_s), 1), "env_steps": done,
            "failed": sum(r.error is not None for r in results), **timed.shares(seconds)}


def env_alone(counts: tuple[int, ...] = (1, 4, 8), steps: int = 300) -> dict:
    """Pong stepped with no model, env steps/s: in this process, and as N env processes stepped together
    (``processes_N``)."""
    task = get_task(TASK)
    env = task.make()
    env.reset(seed=0)
    t = time.perf_counter()
    for _ in range(steps):
        env.step(0)
    inproc = steps / (time.perf_counter() - t)
    env.close()
    out = {"in_process": round(inproc, 1)}
    for n in counts:
        envs = [ProcessEnv(task.factory(10 * steps), 60.0, name=f"{TASK}[{k}]") for k in range(n)]
        try:
            rollout_module._call_all(envs, "reset", dict.fromkeys(range(n), 0))
            t = time.perf_counter()
            for _ in range(steps):
                rollout_module._call_all(envs, "step", dict.fromkeys(range(n), 0))
            out[f"processes_{n}"] = round(steps * n / (time.perf_counter() - t), 1)
        finally:
            for e in envs:
                e.close()
    return out


def compiled_step(size: str = "tiny", rows: int = 8, context: int = 300, repeats: int = 30) -> dict:
    """One decode step (a Pong timestep in each of ``rows`` rows after ``context`` tokens), eager against
    ``torch.compile`` of the model's decoding call, ``logits`` (dynamic shapes: the keys grow each step)."""
    import copy
    import logging

    for name in ("torch._dynamo", "torch._inductor", "torch.utils.cpp_extension"):  # graph-break advice
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.manual_seed(0)
    _, action = get_task(TASK).fields()
    eager = GatoModel(GatoConfig.from_name(size)).eval()
    step = first_observation(eager)
    compiled = copy.deepcopy(eager)
    inputs = model_inputs([step] * rows, eager.cfg.special_id("<|pad|>"), torch.device("cpu"))
    n = inputs["tokens"].shape[1]
    lo, hi = legal_range(action, eager.cfg)
    for m in (eager, compiled):
        m.setup_caches(rows)
    forward = torch.compile(compiled.logits, dynamic=True)

    def one(fn, k: int) -> float:
        pos = torch.full((rows, 1), context + (k % 10) * n) + torch.arange(n)
        t = time.perf_counter()
        with torch.no_grad():
            fn(input_pos=pos, cache_rows=slice(0, rows), logits_at=torch.full((rows,), n - 1), ids=(lo, hi),
               **inputs)
        return time.perf_counter() - t
    t = time.perf_counter()
    one(forward, 0)
    one(forward, 1)
    compile_s = time.perf_counter() - t
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for k in range(repeats):  # alternated, so both see the same machine
        times["eager"].append(one(eager.logits, k))
        times["compiled"].append(one(forward, k))
    eager_ms, compiled_ms = (1e3 * float(np.median(times[k])) for k in ("eager", "compiled"))
    return {"size": size, "rows": rows, "compile_s": round(compile_s, 1), "eager_ms": round(eager_ms, 2),
            "compiled_ms": round(compiled_ms, 2), "speedup": round(eager_ms / compiled_ms, 2)}


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
    model = GatoModel(GatoConfig.from_name(size))
    step = first_observation(model)
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
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of a decode step")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    peak = matmul_peak()
    alone = env_alone()
    result: dict = {"task": TASK, "steps": args.steps, "matmul_peak_flops": round(peak), "env_alone": alone,
                    "cases": {}}
    task = get_task(TASK)
    fields, action = task.fields()
    for size, counts in (("tiny", (1, 4, 8)), ("small", (8,))):
        cfg = GatoConfig.from_name(size)
        model = GatoModel(cfg)
        lo, hi = legal_range(action, cfg)
        patches = sum(int(np.prod(image.grid_shape(f.shape, cfg.patch_size))) for f in fields.values()
                      if f.modality == "image")
        for n in counts:
            b = bare(size, n, args.steps)
            e = in_eval_process(size, n, args.steps)
            flops = decode_flops(cfg, model, patches + 2, patches, b["mean_context"], hi - lo)
            floor = peak / flops

            def bound(env_rate: float, floor: float = floor) -> float:  # model at the floor, then the env
                return round(1 / (1 / floor + 1 / env_rate), 1)
            case = {"flops_per_env_step": round(flops), "floor_env_steps_per_s": round(floor, 1),
                    "bare": {**b, "share_of_floor": round(b["env_steps_per_s"] / floor, 3),
                             "bound_env_steps_per_s": bound(alone["in_process"])},
                    "eval": {**e, "share_of_floor": round(e["env_steps_per_s"] / floor, 3),
                             "bound_env_steps_per_s": bound(alone[f"processes_{n}"])}}
            result["cases"][f"{size}_envs{n}"] = case
            print(f"{size}_envs{n}", case, flush=True)
    result["cached_vs_recomputed"] = cached_vs_recomputed()
    if args.compile:
        result["compile"] = compiled_step()
    write("rollout", result, args.out)


if __name__ == "__main__":
    main()
