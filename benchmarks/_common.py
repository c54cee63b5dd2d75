"""Helpers shared by the benchmarks: timing and writing JSON results."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def best_rate(fn: Callable[[], Any], units: float, repeats: int = 5, min_time: float = 0.2) -> float:
    """Units per second of ``fn`` (best of ``repeats`` runs, each at least ``min_time`` long)."""
    fn()  # warm up
    best = 0.0
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        best = max(best, n * units / elapsed)
    return best


def machine() -> dict[str, Any]:
    """Where the numbers came from."""
    import numpy
    import torch

    return {"python": platform.python_version(), "numpy": numpy.__version__, "torch": torch.__version__,
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform()}


def write(name: str, result: dict[str, Any], out: str | None = None) -> Path:
    """Write ``benchmarks/results/NAME.json`` (or ``out``) and print it."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "machine": machine(), **result}
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return path


def matmul_peak() -> float:
    """The fp32 ``torch.mm`` rate of 1024x1024 matrices on this machine now (FLOP/s, best of 5)."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best = 0.0
    for _ in range(5):
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < 0.3:
            a @ b
            n += 1
        best = max(best, n * 2 * 1024 ** 3 / (time.perf_counter() - t0))
    return best
