"""The built-in tasks by name, and where their recordings live.

This is the part of the task registry that ``data/`` needs: a source named like
a built-in task reads that task's episodes, ``<episodes>/<task>/expert-v0``.
It sits below both ``data/`` and ``envs/``; the registry
(:mod:`gato_mini.envs.registry`) builds one env stack for each name here and
refuses to load if the two differ, so they cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

#: Every registered task, in the registry's order.
BUILTIN_TASKS: tuple[str, ...] = (
    "atari-pong", "atari-breakout", "atari-freeway",
    "control-pendulum", "mujoco-reacher", "mujoco-invertedpendulum", "mujoco-halfcheetah",
    "caption-shapes", "caption-digits",
)

#: The folder name of a task's default recording, below ``<episodes>/<task>/``.
DEFAULT_DATASET = "expert-v0"


def task_dataset(episodes: str | Path, task: str) -> Path:
    """Where ``collect --task TASK`` records by default, and where training and eval look for it."""
    return Path(episodes) / task / DEFAULT_DATASET
