"""Acting: the batched `Agent`, demonstration prompts, and evaluation with normalized scores.

`Agent` is imported on first use, not with the package: an environment's own process imports
:mod:`gato_mini.agent.procenv` and must start without torch (seconds per process).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Agent"]


def __getattr__(name: str) -> Any:
    if name == "Agent":
        from gato_mini.agent.agent import Agent  # lazy: env processes import agent.procenv without torch

        return Agent
    raise AttributeError(f"module 'gato_mini.agent' has no attribute {name!r}")
