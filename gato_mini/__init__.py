"""gato-mini: a small, faithful re-creation of DeepMind's Gato (Reed et al. 2022).

From Python: ``gato = gato_mini.load("runs/quickstart/run/model")``, then ``gato.evaluate(...)``,
``gato.agent(...)``, ``gato.caption(...)`` and ``gato.chat(...)`` (:mod:`gato_mini.api`).
"""

from typing import Any

from gato_mini.config import SPECIAL_TOKENS, GatoConfig

__version__ = "0.1.0"
__all__ = ["Gato", "GatoConfig", "SPECIAL_TOKENS", "__version__", "load"]


def __getattr__(name: str) -> Any:
    if name in ("load", "Gato"):  # imported on first use: `import gato_mini` stays light
        from gato_mini import api  # lazy: `import gato_mini` must not import torch and the agent

        return getattr(api, name)
    raise AttributeError(f"module 'gato_mini' has no attribute {name!r}")
