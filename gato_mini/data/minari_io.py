"""Logged episodes as Minari datasets: an atomic streaming writer and one reader.

Writing goes through Minari's own ``EpisodeBuffer`` and
``create_dataset_from_buffers`` (hdf5, ``jpeg_encoding=False``: lossless
frames; no jax needed). Episodes are appended one at a time, so memory holds
one episode, into a staging folder ``DIR/.staging-*``; only a finished dataset
is renamed into place. An interrupted run (Ctrl-C, a crash, SIGKILL) therefore
never leaves a dataset that looks complete, and the next run clears the
leftovers.

Reading accepts any local Minari dataset with Box, Discrete, MultiDiscrete,
MultiBinary, Text or Dict spaces, not only ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from gato_mini.errors import FileFormatError, GatoError
from gato_mini.fields import FieldSpec, action_field, as_observation_dict, observation_fields

STAGING_PREFIX = ".staging-"
COLLECTION_FILE = "collection.json"  # gato-mini's record of how a dataset was collected


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


class DatasetWriter:
    """Write episodes to ``root/<dataset_id>`` atomically (use as a context manager).

    >>> # with DatasetWriter(root, "atari-pong/expert-v0", obs_space, act_space) as w:
    >>> #     w.add(observations, actions, rewards, terminations, truncations, seed=0)

    The dataset appears at ``root/<dataset_id>`` when the block ends normally (or
    at :meth:`commit`); an exception inside the block leaves nothing behind.
    """

    def __init__(self, root: str | Path, dataset_id: str, observation_space: spaces.Space,
                 action_space: spaces.Space, overwrite: bool = False,
                 metadata: dict[str, Any] | None = None, collection: dict[str, Any] | None = None) -> None:
        self.root = Path(root).resolve()  # Minari mangles relative paths
        self.dataset_id = dataset_id
        self.final = self.root / dataset_id
        self.observation_space, self.action_space = observation_space, action_space
        self.overwrite = overwrite
        self.metadata = metadata or {}
        self.collection = collection
        self.staging = self.root / f"{STAGING_PREFIX}{dataset_id.replace('/', '_')}-{os.getpid()}"
        self._dataset: Any = None
        self.episodes = 0
        self.committed = False

    def __enter__(self) -> DatasetWriter:
        if self.final.exists() and not self.overwrite:
            raise GatoError(f"{self.final} already holds a dataset; pass --overwrite to replace it")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for old in self.root.glob(f"{STAGING_PREFIX}{self.dataset_id.replace('/', '_')}-*"):
                shutil.rmtree(old, ignore_errors=True)  # leftovers of an interrupted run
            self.staging.mkdir()
        except OSError as exc:
            raise GatoError(f"cannot write to {self.root}: {exc.strerror}") from None
        return self

    def add(self, observations: Any, actions: Any, rewards: Any, terminations: Any, truncations: Any,
            seed: int | None = None) -> None:
        """Append one episode: ``observations`` has one more row than the actions."""
        import minari
        from minari.data_collector.episode_buffer import EpisodeBuffer

        if len(rewards) == 0:
            raise GatoError("refusing to write an episode of length zero")
        buffer = EpisodeBuffer(id=None, seed=seed, observations=observations, actions=actions,
                               rewards=list(map(float, rewards)), terminations=list(map(bool, terminations)),
                               truncations=list(map(bool, truncations)))
        with _datasets_root(self.staging), warnings.catch_warnings():
            # Minari advises a code permalink, an email and an env spec; our
            # metadata names the task, policy, seeds and step cap instead.
            warnings.filterwarnings("ignore", category=UserWarning, module="minari")
            if self._dataset is None:
                self._dataset = minari.create_dataset_from_buffers(
                    self.dataset_id, [buffer], observation_space=self.observation_space,
                    action_space=self.action_space, data_format="hdf5", jpeg_encoding=False,
                    **self.metadata)
            else:
                self._dataset.storage.update_episodes([buffer])
        self.episodes += 1

    def commit(self) -> Path:
        """Move the finished dataset into place (replacing the old one if overwriting)."""
        if self._dataset is None:
            raise GatoError("no episode was written; nothing to commit")
        self.final.parent.mkdir(parents=True, exist_ok=True)
        ns_meta = self.staging / self.dataset_id.split("/")[0] / "namespace_metadata.json"
        if "/" in self.dataset_id and ns_meta.is_file() and not (self.final.parent / ns_meta.name).exists():
            shutil.copy(ns_meta, self.final.parent / ns_meta.name)
        if self.collection is not None:  # how the episodes were made, beside Minari's own metadata
            record = json.dumps(self.collection, indent=1)
            (self.staging / self.dataset_id / COLLECTION_FILE).write_text(record)
        if self.final.exists():  # overwrite: the old dataset is removed with the staging folder
            self.final.rename(self.staging / "replaced")
        (self.staging / self.dataset_id).rename(self.final)
        shutil.rmtree(self.staging, ignore_errors=True)
        self.committed = True
        return self.final

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        """A block that ends normally commits what was written; an exception discards it."""
        try:
            if exc_type is None and self._dataset is not None and not self.committed:
                self.commit()
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)


def read_collection(path: str | Path) -> dict[str, Any] | None:
    """What ``collection.json`` of a dataset says of how it was recorded (policy, seeds, cap, noise);
    None for a dataset recorded elsewhere."""
    f = _data_path(path).parent / COLLECTION_FILE
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FileFormatError(f"{f} is corrupt (not JSON)") from None
    if not isinstance(data, dict):
        raise FileFormatError(f"{f} must hold a JSON object")
    return data


@dataclass
class Episode:
    """One logged episode, ready for tokenization.

    ``observations`` maps each field (sorted keys) to an array with one row per
    step plus the final observation; ``actions`` and ``rewards`` have one row
    per step.
    """

    id: int
    observations: dict[str, Any]
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray

    @property
    def steps(self) -> int:
        return len(self.rewards)

    @property
    def episode_return(self) -> float:
        return float(np.sum(self.rewards))


def minari_root() -> Path:
    """Minari's own local root: ``MINARI_DATASETS_PATH``, else ``~/.minari/datasets``."""
    return Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets").expanduser()


def _data_path(path: str | Path) -> Path:
    """The ``data`` folder of a dataset given as a folder (``~`` expanded) or as a Minari dataset id
    (``namespace/name-v0``) under :func:`minari_root`."""
    p = Path(path).expanduser()
    if (p / "data" / "metadata.json").is_file():
        return p / "data"
    if (p / "metadata.json").is_file():
        return p
    by_id = minari_root() / str(path)
    if not p.is_absolute() and (by_id / "data" / "metadata.json").is_file():
        return by_id / "data"
    if p.exists():
        raise FileFormatError(f"{p} is not a Minari dataset (no data/metadata.json)")
    raise FileFormatError(f"dataset not found: {p}")


def dataset_folder(path: str | Path) -> Path:
    """The folder holding a dataset's files (its ``data`` folder), from a path or a Minari dataset id."""
    return _data_path(path)


def open_dataset(path: str | Path) -> Any:
    """A ``minari.MinariDataset`` from a dataset folder (or a dataset id under MINARI_DATASETS_PATH)."""
    import minari

    data = _data_path(path)
    if not (data / "main_data.hdf5").is_file():
        raise FileFormatError(f"{data} has no main_data.hdf5 (an interrupted write?)")
    try:
        return minari.MinariDataset(str(data))
    except Exception as exc:  # h5py, json and Minari raise many types on a damaged dataset
        raise FileFormatError(f"cannot open the Minari dataset at {data}: {exc}") from None


def dataset_fields(dataset: Any) -> tuple[dict[str, FieldSpec], FieldSpec]:
    """(observation field specs, action field spec); an unsupported space is a clear error."""
    return observation_fields(dataset.observation_space), action_field(dataset.action_space)


def iter_episodes(path: str | Path, dataset: Any = None) -> Iterator[Episode]:
    """Every episode of a local Minari dataset, with observations as dicts of arrays (``dataset``: the one
    :func:`open_dataset` gave for ``path`` already, so it is not opened again)."""
    dataset = open_dataset(path) if dataset is None else dataset
    dataset_fields(dataset)  # refuse unsupported spaces before reading anything
    obs_space = dataset.observation_space
    try:
        episodes = dataset.iterate_episodes()
        for ep in episodes:
            steps = len(ep.rewards)
            if steps == 0:
                raise FileFormatError(f"episode {ep.id} of {path} has zero steps")
            obs = as_observation_dict(ep.observations, obs_space)
            for key, value in obs.items():
                if len(value) != steps + 1:
                    raise FileFormatError(f"episode {ep.id} of {path}: observation '{key}' has "
                                          f"{len(value)} rows for {steps} steps (want steps + 1)")
            yield Episode(int(ep.id), obs, np.asarray(ep.actions), np.asarray(ep.rewards),
                          np.asarray(ep.terminations), np.asarray(ep.truncations))
    except (OSError, KeyError, ValueError) as exc:
        if isinstance(exc, GatoError):
            raise
        raise FileFormatError(f"the Minari dataset at {path} is corrupt or truncated: {exc}") from None
