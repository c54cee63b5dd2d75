"""Process helpers shared by the commands that start worker processes."""

from __future__ import annotations

import signal
import sys


def die_with_parent() -> None:
    """Linux: this (worker) process gets SIGKILL when its parent dies, so a killed command leaves no
    orphan still working (``prepare`` workers, eval env processes). Elsewhere a no-op."""
    import ctypes

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except OSError:
            pass
