"""Writing logged episodes as a Minari dataset: an atomic, resumable streaming writer.

Writing goes through Minari's own ``EpisodeBuffer`` and ``create_dataset_from_buffers`` (hdf5,
``jpeg_encoding=False``: lossless frames; no jax needed). Episodes are appended one at a time, so memory
holds one episode, into a staging folder ``DIR/.staging-*``; only a finished dataset is renamed into
place. An interrupted run (Ctrl-C, a crash, SIGKILL) therefore never leaves a dataset that looks
complete, and the next run clears the leftovers. With ``chunk_steps`` finished episodes are sealed
under ``DIR/.partial-*`` as they come, so the same command after a kill records only the missing ones.
Reading is :mod:`gato_mini.data.minari_io`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from gato_mini.data.minari_io import COLLECTION_FILE, open_dataset
from gato_mini.errors import FileFormatError, GatoError
from gato_mini.procs import LOCK_NAME, folder_lock

STAGING_PREFIX = ".staging-"
PARTIAL_PREFIX = ".partial-"  # a resumable collection's sealed chunks (never read as a dataset)
CHUNK_FILE = "chunk.json"  # a sealed chunk's episodes: seed, steps, return
#: ``collect`` seals finished episodes every this many steps: a kill loses at most about this many.
CHUNK_STEPS = 10_000


@contextlib.contextmanager
def _datasets_root(root: Path) -> Iterator[None]:
    """Point Minari at ``root`` for the duration (it reads MINARI_DATASETS_PATH)."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def _buffer(observations: Any, actions: Any, rewards: Any, terminations: Any, truncations: Any,
            seed: int | None) -> Any:
    from minari.data_collector.episode_buffer import EpisodeBuffer

    return EpisodeBuffer(id=None, seed=seed, observations=observations, actions=actions,
                         rewards=list(map(float, rewards)), terminations=list(map(bool, terminations)),
                         truncations=list(map(bool, truncations)))


class _Build:
    """One Minari dataset being written under a folder Minari is pointed at only while writing."""

    def __init__(self, root: Path, dataset_id: str, observation_space: spaces.Space,
                 action_space: spaces.Space, metadata: dict[str, Any]) -> None:
        self.root, self.dataset_id, self.metadata = root, dataset_id, metadata
        self.spaces = observation_space, action_space
        self._dataset: Any = None
        self.steps = 0

    def add(self, *buffers: Any) -> None:
        """Append episodes (several at once: one opening of the HDF5 file)."""
        import minari

        with _datasets_root(self.root), warnings.catch_warnings():
            # Minari advises a code permalink, an email and an env spec; our
            # metadata names the task, policy, seeds and step cap instead.
            warnings.filterwarnings("ignore", category=UserWarning, module="minari")
            if self._dataset is None:
                self.root.mkdir(parents=True, exist_ok=True)
                self._dataset = minari.create_dataset_from_buffers(
                    self.dataset_id, list(buffers), observation_space=self.spaces[0],
                    action_space=self.spaces[1], data_format="hdf5", jpeg_encoding=False, **self.metadata)
            else:
                self._dataset.storage.update_episodes(list(buffers))
        self.steps += sum(len(b.rewards) for b in buffers)


class DatasetWriter:
    """Write episodes to ``root/<dataset_id>`` atomically (use as a context manager).

    >>> # with DatasetWriter(root, "atari-pong/expert-v0", obs_space, act_space) as w:
    >>> #     w.add(observations, actions, rewards, terminations, truncations, seed=0)

    The dataset appears at ``root/<dataset_id>`` when the block ends normally (or
    at :meth:`commit`); an exception inside the block leaves nothing behind.

    With ``chunk_steps`` (what ``collect`` does) the writing is resumable. Finished episodes are
    sealed in chunks of about that many steps under ``root/.partial-<id>`` (a lock keeps a second
    writer out); a kill loses at most the chunk being filled, and an exception (Ctrl-C) only the
    episode in progress. A writer opened again with the same ``collection`` (everything but its
    ``episodes`` count equal) finds the sealed episodes (:attr:`resumed`, :attr:`done`) and goes on
    after them; at the end the chunks are joined into the one dataset, which alone is ever visible
    at ``root/<dataset_id>``.
    """

    def __init__(self, root: str | Path, dataset_id: str, observation_space: spaces.Space,
                 action_space: spaces.Space, overwrite: bool = False,
                 metadata: dict[str, Any] | None = None, collection: dict[str, Any] | None = None,
                 chunk_steps: int | None = None) -> None:
        self.root = Path(root).resolve()  # Minari mangles relative paths
        self.dataset_id = dataset_id
        self.final = self.root / dataset_id
        self.observation_space, self.action_space = observation_space, action_space
        self.overwrite = overwrite
        self.metadata = metadata or {}
        self.collection = collection
        if chunk_steps is not None and chunk_steps <= 0:
            raise GatoError(f"--chunk-steps must be positive, got {chunk_steps}")
        self.chunk_steps = chunk_steps
        slug = dataset_id.replace("/", "_")
        self.staging = self.root / f"{STAGING_PREFIX}{slug}-{os.getpid()}"
        self.partial = self.root / f"{PARTIAL_PREFIX}{slug}"
        self._build: _Build | None = None
        self._chunk_done: list[dict[str, Any]] = []
        self._stack = contextlib.ExitStack()
        self.episodes = 0
        #: Episodes (seed, steps, return) sealed by an earlier, interrupted writer of this collection.
        self.done: list[dict[str, Any]] = []
        self.committed = False

    @property
    def resumed(self) -> int:
        """How many episodes an earlier, interrupted writer of this collection had sealed."""
        return len(self.done)

    def __enter__(self) -> DatasetWriter:
        if self.final.exists() and not self.overwrite:
            raise GatoError(f"{self.final} already holds a dataset; pass --overwrite to replace it")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for old in self.root.glob(f"{STAGING_PREFIX}{self.dataset_id.replace('/', '_')}-*"):
                shutil.rmtree(old, ignore_errors=True)  # leftovers of an interrupted run
            if self.chunk_steps is None:
                self.staging.mkdir()
        except OSError as exc:
            raise GatoError(f"cannot write to {self.root}: {exc.strerror}") from None
        if self.chunk_steps is not None:
            try:
                self._stack.enter_context(folder_lock(self.partial, "collect"))
                self._open_partial()
            except BaseException:
                self._stack.close()
                raise
        return self

    def _open_partial(self) -> None:
        """Find what an interrupted writer of this collection sealed, or start the partial folder."""
        record = self.partial / COLLECTION_FILE
        chunks = sorted(self.partial.glob("chunk-*"))
        key = {k: v for k, v in (self.collection or {}).items() if k != "episodes"}
        if record.is_file() and not self.overwrite:
            try:
                old = json.loads(record.read_text())
            except (OSError, ValueError):
                old = None
            old_key = {k: v for k, v in old.items() if k != "episodes"} if isinstance(old, dict) else None
            sealed = self._sealed()
            if sealed and old_key != key:
                old_key = old_key or {}
                differ = sorted(k for k in set(key) | set(old_key) if old_key.get(k) != key.get(k))
                raise GatoError(f"{self.partial} holds episodes of an interrupted collection made with other "
                                f"settings ({', '.join(differ) or 'unreadable record'}); rerun that command "
                                f"to finish it, or pass --overwrite to start afresh")
            for c in sealed:
                self.done += _read_chunk(c)
            wanted = (self.collection or {}).get("episodes")
            if isinstance(wanted, int) and len(self.done) > wanted:
                raise GatoError(f"{self.partial} holds {len(self.done)} episodes of an interrupted "
                                f"collection, more than the {wanted} asked for now; ask for at least "
                                f"{len(self.done)}, or pass --overwrite to start afresh")
        for c in chunks:
            if not (c / CHUNK_FILE).is_file() or self.overwrite:  # unsealed: the kill hit while filling it
                shutil.rmtree(c, ignore_errors=True)
        if self.overwrite:
            self.done = []
        record.write_text(json.dumps(self.collection or {}, indent=1))

    def add(self, observations: Any, actions: Any, rewards: Any, terminations: Any, truncations: Any,
            seed: int | None = None) -> None:
        """Append one episode: ``observations`` has one more row than the actions."""
        if len(rewards) == 0:
            raise GatoError("refusing to write an episode of length zero")
        if self._build is None:
            root = self.staging if self.chunk_steps is None else self._chunk_path(".tmp")
            self._build = _Build(root, self.dataset_id, self.observation_space, self.action_space,
                                 self.metadata)
        try:
            self._build.add(_buffer(observations, actions, rewards, terminations, truncations, seed))
        except BaseException:
            if self.chunk_steps is not None:  # a chunk hit mid-episode is not sealed: drop it whole
                shutil.rmtree(self._build.root, ignore_errors=True)
                self._build, self._chunk_done = None, []
            raise
        self.episodes += 1
        if self.chunk_steps is not None:
            self._chunk_done.append({"seed": seed, "steps": len(rewards),
                                     "return": float(np.sum(np.asarray(rewards, dtype=np.float64)))})
            if self._build.steps >= self.chunk_steps:
                self._seal()

    def _sealed(self) -> list[Path]:
        """The sealed chunks, in episode order (a chunk is named by its first episode)."""
        return sorted(c for c in self.partial.glob("chunk-*") if (c / CHUNK_FILE).is_file())

    def _chunk_path(self, suffix: str = "") -> Path:
        return self.partial / f"chunk-{len(self.done):07d}{suffix}"

    def _seal(self) -> None:
        """Make the chunk being filled permanent: a kill from now on cannot lose its episodes."""
        if self._build is None or not self._chunk_done:
            return
        tmp = self._build.root
        (tmp / CHUNK_FILE).write_text(json.dumps({"episodes": self._chunk_done}))
        tmp.rename(self._chunk_path())  # named by its first episode: chunks sort in episode order
        self.done += self._chunk_done
        self._build, self._chunk_done = None, []

    def commit(self) -> Path:
        """Move the finished dataset into place (replacing the old one if overwriting)."""
        if self.chunk_steps is not None:
            self._seal()
            source = self._joined()
        else:
            if self._build is None:
                raise GatoError("no episode was written; nothing to commit")
            source = self.staging
        self.final.parent.mkdir(parents=True, exist_ok=True)
        ns_meta = source / self.dataset_id.split("/")[0] / "namespace_metadata.json"
        if "/" in self.dataset_id and ns_meta.is_file() and not (self.final.parent / ns_meta.name).exists():
            shutil.copy(ns_meta, self.final.parent / ns_meta.name)
        if self.collection is not None:  # how the episodes were made, beside Minari's own metadata
            record = json.dumps(self.collection, indent=1)
            (source / self.dataset_id / COLLECTION_FILE).write_text(record)
        if self.final.exists():  # overwrite: the old dataset is removed with its staging folder
            self.final.rename(source / "replaced")
        (source / self.dataset_id).rename(self.final)
        shutil.rmtree(self.staging if self.chunk_steps is None else source, ignore_errors=True)
        self.committed = True
        return self.final

    def _joined(self) -> Path:
        """The sealed chunks as one dataset (a folder Minari was pointed at): the one chunk itself, or
        their episodes read back in order and written once more."""
        chunks = self._sealed()
        if not chunks:
            raise GatoError("no episode was written; nothing to commit")
        if len(chunks) == 1:
            return chunks[0]
        join = _Build(self.partial / "joined.tmp", self.dataset_id, self.observation_space,
                      self.action_space, self.metadata)
        shutil.rmtree(join.root, ignore_errors=True)
        for chunk in chunks:
            storage = open_dataset(chunk / self.dataset_id).storage
            seeds = [e["seed"] for e in _read_chunk(chunk)]  # Minari's get_episodes does not return them
            n = storage.total_episodes
            if len(seeds) != n:
                raise FileFormatError(f"{chunk} holds {n} episodes but its {CHUNK_FILE} lists {len(seeds)}; "
                                      f"delete {self.partial} to start afresh")
            for lo in range(0, n, 64):  # 64 episodes at a time: one opening of each file, bounded memory
                hi = min(lo + 64, n)
                read = zip(storage.get_episodes(range(lo, hi)), seeds[lo:hi], strict=True)
                join.add(*(_buffer(ep["observations"], ep["actions"], ep["rewards"], ep["terminations"],
                                   ep["truncations"], seed) for ep, seed in read))
        return join.root  # the chunks go once the dataset is in place: a kill here loses nothing

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        """A block that ends normally commits what was written; an exception discards it (a resumable
        writer keeps its finished episodes sealed for the rerun)."""
        try:
            if exc_type is None and not self.committed and (self._build is not None or self.done):
                self.commit()
            elif exc_type is not None and self.chunk_steps is not None:
                self._seal()
        finally:
            if self.chunk_steps is None:
                shutil.rmtree(self.staging, ignore_errors=True)
            else:
                self._close_partial()

    def _close_partial(self) -> None:
        """Drop an unsealed chunk; keep the partial folder only while it holds sealed episodes to
        resume from (not after a commit), then release its lock."""
        if self._build is not None:
            shutil.rmtree(self._build.root, ignore_errors=True)
        keep = not self.committed and bool(self._sealed())
        if not keep:
            for child in self.partial.glob("*"):
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
                elif child.name != LOCK_NAME:
                    child.unlink()
        self._stack.close()
        if not keep:
            with contextlib.suppress(OSError):
                self.partial.rmdir()


def _read_chunk(chunk: Path) -> list[dict[str, Any]]:
    try:
        episodes = json.loads((chunk / CHUNK_FILE).read_text())["episodes"]
        assert isinstance(episodes, list)
        return episodes
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise FileFormatError(f"{chunk / CHUNK_FILE} is corrupt; delete {chunk.parent} to start afresh"
                              ) from None
