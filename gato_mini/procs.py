"""Process helpers shared by the commands: workers that die with their parent, whether a process
lives, and the lock one run holds on the folder it writes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gato_mini.errors import GatoError

#: The lock file a run keeps in the folder it writes (``train.out``, a data root, a quickstart folder).
LOCK_NAME = ".gato-mini.lock"


def die_with_parent() -> None:
    """Linux: this (worker) process gets SIGKILL when its parent dies, so a killed command leaves no
    orphan still working (``prepare`` workers, eval env processes). Elsewhere a no-op."""
    import ctypes

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except OSError:
            pass


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs on this host. A zombie does not: a killed writer whose parent
    died too stays one until init reaps it, and a container's init may never do so."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:  # no /proc (not Linux), or the process ended meanwhile
        return not Path("/proc").is_dir()


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        owner = json.loads(path.read_text())
        return owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # torn or foreign: no owner can be named, so it counts as stale


def _is_secondary_rank() -> bool:
    """Inside a distributed run, only global rank 0 holds the lock (the others share its folder)."""
    return any(os.environ.get(k, "0") not in ("", "0") for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[None]:
    """Hold ``folder`` for this run. Another live run holding it is a one-line :class:`GatoError`
    naming it (what, PID, host, since when); a lock whose process is gone (on this host) is taken
    over; the same process may take it again (the quickstart's steps). Released on exit."""
    folder = Path(folder)
    if _is_secondary_rank():
        yield
        return
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "what": what, "since": time.time(),
          "command": " ".join(sys.argv)}
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _read_lock(path)
            if owner is None:
                continue  # released meanwhile
            if owner.get("host") == me["host"] and owner.get("pid") == me["pid"]:
                yield  # this very process holds it already
                return
            if owner and (owner.get("host") != me["host"] or alive(owner["pid"])):
                since = time.strftime("%Y-%m-%d %H:%M", time.localtime(owner.get("since", 0)))
                other = owner.get("host") != me["host"]
                hint = f"; if no run is left there, delete {path}" if other else ""
                raise GatoError(f"{folder} is in use by another gato-mini run ({owner.get('what', '?')}, "
                                f"pid {owner['pid']} on {owner.get('host', '?')}, since {since}): wait for "
                                f"it to end or use another folder{hint}") from None
            path.unlink(missing_ok=True)  # its process is gone: take it over
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    else:  # pragma: no cover - three races lost in a row
        raise GatoError(f"{folder}: could not take its lock {path}; try again")
    try:
        yield
    finally:
        owner = _read_lock(path)
        if owner and owner.get("pid") == me["pid"] and owner.get("host") == me["host"]:
            path.unlink(missing_ok=True)
        if created and not any(folder.iterdir()):  # a run that failed before writing leaves no folder
            folder.rmdir()
