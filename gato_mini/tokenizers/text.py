"""Text: byte-level BPE trained locally with HF ``tokenizers``.

Byte-level BPE maps every Unicode string to bytes first, so any string
round-trips exactly (whitespace, newlines, emoji, NUL). Text ids are
``[0, text_vocab_size)``. The special tokens of :data:`SPECIAL_TOKENS` are
stored in ``tokenizer.json`` too, but they live in the special id range of the
one id space (``special_offset + k``), never among text ids; :meth:`encode`
treats their spelling in user text as plain text, so a user cannot inject a
role or separator token by typing ``<|user|>``.

>>> tok = TextTokenizer.train(["hello world"] * 10, vocab_size=300)
>>> tok.decode(tok.encode("hello, wörld\\n"))
'hello, wörld\\n'
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from gato_mini.config import SPECIAL_TOKENS, GatoConfig
from gato_mini.errors import FileFormatError, TokenizationError
from gato_mini.tokenizers._backend import as_array, as_ids, is_torch

# The 256 byte symbols every byte-level BPE starts from.
_BYTE_ALPHABET_SIZE = 256


class TextTokenizer:
    """A byte-level BPE tokenizer speaking gato-mini's id space."""

    def __init__(self, tokenizer: Tokenizer, text_vocab_size: int | None = None) -> None:
        self._tok = tokenizer
        # Special token contents in tokenizer.json -> their index in SPECIAL_TOKENS.
        self._hf_special = {}
        for k, name in enumerate(SPECIAL_TOKENS):
            hf_id = tokenizer.token_to_id(name)
            if hf_id is None:
                raise FileFormatError(f"tokenizer lacks the special token {name}")
            self._hf_special[hf_id] = k
        self.n_text = min(self._hf_special)  # text ids are exactly [0, n_text)
        if text_vocab_size is not None and self.n_text > text_vocab_size:
            raise FileFormatError(
                f"tokenizer has {self.n_text} text tokens but the config allows "
                f"text_vocab_size={text_vocab_size}; retrain it or raise text_vocab_size"
            )
        self._tok.encode_special_tokens = True  # special spellings in text are text

    # --- training and files -------------------------------------------------
    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> TextTokenizer:
        """Train byte-level BPE with at most ``vocab_size`` text tokens (no network)."""
        if vocab_size < _BYTE_ALPHABET_SIZE:
            raise TokenizationError(
                f"text vocab_size must be at least {_BYTE_ALPHABET_SIZE} (one per byte), got {vocab_size}"
            )
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer=trainer)
        tok.add_special_tokens(list(SPECIAL_TOKENS))
        return cls(tok)

    def save(self, path: str | Path) -> None:
        """Write ``tokenizer.json`` (write then rename, so a crash leaves no half file)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        self._tok.save(str(tmp))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path, cfg: GatoConfig | None = None) -> TextTokenizer:
        """Read a ``tokenizer.json``; a missing or corrupt file is a :class:`FileFormatError`."""
        path = Path(path)
        if not path.is_file():
            raise FileFormatError(f"tokenizer file not found: {path}")
        try:
            json.loads(path.read_text(encoding="utf-8"))
            tok = Tokenizer.from_file(str(path))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FileFormatError(f"tokenizer file {path} is not valid JSON: {exc}") from None
        except Exception as exc:  # tokenizers raises a bare Exception on bad content
            raise FileFormatError(f"tokenizer file {path} is corrupt: {exc}") from None
        return cls(tok, cfg.text_vocab_size if cfg is not None else None)

    # --- encoding -----------------------------------------------------------
    def encode(self, text: str) -> np.ndarray:
        """A string -> text ids (int64) in ``[0, n_text)``."""
        if not isinstance(text, str):
            raise TokenizationError(f"text must be a str, got {type(text).__name__}")
        return np.asarray(self._tok.encode(text, add_special_tokens=False).ids, dtype=np.int64)

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Many strings at once (parallel inside ``tokenizers``)."""
        for t in texts:
            if not isinstance(t, str):
                raise TokenizationError(f"text must be a str, got {type(t).__name__}")
        encs = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encs]

    def decode(self, ids: Iterable[int]) -> str:
        """Text ids -> the exact string. Ids outside ``[0, n_text)`` are an error."""
        if not isinstance(ids, (np.ndarray, str, bytes)) and not is_torch(ids):
            try:
                ids = list(ids)
            except TypeError:
                raise TokenizationError(f"text ids must be a sequence of integers, got "
                                        f"{type(ids).__name__}") from None
        arr = as_array(ids)
        if arr.ndim != 1:
            raise TokenizationError(f"text ids must be a 1-D sequence, got shape {tuple(arr.shape)}")
        if arr.shape[0] == 0:
            return ""
        ids = as_ids(arr, "text").tolist()
        bad = [i for i in ids if not 0 <= i < self.n_text]
        if bad:
            raise TokenizationError(f"id {bad[0]} is not a text id [0, {self.n_text})")
        return self._tok.decode(ids, skip_special_tokens=False)

    def byte_lengths(self) -> np.ndarray:
        """(n_text,) the UTF-8 bytes each text id stands for: byte-level BPE spells every byte as one
        character of the token's string, so this is that string's length."""
        return np.array([len(self._tok.id_to_token(i)) for i in range(self.n_text)], dtype=np.int64)

    def token_str(self, token_id: int) -> str:
        """The readable text of one text id (bytes shown as they decode)."""
        return self.decode([token_id])
