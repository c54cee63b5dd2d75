"""Reading logged episodes from Minari datasets, and what ``collection.json`` says of how they were
recorded. Writing is :mod:`gato_mini.data.minari_writer`.

Reading accepts any local Minari dataset with Box, Discrete, MultiDiscrete,
MultiBinary, Text or Dict spaces, not only ours.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gato_mini.errors import FileFormatError, GatoError
from gato_mini.fields import FieldSpec, action_field, as_observation_dict, observation_fields

COLLECTION_FILE = "collection.json"  # gato-mini's record of how a dataset was collected


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
