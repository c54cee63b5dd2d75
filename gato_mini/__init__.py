"""gato-mini: a small, faithful re-creation of DeepMind's Gato (Reed et al. 2022)."""

from gato_mini.config import SPECIAL_TOKENS, GatoConfig

__version__ = "0.1.0"
__all__ = ["GatoConfig", "SPECIAL_TOKENS", "__version__"]
