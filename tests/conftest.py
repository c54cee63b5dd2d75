"""Shared fixtures: tiny configs and a text tokenizer trained in-process (no network)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from gato_mini.config import GatoConfig
from gato_mini.tokenizers import TextTokenizer

# No per-example deadline: the machine running the tests is often shared and busy, and a slow example
# is not a failing one.
# The same examples on every run (derandomize): CI and a user's `pytest` see what the last run saw.
# GATO_MINI_FUZZ=explore draws new ones (and finds new cases, as it found the (T, H, W) frames case).
settings.register_profile("gato-mini", deadline=None, derandomize=True)
settings.register_profile("explore", deadline=None)
settings.load_profile("explore" if os.environ.get("GATO_MINI_FUZZ") == "explore" else "gato-mini")

CORPUS = [
    "The quick brown fox jumps over the lazy dog.\n",
    "Gato is a generalist agent: one network plays Atari, captions images and chats.\n",
    "def f(x):\n    return x * 2  # tabs\tand  spaces\n",
    "Ünïcödé, 日本語, emoji 🙂 and the NUL \x00 byte.\n",
] * 20


@pytest.fixture(scope="session")
def cfg() -> GatoConfig:
    """The tiny named size."""
    return GatoConfig.from_name("tiny")


@pytest.fixture(scope="session")
def text_tokenizer() -> TextTokenizer:
    """A byte-level BPE trained on a small corpus inside the test."""
    return TextTokenizer.train(CORPUS, vocab_size=400)
