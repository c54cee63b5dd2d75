"""`Vocab`: which range an id belongs to, and a readable dump of mixed sequences.

>>> from gato_mini.config import GatoConfig
>>> vocab = Vocab(GatoConfig.from_name("tiny"))
>>> [vocab.kind(i) for i in (0, 4096, 5120, 6147)]
['text', 'discrete', 'continuous', 'special']
>>> vocab.describe([4099, 5632, 6147, 4097])
'D3 C512 <|sep|> D1'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gato_mini.config import SPECIAL_TOKENS, GatoConfig
from gato_mini.errors import TokenizationError
from gato_mini.tokenizers.text import TextTokenizer


@dataclass(frozen=True)
class IdRange:
    """A half-open range of ids ``[start, stop)`` with the kind of token it holds."""

    kind: str
    start: int
    stop: int

    def __contains__(self, token_id: int) -> bool:
        return self.start <= token_id < self.stop

    def __len__(self) -> int:
        return self.stop - self.start


class Vocab:
    """The one id space of a config, optionally with the text tokenizer for decoding."""

    def __init__(self, cfg: GatoConfig, text: TextTokenizer | None = None) -> None:
        self.cfg = cfg
        self.text = text
        self.ranges = (
            IdRange("text", 0, cfg.discrete_offset),
            IdRange("discrete", cfg.discrete_offset, cfg.continuous_offset),
            IdRange("continuous", cfg.continuous_offset, cfg.special_offset),
            IdRange("special", cfg.special_offset, cfg.vocab_size),
        )

    def __len__(self) -> int:
        return self.cfg.vocab_size

    def range(self, kind: str) -> IdRange:
        """The range of one kind: ``text``, ``discrete``, ``continuous`` or ``special``."""
        for r in self.ranges:
            if r.kind == kind:
                return r
        raise KeyError(kind)

    def kind(self, token_id: int) -> str:
        """The kind of an id; an id outside the vocabulary is an error."""
        for r in self.ranges:
            if token_id in r:
                return r.kind
        raise TokenizationError(f"id {token_id} is outside the vocabulary [0, {self.cfg.vocab_size})")

    def describe(self, ids: Iterable[int]) -> str:
        """A readable dump: runs of text decoded, ``D<n>``, ``C<bin>``, special names."""
        out: list[str] = []
        text_run: list[int] = []

        def flush() -> None:
            if text_run:
                out.append(repr(self.text.decode(text_run)) if self.text else
                           "T[" + ",".join(map(str, text_run)) + "]")
                text_run.clear()

        for i in (int(x) for x in ids):
            kind = self.kind(i)
            if kind == "text":
                text_run.append(i)
                continue
            flush()
            if kind == "discrete":
                out.append(f"D{i - self.cfg.discrete_offset}")
            elif kind == "continuous":
                out.append(f"C{i - self.cfg.continuous_offset}")
            else:
                out.append(SPECIAL_TOKENS[i - self.cfg.special_offset])
        flush()
        return " ".join(out)
