"""Text: exact Unicode round trip, special tokens kept apart, files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gato_mini.config import SPECIAL_TOKENS, GatoConfig
from gato_mini.errors import FileFormatError, TokenizationError
from gato_mini.tokenizers import TextTokenizer, Vocab


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_round_trip_is_exact_on_any_unicode(text_tokenizer, s):
    ids = text_tokenizer.encode(s)
    assert ids.dtype == np.int64
    assert np.all((ids >= 0) & (ids < text_tokenizer.n_text))
    assert text_tokenizer.decode(ids) == s


@pytest.mark.parametrize("s", ["", " ", "  leading and trailing  ", "\n\n\r\n\t", "a\u00a0b", "🙂👍🏽",
                               "日本語のテキスト", "\x00\x01\x7f", "é vs e\u0301"])
def test_round_trip_edge_strings(text_tokenizer, s):
    assert text_tokenizer.decode(text_tokenizer.encode(s)) == s


def test_bpe_learned_merges(text_tokenizer):
    # A trained BPE compresses its own corpus well below one token per byte.
    s = "The quick brown fox jumps over the lazy dog.\n"
    assert len(text_tokenizer.encode(s)) < len(s.encode()) / 2
    assert 256 < text_tokenizer.n_text <= 400


def test_special_spellings_in_text_stay_text(text_tokenizer):
    for name in SPECIAL_TOKENS:
        ids = text_tokenizer.encode(f"say {name} now")
        assert np.all(ids < text_tokenizer.n_text)  # never a special id
        assert text_tokenizer.decode(ids) == f"say {name} now"


def test_save_load_round_trip(text_tokenizer, tmp_path, cfg):
    path = tmp_path / "tokenizer.json"
    text_tokenizer.save(path)
    loaded = TextTokenizer.load(path, cfg)
    s = "Gato plays Atari 🙂\n"
    assert np.array_equal(loaded.encode(s), text_tokenizer.encode(s))
    assert loaded.n_text == text_tokenizer.n_text
    assert '"<|sep|>"' in path.read_text()  # the special tokens live in the file too
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_corrupt_and_too_large_tokenizer_files(text_tokenizer, tmp_path):
    with pytest.raises(FileFormatError, match="not found"):
        TextTokenizer.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": ')
    with pytest.raises(FileFormatError, match="not valid JSON"):
        TextTokenizer.load(bad)
    bad.write_text('{"model": {"type": "Nonsense"}}')
    with pytest.raises(FileFormatError, match="corrupt"):
        TextTokenizer.load(bad)
    path = tmp_path / "tokenizer.json"
    text_tokenizer.save(path)
    with pytest.raises(FileFormatError, match="text_vocab_size=300"):
        TextTokenizer.load(path, GatoConfig.from_name("tiny", text_vocab_size=300))


def test_bad_arguments(text_tokenizer):
    with pytest.raises(TokenizationError, match="must be a str"):
        text_tokenizer.encode(b"bytes")
    with pytest.raises(TokenizationError, match="not a text id"):
        text_tokenizer.decode([text_tokenizer.n_text])
    with pytest.raises(TokenizationError, match="at least 256"):
        TextTokenizer.train(["abc"], vocab_size=100)


def test_batch_encoding_matches_single(text_tokenizer):
    texts = ["one", "two three", ""]
    for a, b in zip(text_tokenizer.encode_batch(texts), texts, strict=True):
        assert np.array_equal(a, text_tokenizer.encode(b))


def test_vocab_describes_mixed_sequences(text_tokenizer, cfg):
    vocab = Vocab(cfg, text_tokenizer)
    ids = list(text_tokenizer.encode("hi")) + [cfg.discrete_offset + 3, cfg.continuous_offset + 512,
                                              cfg.special_id("<|sep|>")]
    assert vocab.describe(ids) == "'hi' D3 C512 <|sep|>"
    assert [vocab.kind(i) for i in (0, cfg.discrete_offset, cfg.continuous_offset, cfg.vocab_size - 1)] == [
        "text", "discrete", "continuous", "special"]
    with pytest.raises(TokenizationError, match="outside the vocabulary"):
        vocab.kind(cfg.vocab_size)
