"""Shards: tokenized units on disk as memory-mapped numpy arrays, plus an index.

One shard is a folder ``<root>/shards/<source>/<split>/``:

================  ================  ==============================================
file              dtype, shape      what
================  ================  ==============================================
tokens.bin        int32 (L,)        ids of every unit, end to end
targets.bin       uint8 (L,)        1 where the token is a loss target
local_pos.bin     int16 (L,)        local observation position, -1 for none
patches.bin       uint8 (N, PPC)    raw pixels of every patch slot, in order
patch_pos.bin     uint8 (N, 4)      row lo, row hi, col lo, col hi
starts.bin        int64 (S, 2)      window starts: token offset, patches before it
units.bin         int64 (U, 4)      per unit: first token, end token, first start, end start
meta.json                           counts, fingerprint, skips, array dtypes and shapes
================  ================  ==============================================

A shard is written into a hidden temporary folder and renamed into place when
complete, so a crash never leaves a shard that looks finished. Readers open the
arrays lazily (``np.memmap``), once per process, so DataLoader workers share the
page cache instead of copies.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from gato_mini.config import SPECIAL_TOKENS, GatoConfig
from gato_mini.data.sequence import TokenSequence
from gato_mini.errors import FileFormatError
from gato_mini.procs import alive, host

FORMAT = 1
ARRAYS = {"tokens": np.int32, "targets": np.uint8, "local_pos": np.int16, "patches": np.uint8,
          "patch_pos": np.uint8, "starts": np.int64, "units": np.int64}


def _temp_name(prefix: str, path: Path) -> Path:
    """A writer's temporary folder beside ``path``, named by its host and PID."""
    return path.parent / f"{prefix}{path.name}@{host()}-{os.getpid()}"


def _remove_stale(path: Path) -> None:
    """Drop the temporary folders of writers of ``path`` that were killed. ``prepare`` writes only
    while it holds the data folder's lock, so a folder another host left is a dead run's; one from
    this host is when its process is gone (this run's own workers are alive)."""
    if not path.parent.is_dir():
        return
    for prefix in (".tmp-", ".old-"):
        for stale in path.parent.glob(f"{prefix}{path.name}@*"):
            writer, _, pid = stale.name.rpartition("@")[2].rpartition("-")
            mine = writer == host()
            if not pid.isdigit() or not mine or (int(pid) != os.getpid() and not alive(int(pid))):
                shutil.rmtree(stale, ignore_errors=True)
        for stale in path.parent.glob(f"{prefix}{path.name}-*"):  # named by an older version: PID only
            pid = stale.name.rsplit("-", 1)[-1]
            if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)


def layout(cfg: GatoConfig) -> dict[str, Any]:
    """The config values shards depend on (ids, patches, positions): a mismatch means rebuild."""
    keys = ("text_vocab_size", "discrete_bins", "continuous_bins", "mu", "mu_m", "patch_size",
            "image_channels", "position_intervals", "max_local_positions", "special_offset", "obs_layout",
            "vector_width")
    return {k: getattr(cfg, k) for k in keys}


class ShardWriter:
    """Append :class:`TokenSequence` units; :meth:`commit` makes the shard visible."""

    def __init__(self, path: str | Path, cfg: GatoConfig) -> None:
        self.path = Path(path)
        self.cfg = cfg
        self.tmp = _temp_name(".tmp-", self.path)
        _remove_stale(self.path)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self._files = {name: open(self.tmp / f"{name}.bin", "wb") for name in ARRAYS}  # noqa: SIM115
        self.n_tokens = self.n_patches = self.n_starts = self.n_units = self.n_targets = 0
        self.max_step = 0  # longest gap between window starts (an episode's longest timestep)

    def add(self, seq: TokenSequence) -> None:
        """Append one unit."""
        seq.check(self.cfg)
        n = len(seq)
        if n == 0:
            return
        slots = seq.tokens == self.cfg.special_id("<|patch|>")
        patches_before = np.concatenate([[0], np.cumsum(slots)])[seq.starts]
        starts = np.stack([seq.starts + self.n_tokens, patches_before + self.n_patches], axis=1)
        bounds = np.append(seq.starts, n)
        self.max_step = max(self.max_step, int(np.diff(bounds).max()))
        unit = np.array([[self.n_tokens, self.n_tokens + n, self.n_starts, self.n_starts + len(starts)]])
        for name, arr in (("tokens", seq.tokens), ("targets", seq.targets), ("local_pos", seq.local_pos),
                          ("patches", seq.patches), ("patch_pos", seq.patch_pos), ("starts", starts),
                          ("units", unit)):
            self._files[name].write(np.ascontiguousarray(arr, dtype=ARRAYS[name]).tobytes())
        self.n_tokens += n
        self.n_patches += len(seq.patches)
        self.n_starts += len(starts)
        self.n_units += 1
        self.n_targets += int(seq.targets.sum())

    def commit(self, meta: dict[str, Any]) -> Path:
        """Close the files, write ``meta.json`` and rename the shard into place."""
        for f in self._files.values():
            f.close()
        ppc = self.cfg.patch_size ** 2 * self.cfg.image_channels
        shapes = {"tokens": [self.n_tokens], "targets": [self.n_tokens], "local_pos": [self.n_tokens],
                  "patches": [self.n_patches, ppc], "patch_pos": [self.n_patches, 4],
                  "starts": [self.n_starts, 2], "units": [self.n_units, 4]}
        meta = {**meta, "format": FORMAT, "layout": layout(self.cfg),
                "counts": {"units": self.n_units, "tokens": self.n_tokens, "patches": self.n_patches,
                           "targets": self.n_targets, "max_step_tokens": self.max_step},
                "arrays": {k: {"dtype": np.dtype(ARRAYS[k]).name, "shape": shapes[k]} for k in ARRAYS}}
        (self.tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        old = _temp_name(".old-", self.path)
        if self.path.exists():
            self.path.rename(old)
        self.tmp.rename(self.path)
        shutil.rmtree(old, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        """Drop everything written so far."""
        for f in self._files.values():
            f.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if self.tmp.exists():
            self.abort()


def read_meta(path: str | Path) -> dict[str, Any] | None:
    """A shard's meta.json, or None when there is no complete shard."""
    f = Path(path) / "meta.json"
    if not f.is_file():
        return None
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


class Shard:
    """Read access to one shard (arrays memory-mapped on first use in each process)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta = read_meta(self.path)
        if meta is None:
            raise FileFormatError(f"no complete shard at {self.path}; run `gato-mini prepare` first")
        self.meta = meta
        for name, spec in meta["arrays"].items():
            f = self.path / f"{name}.bin"
            want = int(np.prod(spec["shape"], dtype=np.int64)) * np.dtype(spec["dtype"]).itemsize
            if not f.is_file() or f.stat().st_size != want:
                raise FileFormatError(f"shard {self.path}: {f.name} is missing or truncated")
        self._arrays: dict[str, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:  # workers reopen their own memmaps
        return {"path": self.path, "meta": self.meta, "_arrays": {}}

    def array(self, name: str) -> np.ndarray:
        """One array, memory-mapped read-only (zero-size arrays are plain empties)."""
        if name not in self._arrays:
            spec = self.meta["arrays"][name]
            shape, dtype = tuple(spec["shape"]), np.dtype(spec["dtype"])
            if int(np.prod(shape)) == 0:
                self._arrays[name] = np.zeros(shape, dtype)
            else:
                self._arrays[name] = np.memmap(self.path / f"{name}.bin", dtype=dtype, mode="r", shape=shape)
        return self._arrays[name]

    @property
    def n_units(self) -> int:
        return int(self.meta["counts"]["units"])

    @property
    def n_tokens(self) -> int:
        return int(self.meta["counts"]["tokens"])

    def unit(self, i: int) -> TokenSequence:
        """Unit ``i`` as a :class:`TokenSequence` (copied out of the memmaps)."""
        t0, t1, s0, s1 = (int(v) for v in self.array("units")[i])
        starts = self.array("starts")[s0:s1]
        p0 = int(starts[0, 1])
        return self.slice(t0, t1, p0, starts[:, 0] - t0)

    def slice(self, t0: int, t1: int, p0: int, starts: np.ndarray | None = None) -> TokenSequence:
        """Tokens ``[t0, t1)`` whose first patch is patch ``p0``."""
        tokens = np.array(self.array("tokens")[t0:t1])
        patch_id = self.meta["layout"]["special_offset"] + SPECIAL_TOKENS.index("<|patch|>")
        n_p = int((tokens == patch_id).sum())
        return TokenSequence(tokens, np.array(self.array("targets")[t0:t1], dtype=bool),
                             np.array(self.array("local_pos")[t0:t1]),
                             np.array(self.array("patches")[p0:p0 + n_p]),
                             np.array(self.array("patch_pos")[p0:p0 + n_p]),
                             np.asarray(starts if starts is not None else [0], dtype=np.int32))
