"""What a SIGKILL costs a training run: steps lost and the time to get going again.

Starts a real ``gato-mini train`` (with the batch audit on), kills it with SIGKILL
after ``--kill-after`` batches, then runs the same command with ``--resume`` and
times it until its first new batch. The baseline in the same run is a fresh
start's time to its first batch, so ``resume_over_fresh`` is a ratio that does not
depend on how busy the machine is. Writes ``benchmarks/results/resume.json``.

    python benchmarks/resume.py --config runs/quickstart/run/config.yaml [--kill-after 150]
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from _common import write  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="a training config (e.g. a quickstart's run/config.yaml)")
    ap.add_argument("--kill-after", type=int, default=150, help="batches begun before the SIGKILL")
    ap.add_argument("--out", help="JSON path (default: benchmarks/results/resume.json)")
    args = ap.parse_args()
    exe = shutil.which("gato-mini") or str(Path(sys.executable).parent / "gato-mini")
    work = Path(tempfile.mkdtemp(prefix="gato-resume-"))
    cmd = [exe, "train", "--config", args.config, "--no-progress", "--train.out", str(work / "run"),
           "--train.record_batches", "true"]
    audit = work / "run" / "audit" / "batches-rank0.txt"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def begun() -> int:
        return len(audit.read_text().split()) if audit.exists() else 0

    def wait_for(n: int, proc: subprocess.Popen) -> None:
        while begun() < n:
            if proc.poll() is not None:
                raise SystemExit(f"training ended (exit {proc.returncode}) before batch {n}")
            time.sleep(0.02)

    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        wait_for(1, proc)
        fresh = time.perf_counter() - t0
        wait_for(args.kill_after, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = begun()
        t1 = time.perf_counter()
        log = work / "resume.log"
        with open(log, "w") as err:
            proc = subprocess.Popen([*cmd, "--resume"], stdout=subprocess.DEVNULL, stderr=err, env=env)
        wait_for(killed + 1, proc)
        resume = time.perf_counter() - t1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        said = [line for line in log.read_text().splitlines() if line.startswith("resuming from ")]
        import torch

        resumed_from = int(torch.load(said[0].removeprefix("resuming from "), weights_only=True,
                                      mmap=True)["global_step"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write("resume", {"config": args.config, "batches_before_kill": killed, "resumed_from_step": resumed_from,
                     "steps_lost": killed - resumed_from, "fresh_start_to_first_batch_s": round(fresh, 2),
                     "resume_to_first_new_batch_s": round(resume, 2),
                     "resume_over_fresh": round(resume / fresh, 3)}, args.out)


if __name__ == "__main__":
    main()
