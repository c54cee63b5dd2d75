"""One module per modality, each a pure encode/decode pair over numpy or torch.

``continuous``, ``discrete`` and ``image`` are modules of functions;
``TextTokenizer`` wraps a byte-level BPE; ``Vocab`` names the id ranges.
"""

from gato_mini.tokenizers import continuous, discrete, image
from gato_mini.tokenizers.text import TextTokenizer
from gato_mini.tokenizers.vocab import IdRange, Vocab

__all__ = ["continuous", "discrete", "image", "TextTokenizer", "Vocab", "IdRange"]
