"""Fuzzing: tokenizers and the sequence builder under random shapes, dtypes and values.

Every call either returns a well-formed result (ids in their range, arrays that agree) or raises the
documented `TokenizationError`; any other exception (IndexError, OverflowError, a bare ValueError from
numpy ...) fails the test. Values include NaN, +-inf, huge and tiny numbers, empty and 0-d arrays,
strings, objects and Python lists.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from gato_mini.config import GatoConfig
from gato_mini.data.fields import FieldSpec
from gato_mini.data.sequence import caption_sequence, chat_sequence, document_sequence, episode_sequence
from gato_mini.data.timestep import encode_values, image_patches
from gato_mini.errors import TokenizationError
from gato_mini.tokenizers import continuous, discrete, image

CFG = GatoConfig(name="fuzz", n_layer=1, n_embd=32, n_head=2, block_size=256, text_vocab_size=400)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

NUMERIC = [np.bool_, np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint64, np.float16, np.float32,
           np.float64, np.complex64]
shapes = array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)
numeric_arrays = st.sampled_from(NUMERIC).flatmap(lambda dt: arrays(dt, shapes))  # NaN, inf, extremes
odd_arrays = st.one_of(
    arrays(np.dtype("U3"), array_shapes(max_dims=2, max_side=3)),
    st.lists(st.one_of(st.none(), st.text(max_size=3), st.floats(), st.integers()), max_size=5).map(
        lambda xs: np.array(xs, dtype=object)),
    st.lists(st.floats(), max_size=5),  # a plain Python list
    st.just(np.array(object())),
)
anything = st.one_of(numeric_arrays, odd_arrays)


def documented(fn, *args: Any, **kw: Any) -> Any:
    """``fn(*args)``, or None when it raises the documented error; anything else propagates."""
    try:
        return fn(*args, **kw)
    except TokenizationError as exc:
        assert str(exc), "a TokenizationError must say what is wrong"
        return None


def in_range(ids: np.ndarray, lo: int, hi: int) -> bool:
    return np.issubdtype(ids.dtype, np.integer) and bool(np.all((ids >= lo) & (ids < hi)))


@FUZZ
@given(anything, st.booleans())
def test_continuous_encode(x, mu) -> None:
    ids = documented(continuous.encode, x, CFG, mu)
    if ids is not None:
        assert in_range(np.asarray(ids), CFG.continuous_offset, CFG.continuous_offset + CFG.continuous_bins)
        assert np.shape(ids) == np.shape(x)


@FUZZ
@given(anything)
def test_discrete_encode(x) -> None:
    ids = documented(discrete.encode, x, CFG)
    if ids is not None:
        assert in_range(np.asarray(ids), CFG.discrete_offset, CFG.discrete_offset + CFG.discrete_bins)


@FUZZ
@given(anything, st.booleans())
def test_value_decoders(ids, mu) -> None:
    values = documented(continuous.decode, ids, CFG, mu)
    if values is not None:
        assert np.all(np.isfinite(values))
    values = documented(discrete.decode, ids, CFG)
    if values is not None:
        assert np.all(np.asarray(values) >= 0)


@FUZZ
@given(anything)
def test_image_encode(x) -> None:
    patches = documented(image.encode, x, CFG)
    if patches is not None:
        patches = np.asarray(patches)
        assert patches.ndim >= 2 and patches.shape[-1] == CFG.patch_size ** 2 * CFG.image_channels
        assert np.all(np.isfinite(patches))


@FUZZ
@given(anything)
def test_image_patches_of_uint8_frames(x) -> None:
    p = documented(image_patches, x, CFG)
    if p is not None:
        assert p.dtype == np.uint8 and p.shape[-1] == CFG.patch_size ** 2 * CFG.image_channels


SPECS = st.one_of(
    st.builds(lambda s, mu: FieldSpec("continuous", s, mu_law=mu),
              st.tuples(st.integers(1, 3)), st.booleans()),
    st.builds(lambda s, n, off: FieldSpec("discrete", s, offset=off, n=n),
              st.tuples(st.integers(1, 3)), st.integers(1, 40), st.integers(-3, 3)),
    st.builds(lambda h, w, c: FieldSpec("image", (h, w, c) if c else (h, w)),
              st.integers(1, 40), st.integers(1, 40), st.sampled_from([0, 1, 3])),
    st.just(FieldSpec("text", ())),
)


@FUZZ
@given(st.integers(0, 4), st.dictionaries(st.sampled_from(["a", "b", "c"]), SPECS, max_size=3), SPECS,
       st.data())
def test_episode_sequence(text_tokenizer, steps, fields, action, data) -> None:
    """Observations drawn to match their spec (so that some episodes are valid) or to be anything."""
    def column(spec: FieldSpec) -> Any:
        if spec.modality == "text":
            texts = st.lists(st.text(max_size=8), min_size=steps, max_size=steps)
            return data.draw(st.one_of(texts, anything))
        dtype = np.uint8 if spec.modality == "image" else (
            np.int64 if spec.modality == "discrete" else np.float32)
        fitting = arrays(dtype, (steps, *spec.shape))
        return data.draw(st.one_of(fitting, fitting, anything))

    observations = {k: column(s) for k, s in fields.items()}
    actions = column(action) if action.modality != "text" else data.draw(anything)
    seq = documented(episode_sequence, observations, actions, fields, action, CFG, text_tokenizer)
    if seq is not None:
        seq.check(CFG)
        assert in_range(seq.tokens, 0, CFG.vocab_size) and len(seq.starts) == len(np.asarray(actions))


@FUZZ
@given(anything, st.one_of(st.text(max_size=20), st.integers(), st.none()))
def test_caption_sequence(text_tokenizer, img, caption) -> None:
    seq = documented(caption_sequence, img, caption, CFG, text_tokenizer)
    if seq is not None:
        seq.check(CFG)
        assert in_range(seq.tokens, 0, CFG.vocab_size)


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
json_values = st.recursive(scalars,
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=8)
messages = st.lists(st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant", "robot"]),
                           "content": st.one_of(st.text(max_size=20), json_values)}),
    json_values), max_size=4)


@FUZZ
@given(messages)
def test_chat_sequence(text_tokenizer, msgs) -> None:
    """Any JSON value in a conversation (as a chat JSONL line could hold) is either a chat or refused."""
    seq = documented(chat_sequence, msgs, CFG, text_tokenizer)
    if seq is not None:
        seq.check(CFG)
        assert in_range(seq.tokens, 0, CFG.vocab_size)


@FUZZ
@given(st.one_of(st.text(), json_values))
def test_text_encode_and_document(text_tokenizer, text) -> None:
    seq = documented(document_sequence, text, CFG, text_tokenizer)
    if seq is not None:
        assert in_range(seq.tokens, 0, CFG.vocab_size)
        assert text_tokenizer.decode(seq.tokens[1:-1]) == text


@FUZZ
@given(st.one_of(st.lists(st.integers()), anything))
def test_text_decode(text_tokenizer, ids) -> None:
    out = documented(text_tokenizer.decode, ids)
    assert out is None or isinstance(out, str)


@pytest.mark.parametrize("spec", [FieldSpec("continuous", (2,)), FieldSpec("discrete", (2,), n=4)])
def test_encode_values_names_the_field(spec) -> None:
    with pytest.raises(TokenizationError, match="^action: "):
        bad = np.array([[np.nan, 1.0]]) if spec.modality == "continuous" else np.array([[9, 1]]) + 2**62
        encode_values(bad, spec, CFG, "action")
