"""What a SIGKILL costs a long ``gato-mini collect``: steps lost and the time to finish.

Runs ``gato-mini collect`` three times on one task, ``--steps`` steps in all (whole episodes of
``--episode-steps``): fresh and uninterrupted (the baseline, same run); then again, killed with
SIGKILL at ``--kill-at`` of the fresh run's time; then the same command once more, which records only
the missing episodes. Reports the steps lost to the kill (the chunk being filled, counted from its
staging file, plus at most the episode in progress), the resumed run's time over the fresh one's, and
whether the resumed dataset equals the uninterrupted one. Writes ``benchmarks/results/collect_resume.json``.

    python benchmarks/collect_resume.py [--task control-pendulum] [--steps 100000] [--kill-at 0.9]
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _common import write  # noqa: E402

from gato_mini.data.minari_io import iter_episodes  # noqa: E402
from gato_mini.data.minari_writer import CHUNK_FILE, CHUNK_STEPS  # noqa: E402


def _command(task: str, episodes: int, episode_steps: int, chunk: int, out: Path) -> list[str]:
    exe = shutil.which("gato-mini") or str(Path(sys.executable).parent / "gato-mini")
    return [exe, "collect", "--task", task, "--episodes", str(episodes), "--max-steps", str(episode_steps),
            "--chunk-steps", str(chunk), "--out", str(out), "--no-progress"]


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def _unsealed_steps(out: Path) -> int:
    """Steps in the chunk the kill hit (its staging HDF5, read with h5py; 0 if unreadable or none)."""
    import h5py

    steps = 0
    for f in out.glob(".partial-*/chunk-*.tmp/**/main_data.hdf5"):
        try:
            with h5py.File(f, "r") as h:
                steps += sum(len(h[k]["rewards"]) for k in h.keys())
        except OSError:
            pass
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="control-pendulum")
    parser.add_argument("--steps", type=int, default=100_000, help="steps in the whole collection")
    parser.add_argument("--episode-steps", type=int, default=200, help="the step cap of each episode")
    parser.add_argument("--chunk-steps", type=int, default=CHUNK_STEPS)
    parser.add_argument("--kill-at", type=float, default=0.9, help="share of the fresh run's time")
    parser.add_argument("--out", help="JSON file (default benchmarks/results/collect_resume.json)")
    args = parser.parse_args()
    episodes = args.steps // args.episode_steps
    with tempfile.TemporaryDirectory() as tmp:
        fresh_dir, killed_dir = Path(tmp) / "fresh", Path(tmp) / "killed"
        fresh = _timed(_command(args.task, episodes, args.episode_steps, args.chunk_steps, fresh_dir))
        cmd = _command(args.task, episodes, args.episode_steps, args.chunk_steps, killed_dir)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(args.kill_at * fresh)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        sealed = sum(e["steps"] for c in killed_dir.glob(".partial-*/chunk-*/")
                     if (c / CHUNK_FILE).is_file()
                     for e in json.loads((c / CHUNK_FILE).read_text())["episodes"])
        unsealed = _unsealed_steps(killed_dir)
        visible = any(killed_dir.glob(f"{args.task}/*/data/main_data.hdf5"))
        resumed = _timed(cmd)
        a, b = (next(d.glob(f"{args.task}/*-v0")) for d in (fresh_dir, killed_dir))
        same = all(np.array_equal(x.actions, y.actions) and np.array_equal(x.rewards, y.rewards)
                   and all(np.array_equal(x.observations[k], y.observations[k]) for k in x.observations)
                   for x, y in zip(iter_episodes(a), iter_episodes(b), strict=True))
    write("collect_resume", {
        "task": args.task, "steps": episodes * args.episode_steps, "episode_steps": args.episode_steps,
        "chunk_steps": args.chunk_steps, "kill_at": args.kill_at,
        "fresh_seconds": round(fresh, 2), "resumed_seconds": round(resumed, 2),
        "resumed_over_fresh": round(resumed / fresh, 3),
        "sealed_at_kill_steps": sealed, "lost_steps": unsealed,
        "lost_steps_bound": f"{unsealed} in the chunk being filled + at most {args.episode_steps} "
                            "of the episode in progress",
        "dataset_visible_after_kill": visible, "resumed_equals_uninterrupted": bool(same)}, args.out)


if __name__ == "__main__":
    main()
