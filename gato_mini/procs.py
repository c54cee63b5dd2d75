"""Process helpers shared by the commands: workers that die with their parent, whether a process
lives, and the lock one run holds on the folder it writes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
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


def write_atomic(path: str | Path, text: str) -> None:
    """``text`` into ``path``, written beside it then renamed: a reader (or a resumed run) sees the old
    file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


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


def available_memory() -> int:
    """Bytes this machine could still give a process: ``MemAvailable``, else its physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


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


def host() -> str:
    """This machine's name, as locks and temporary folders record it."""
    return socket.gethostname()


#: Locks this process holds, by real path, with how many times each was taken (re-entry).
_HELD: dict[str, int] = {}
#: A holder refreshes its lock file's time this often; another host's lock not refreshed for
#: :data:`STALE_SECONDS` is taken for a dead run's (a network file system may show times a minute late).
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 120.0


class _Held(Exception):
    def __init__(self, owner: dict[str, Any] | None) -> None:
        super().__init__()
        self.owner = owner


def _in_use(folder: Path, path: Path, owner: dict[str, Any] | None, me: dict[str, Any],
            waited: float = 0.0) -> GatoError:
    owner = owner or {}
    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(owner.get("since", 0))) if owner else "?"
    other = owner.get("host", me["host"]) != me["host"]
    hint = (f"; it is taken over once not refreshed for {STALE_SECONDS:.0f} s, or if no run is left there, "
            f"delete {path}") if other else ""
    after = f" (waited {waited:.0f} s)" if waited else ""
    return GatoError(f"{folder} is in use by another gato-mini run ({owner.get('what', '?')}, "
                     f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}, since {since}){after}: wait "
                     f"for it to end or use another folder{hint}")


def _fresh(path: Path) -> bool:
    try:
        return time.time() - os.stat(path).st_mtime < STALE_SECONDS
    except FileNotFoundError:
        return False


def _holder_record(path: Path) -> dict[str, Any] | None:
    """The record of a live holder, read again for a moment while it is being written (empty)."""
    for _ in range(50):
        owner = _read_lock(path)
        if owner or owner is None:
            return owner
        time.sleep(0.01)
    return owner


def _try_acquire(path: Path, me: dict[str, Any]) -> int:
    """An open descriptor of ``path`` holding its ``flock``, or :class:`_Held` naming the holder.

    On one host the ``flock`` decides: the kernel drops it when its process dies, so a killed run's
    lock is free at once, and the inode check follows a releasing run's unlink. Another host's run
    may hold the file without this host seeing its flock (a network file system), so its record
    counts while its holder keeps refreshing the file's time (:data:`HEARTBEAT_SECONDS`); and a
    record written, then read back overwritten, means another host took it in the same instant."""
    for _ in range(20):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _Held(_holder_record(path)) from None
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        st = os.fstat(fd)
        if current is None or (current.st_ino, current.st_dev) != (st.st_ino, st.st_dev):
            os.close(fd)  # released and unlinked meanwhile: lock the new file
            continue
        previous = _read_lock(path)
        if previous and previous.get("host") != me["host"] and _fresh(path):
            os.close(fd)
            raise _Held(previous)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(me).encode())
        os.fsync(fd)  # on a network file system, visible to the other hosts now
        stale_other = previous is not None and previous.get("host", me["host"]) != me["host"]
        if stale_other or _network_fs(path):
            time.sleep(0.2)  # where flock may not cross hosts: make sure no one there took it at once
            now = _read_lock(path)
            if not now or (now.get("host"), now.get("pid")) != (me["host"], me["pid"]):
                os.close(fd)
                raise _Held(now)
        return fd
    raise _Held(_read_lock(path))  # pragma: no cover - released and retaken 20 times in a row


#: File systems whose flock another host may not see (and whose times may lag).
NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "glusterfs", "ceph",
              "fuse.sshfs", "9p", "afs", "panfs", "wekafs")


def _network_fs(path: Path) -> bool:
    """Whether ``path`` lies on a network file system (Linux: the longest mount in /proc/mounts)."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return False
    real = os.path.realpath(path)
    best, kind = "", ""
    for point, fstype in (m for m in mounts if len(m) == 2):
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fstype
    return kind in NETWORK_FS


def _heartbeat(path: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        with contextlib.suppress(OSError):
            os.utime(path)


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str, wait: float = 0.0, every_rank: bool = False
                ) -> Iterator[None]:
    """Hold ``folder`` for this run. Another live run holding it is a one-line :class:`GatoError`
    naming it (what, PID, host, since when), or with ``wait`` > 0 is waited for up to that many
    seconds (the nodes of a distributed run preparing one shared folder). A killed run's lock is
    free (on this host the kernel released its flock; on another, its heartbeat stopped); the same
    process may take it again (the quickstart's steps). Released on exit. In a distributed run only
    global rank 0 locks, unless ``every_rank`` (what each caller does on its own, like ``prepare``
    on each node)."""
    folder = Path(folder)
    if (_is_secondary_rank() and not every_rank) or fcntl is None:  # no flock (Windows): not locked
        yield
        return
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": host(), "what": what, "since": time.time(),
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
    start, told = time.monotonic(), False
    while True:
        try:
            fd = _try_acquire(path, me)
            break
        except _Held as held:
            waited = time.monotonic() - start
            if waited >= wait:
                raise _in_use(folder, path, held.owner, me, waited if wait else 0.0) from None
            if not told:
                o = held.owner or {}
                print(f"waiting for {folder}: another gato-mini run holds it ({o.get('what', '?')}, "
                      f"pid {o.get('pid', '?')} on {o.get('host', '?')})", file=sys.stderr, flush=True)
                told = True
            time.sleep(0.5)
    _HELD[key] = 1
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(path, stop), daemon=True, name="gato-mini-lock")
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        del _HELD[key]
        path.unlink(missing_ok=True)  # still holding the flock: no one else owns this file yet
        os.close(fd)
        if created and folder.is_dir() and not any(folder.iterdir()):  # a failed run leaves no folder
            folder.rmdir()
