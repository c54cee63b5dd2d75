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

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

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
        return {}  # being written, torn or foreign: no owner can be named


def _is_secondary_rank() -> bool:
    """Inside a distributed run, only global rank 0 holds the lock (the others share its folder)."""
    return any(os.environ.get(k, "0") not in ("", "0") for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


#: Locks this process holds, by real path, with how many times each was taken (re-entry).
_HELD: dict[str, int] = {}


def _in_use(folder: Path, path: Path, owner: dict[str, Any] | None, me: dict[str, Any]) -> GatoError:
    owner = owner or {}
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(owner.get("since", 0))) if owner else "?"
    other = owner.get("host", me["host"]) != me["host"]
    hint = f"; if no run is left there, delete {path}" if other else ""
    return GatoError(f"{folder} is in use by another gato-mini run ({owner.get('what', '?')}, "
                     f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}, since {since}): wait for "
                     f"it to end or use another folder{hint}")


def _acquire(folder: Path, path: Path, me: dict[str, Any]) -> int:
    """An open descriptor of ``path`` holding its ``flock``. The kernel drops an flock when its process
    dies, so a killed run's lock is free at once (no PID guessing, no takeover race); the inode check
    makes sure the file locked is still the one at ``path`` (a releasing run unlinks it)."""
    for _ in range(20):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _in_use(folder, path, _read_lock(path), me) from None
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        st = os.fstat(fd)
        if current is None or (current.st_ino, current.st_dev) != (st.st_ino, st.st_dev):
            os.close(fd)  # released and unlinked meanwhile: lock the new file
            continue
        previous = _read_lock(path)
        if previous and previous.get("host") != me["host"]:
            # Another host's run: its flock may not reach this host (a network file system), so its
            # record is believed until someone who knows it is gone deletes the file.
            os.close(fd)
            raise _in_use(folder, path, previous, me)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(me).encode())
        return fd
    raise GatoError(f"{folder}: could not take its lock {path}; try again")  # pragma: no cover


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str) -> Iterator[None]:
    """Hold ``folder`` for this run. Another live run holding it is a one-line :class:`GatoError`
    naming it (what, PID, host, since when); a killed run's lock is free (the kernel released its
    flock); the same process may take it again (the quickstart's steps). Released on exit."""
    folder = Path(folder)
    if _is_secondary_rank() or fcntl is None:  # no flock (Windows): runs are not locked there
        yield
        return
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "what": what, "since": time.time(),
          "command": " ".join(sys.argv)}
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(path)
    if key in _HELD:  # this very process holds it already
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    fd = _acquire(folder, path, me)
    _HELD[key] = 1
    try:
        yield
    finally:
        del _HELD[key]
        path.unlink(missing_ok=True)  # still holding the flock: no one else owns this file yet
        os.close(fd)
        if created and not any(folder.iterdir()):  # a run that failed before writing leaves no folder
            folder.rmdir()
