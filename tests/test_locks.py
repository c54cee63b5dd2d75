"""Runs that collide (issue 22): one run holds the folder it writes; a second live run on it stops in
one line naming the first (what, PID, host); a lock whose process is gone is taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _data import _write_config, _write_dataset  # noqa: E402

from gato_mini.data.datacfg import load_data_config
from gato_mini.data.prepare import check_shards, shard_dir
from gato_mini.errors import GatoError
from gato_mini.procs import LOCK_NAME, alive, folder_lock

HOLD = ("import sys, time\nfrom gato_mini.procs import folder_lock\n"
        "with folder_lock(sys.argv[1], 'prepare'):\n    print('held', flush=True)\n    time.sleep(120)\n")


def _holder(folder: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_live_run_on_the_folder_stops_the_second_and_a_dead_ones_lock_is_taken_over(tmp_path) -> None:
    folder = tmp_path / "data"
    holder = _holder(folder)
    try:
        host = socket.gethostname()
        named = rf"in use by another gato-mini run \(prepare, pid {holder.pid} on {host}, since "
        with pytest.raises(GatoError, match=named + r".*\): wait for it"):
            with folder_lock(folder, "train"):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert (folder / LOCK_NAME).is_file() and not alive(holder.pid)  # killed: its lock stays behind
    with folder_lock(folder, "train"):  # and is taken over
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
        with folder_lock(folder, "prepare"):  # the same process may take it again (quickstart -> train)
            pass
        assert (folder / LOCK_NAME).is_file()
    assert not (folder / LOCK_NAME).exists()


def test_a_lock_from_another_host_is_refused_with_how_to_clear_it(tmp_path) -> None:
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "node-b", "what": "train", "since": 0}))
    with pytest.raises(GatoError, match=rf"pid 1 on node-b.*if no run is left there, delete .*{LOCK_NAME}"):
        with folder_lock(tmp_path, "train"):
            pass


def test_a_torn_lock_counts_as_stale_and_a_failed_run_leaves_no_folder(tmp_path) -> None:
    (tmp_path / LOCK_NAME).write_text("{not json")
    with folder_lock(tmp_path, "prepare"):
        pass
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        with folder_lock(fresh, "train"):
            raise RuntimeError("boom")
    assert not fresh.exists()


def test_prepare_on_a_held_folder_stops_in_one_line_and_two_at_once_leave_whole_shards(tmp_path) -> None:
    """A live run holding the data root: ``prepare`` exits 2 in one line naming it and writes nothing.
    Two prepares started together: whichever order the two cores give them, neither fails with a
    traceback, at most one builds (the other stops in one line, or finds the shards built), and the
    shards are whole."""
    config = _write_config(tmp_path, _write_dataset(tmp_path / "eps"))
    data, cfg = load_data_config(config)
    root = Path(data.root)
    cmd = [sys.executable, "-m", "gato_mini.cli", "prepare", "--config", str(config), "--no-progress"]
    holder = _holder(root)
    try:
        held = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    finally:
        holder.kill()
        holder.wait()
    assert held.returncode == 2, held.stderr
    assert len(held.stderr.strip().splitlines()) == 1
    assert f"in use by another gato-mini run (prepare, pid {holder.pid} on" in held.stderr
    assert sorted(p.name for p in root.iterdir()) == [LOCK_NAME]  # nothing written but the killed lock

    a = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    (_, ea), (_, eb) = a.communicate(timeout=600), b.communicate(timeout=600)
    assert sorted([a.returncode, b.returncode]) in ([0, 0], [0, 2]), (a.returncode, ea, b.returncode, eb)
    for code, err in ((a.returncode, ea), (b.returncode, eb)):
        if code == 2:
            assert len(err.strip().splitlines()) == 1
            assert "in use by another gato-mini run (prepare, pid" in err
    check_shards(data, cfg)  # whole, and for this config
    assert not (root / LOCK_NAME).exists()


def test_the_lock_is_one_holder_under_contention(tmp_path) -> None:
    """Eight processes race for one folder many times over: never two holders at once (each holder
    checks a marker file no one else may have), and the lock is gone after."""
    script = ("import os, sys, time\nfrom gato_mini.errors import GatoError\n"
              "from gato_mini.procs import folder_lock\nfolder = sys.argv[1]\nwins = 0\n"
              "for _ in range(40):\n    try:\n        with folder_lock(folder, 'train'):\n"
              "            m = os.path.join(folder, 'marker')\n"
              "            fd = os.open(m, os.O_CREAT | os.O_EXCL | os.O_WRONLY)\n"
              "            time.sleep(0.002)\n            os.close(fd)\n            os.unlink(m)\n"
              "            wins += 1\n    except GatoError:\n        pass\nprint(wins)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-400:] for o in outs]  # FileExistsError = two held
    assert sum(int(o[0]) for o in outs) > 0
    assert not (tmp_path / LOCK_NAME).exists() and not (tmp_path / "marker").exists()


def test_a_second_collect_of_one_dataset_stops_in_one_line(tmp_path) -> None:
    """A live collect holds its dataset's partial folder: a second one into the same dataset stops in
    one line naming it, before any episode; another dataset in the same folder is free."""
    from gato_mini.collect import Recording, run_episodes

    holder = _holder(tmp_path / ".partial-control-pendulum_expert-v0")
    try:
        with pytest.raises(GatoError, match=rf"in use by another gato-mini run \(prepare, pid {holder.pid}"):
            run_episodes("control-pendulum", Recording("expert", 1, max_steps=5), out=tmp_path,
                         progress=False)
        other = run_episodes("control-pendulum", Recording("random", 1, max_steps=5), out=tmp_path,
                             progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert not (tmp_path / "control-pendulum" / "expert-v0").exists() and other.path.is_dir()


NODE = ("import json, os, socket, sys\nsocket.gethostname = lambda: sys.argv[2]\n"
        "from gato_mini.data.datacfg import load_data_config\nfrom gato_mini.data.prepare import prepare\n"
        "from gato_mini.procs import folder_lock\ndata, cfg = load_data_config(sys.argv[1])\n"
        "def run():\n    r = prepare(data, cfg, progress=False, say=lambda m: None, wait=600)\n"
        "    print(json.dumps({s.name: s.status for s in r.sources}), flush=True)\n"
        "if sys.argv[3] == 'first':\n"
        "    with folder_lock(data.root, 'prepare', every_rank=True):\n"
        "        print('held', flush=True)\n        sys.stdin.readline()\n        run()\n"
        "else:\n    run()\n")


def _node(config: Path, host: str, rank: int, role: str) -> subprocess.Popen:
    env = {**os.environ, "NODE_RANK": str(rank), "WORLD_SIZE": "2"}
    return subprocess.Popen([sys.executable, "-c", NODE, str(config), host, role], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_two_nodes_preparing_one_shared_folder_one_writes_and_the_other_waits(tmp_path) -> None:
    """Two simulated nodes (other host names, node ranks 0 and 1) prepare one data folder: node-b
    waits while node-a holds it, node-a builds every shard, node-b then finds them up to date (one
    writer per shard); a temporary folder another host's killed writer left is removed, a live
    writer's on this host is not."""
    config = _write_config(tmp_path, _write_dataset(tmp_path / "eps"))
    data, cfg = load_data_config(config)
    root = Path(data.root)
    shards = shard_dir(root, "demo", "train").parent
    dead_elsewhere = shards / ".tmp-train@node-c-4242"
    live_here = shards / f".tmp-val@node-a-{os.getpid()}"  # a live process on node-a
    for planted in (dead_elsewhere, live_here):
        planted.mkdir(parents=True)
    a = _node(config, "node-a", 0, "first")
    assert a.stdout.readline().strip() == "held"
    b = _node(config, "node-b", 1, "second")
    line = b.stderr.readline()
    assert line.startswith(f"waiting for {root}: another gato-mini run holds it (prepare, pid {a.pid} on "
                           "node-a)"), line
    assert b.poll() is None  # still waiting
    a.stdin.write("go\n")
    a.stdin.flush()
    (oa, ea), (ob, eb) = a.communicate(timeout=600), b.communicate(timeout=600)
    assert a.returncode == 0 and b.returncode == 0, (ea[-2000:], eb[-2000:])
    built, found = json.loads(oa.strip().splitlines()[-1]), json.loads(ob.strip().splitlines()[-1])
    assert set(built.values()) == {"built"} and set(found.values()) == {"up to date"}
    assert built.keys() == found.keys() and "demo" in built
    check_shards(data, cfg)
    assert not dead_elsewhere.exists() and live_here.exists()
    assert not (root / LOCK_NAME).exists()


def test_another_hosts_lock_counts_while_refreshed_and_is_taken_over_once_stale(tmp_path, monkeypatch
                                                                                 ) -> None:
    """A lock from another host whose holder stopped refreshing it (its node died) is taken over; a
    held lock's time is refreshed while it is held."""
    import gato_mini.procs as procs

    lock = tmp_path / LOCK_NAME
    lock.write_text(json.dumps({"pid": 7, "host": "node-b", "what": "prepare", "since": 0}))
    with pytest.raises(GatoError, match="pid 7 on node-b"):
        with folder_lock(tmp_path, "prepare"):
            pass
    old = time.time() - procs.STALE_SECONDS - 5
    os.utime(lock, (old, old))
    monkeypatch.setattr(procs, "HEARTBEAT_SECONDS", 0.05)
    with folder_lock(tmp_path, "prepare"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        os.utime(lock, (old, old))
        time.sleep(0.3)
        assert time.time() - lock.stat().st_mtime < 5  # the heartbeat refreshed it
    assert not lock.exists()
