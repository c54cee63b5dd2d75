"""Acting: the batched `Agent`, demonstration prompts, and evaluation with normalized scores."""

from gato_mini.agent.agent import Agent

__all__ = ["Agent"]
