"""Runs that collide (issue 22): one run holds the folder it writes; a second live run on it stops in
one line naming the first (what, PID, host); a lock whose process is gone is taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from _data import _write_config, _write_dataset  # noqa: E402

from gato_mini.data.datacfg import load_data_config
from gato_mini.data.prepare import check_shards
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


def test_two_concurrent_prepares_on_one_folder(tmp_path) -> None:
    """Started together in two processes: one builds the shards, the other stops in one line (exit 2)
    naming it, and the shards are whole."""
    config = _write_config(tmp_path, _write_dataset(tmp_path / "eps"))
    cmd = [sys.executable, "-m", "gato_mini.cli", "prepare", "--config", str(config), "--no-progress"]
    a = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    (_, ea), (_, eb) = a.communicate(timeout=600), b.communicate(timeout=600)
    codes = sorted([a.returncode, b.returncode])
    assert codes == [0, 2], (a.returncode, ea, b.returncode, eb)
    loser = ea if a.returncode else eb
    assert len(loser.strip().splitlines()) == 1 and "in use by another gato-mini run (prepare, pid" in loser
    data, cfg = load_data_config(config)
    check_shards(data, cfg)  # whole, and for this config
    assert not (Path(data.root) / LOCK_NAME).exists()
