"""Collection speed and dataset size per task.

For each task: expert episodes recorded to a Minari dataset (steps per second,
one process, progress bar off) and the bytes on disk per step; the baseline in
the same run is the bare env driven by the random policy with nothing
recorded, so ``expert_over_bare_env`` is the cost of the expert plus writing.

    python benchmarks/collect.py [--steps 2000] [--task NAME ...] [--out FILE]
"""

from __future__ import annotations

import os
import sys

# benchmarks/tokenize.py would shadow the standard library's tokenize: keep this
# folder at the end of sys.path, not the front.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from _common import write  # noqa: E402

from gato_mini.collect import Recording, run_episodes  # noqa: E402
from gato_mini.envs.registry import TASKS, get_task  # noqa: E402


def folder_bytes(path: Path) -> int:
    """Total size of the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def bench_task(name: str, steps: int) -> dict:
    """Record about ``steps`` expert steps and time a bare random run of the same length."""
    task = get_task(name)
    cap = min(task.max_steps, steps)
    episodes = max(1, steps // cap)
    with tempfile.TemporaryDirectory() as tmp:
        rec = run_episodes(name, Recording("expert", episodes, seed=0, max_steps=cap), out=tmp,
                           progress=False)
        size = folder_bytes(rec.path)
    bare = run_episodes(name, Recording("random", episodes, seed=0, max_steps=cap), progress=False)
    rec_rate, bare_rate = rec.steps / rec.seconds, bare.steps / bare.seconds
    return {"episodes": episodes, "step_cap": cap, "expert_steps": rec.steps,
            "expert_record_steps_per_s": round(rec_rate, 1),
            "bare_random_steps_per_s": round(bare_rate, 1),
            "bare_over_expert_record_ratio": round(bare_rate / rec_rate, 2),
            "dataset_bytes_per_step": round(size / rec.steps, 1), "dataset_bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="expert steps per task (about)")
    parser.add_argument("--task", action="append", help="tasks to measure (default: all)")
    parser.add_argument("--out", help="JSON file (default benchmarks/results/collect.json)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = {}
    for name in args.task or list(TASKS):
        results[name] = bench_task(name, args.steps)
        print(name, results[name], flush=True)
    write("collect", {"steps_per_task": args.steps, "tasks": results}, args.out)


if __name__ == "__main__":
    main()
