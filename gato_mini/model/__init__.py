"""The model: `GatoModel` (plain PyTorch), decoding helpers, export and loading."""

from gato_mini.model.model import GatoModel

__all__ = ["GatoModel"]
