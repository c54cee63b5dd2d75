"""Fuzzing: tokenizers and the sequence builder under random shapes, dtypes and values.

Every call either returns a well-formed result (ids in their range, arrays that agree) or raises the
documented `TokenizationError`; any other exception (IndexError, OverflowError, a bare ValueError from
numpy ...) fails the test. Values include NaN, +-inf, huge and tiny numbers, empty and 0-d arrays,
strings, objects and Python lists.

The strategies mix such junk with inputs drawn to be valid, and each test counts its valid results
(:class:`Tally`): at least a quarter of the examples must be valid, so the checks on a result really
run, and the episode fuzz must produce valid episodes with image, discrete, continuous and text fields.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from gato_mini.config import GatoConfig
from gato_mini.data.sequence import caption_sequence, chat_sequence, document_sequence, episode_sequence
from gato_mini.data.timestep import encode_values
from gato_mini.errors import TokenizationError
from gato_mini.fields import FieldSpec
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


class Tally:
    """Valid results out of the examples a property test ran, and the kinds seen among the valid ones."""

    def __init__(self) -> None:
        self.examples, self.valid, self.kinds = 0, 0, Counter()

    def add(self, result: Any, *kinds: str) -> Any:
        self.examples += 1
        if result is not None:
            self.valid += 1
            self.kinds.update(kinds)
        return result

    def check(self, min_share: float = 0.25, kinds: tuple[str, ...] = ()) -> None:
        if os.environ.get("GATO_FUZZ_SHARES"):  # tests/test_fuzz.py's shares, for the record
            with open(os.environ["GATO_FUZZ_SHARES"], "a") as f:
                name = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
                f.write(f"{name} {self.valid}/{self.examples} {dict(self.kinds)}\n")
        assert self.examples >= 50, self.examples
        assert self.valid >= min_share * self.examples, (self.valid, self.examples)
        missing = [k for k in kinds if not self.kinds[k]]
        assert not missing, (missing, self.kinds)


def mix(*strategies: st.SearchStrategy) -> st.SearchStrategy:
    """One of ``strategies``, each equally likely (``st.one_of`` flattens nested ``one_of``s, so junk
    made of several alternatives would otherwise crowd out the valid ones)."""
    return st.integers(0, len(strategies) - 1).flatmap(lambda k: strategies[k])


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


def _ids(lo: int, n: int) -> st.SearchStrategy:
    """Arrays of real ids of one range (any shape, 0-d included)."""
    shape = array_shapes(min_dims=0, max_dims=3, max_side=4)
    return arrays(np.int64, shape, elements=st.integers(lo, lo + n - 1))


def test_value_decoders() -> None:
    """Each example decodes real continuous ids, real discrete ids (both must decode and encode back)
    and junk (decoded or refused)."""
    tallies = {"continuous": Tally(), "discrete": Tally()}

    def decode_continuous(ids, mu):
        values = tallies["continuous"].add(documented(continuous.decode, ids, CFG, mu))
        if values is not None:
            assert np.all(np.isfinite(values)) and np.all(np.abs(values) <= (CFG.mu_m if mu else 1.0))
            assert np.shape(values) == np.shape(ids)
            again = continuous.encode(values, CFG, mu)  # a bin centre encodes back to its own id
            assert np.array_equal(np.asarray(again), np.asarray(ids))
        return values

    def decode_discrete(ids):
        values = tallies["discrete"].add(documented(discrete.decode, ids, CFG))
        if values is not None:
            assert np.all(np.asarray(values) >= 0)
            assert np.array_equal(np.asarray(discrete.encode(values, CFG)), np.asarray(ids))
        return values

    @FUZZ
    @given(_ids(CFG.continuous_offset, CFG.continuous_bins), _ids(CFG.discrete_offset, CFG.discrete_bins),
           anything, st.booleans())
    def run(cont, disc, junk, mu) -> None:
        assert decode_continuous(cont, mu) is not None
        assert decode_discrete(disc) is not None
        decode_continuous(junk, mu)
        decode_discrete(junk)

    run()
    for t in tallies.values():
        t.check()


IMAGE_SHAPES = st.tuples(st.integers(1, 40), st.integers(1, 40), st.sampled_from([(), (1,), (3,)])).map(
    lambda t: (t[0], t[1], *t[2]))
uint8_images = IMAGE_SHAPES.flatmap(lambda shape: arrays(np.uint8, shape))
unit_images = IMAGE_SHAPES.flatmap(
    lambda shape: arrays(np.float32, shape, elements=st.floats(0, 1, width=32)))


def _grid(shape: tuple[int, ...]) -> int:
    """Patches of one image of ``shape`` (H, W[, C]) padded to the patch grid."""
    p = CFG.patch_size
    return -(-shape[0] // p) * -(-shape[1] // p)


def test_image_codec() -> None:
    """The one image codec: any uint8 picture is patched with black padding and nothing lost;
    floats and junk are refused with our error."""
    tally = Tally()

    def patches(x):
        p = tally.add(documented(image.encode, x, CFG))
        if p is not None:
            assert p.dtype == np.uint8 and p.shape[-1] == CFG.patch_size ** 2 * CFG.image_channels
            if x.ndim in (2, 3):  # one image: padded with black, never cropped
                assert p.shape[0] == _grid(x.shape)
                c = 1 if x.ndim == 2 else x.shape[-1]
                if c == CFG.image_channels or c == 1:  # kept, or gray repeated into each channel
                    total = int(x.sum(dtype=np.int64)) * (CFG.image_channels // c)
                    assert int(p.sum(dtype=np.int64)) == total
        return p

    @FUZZ
    @given(uint8_images, unit_images, anything)
    def run(x, floats, junk) -> None:
        assert patches(x) is not None
        assert patches(floats) is None  # pixels are uint8; floats are refused, in one line
        patches(junk)

    run()
    tally.check()


VALUE_SPECS = st.one_of(
    st.builds(lambda s, mu: FieldSpec("continuous", s, mu_law=mu),
              st.tuples(st.integers(1, 3)), st.booleans()),
    st.builds(lambda s, n, off: FieldSpec("discrete", s, offset=off, n=n),
              st.tuples(st.integers(1, 3)), st.integers(1, 40), st.integers(-3, 3)),
)
SPECS = st.one_of(
    VALUE_SPECS,
    st.builds(lambda h, w, c: FieldSpec("image", (h, w, c) if c else (h, w)),
              st.integers(1, 40), st.integers(1, 40), st.sampled_from([0, 1, 3])),
    st.just(FieldSpec("text", ())),
)


def test_episode_sequence(text_tokenizer) -> None:
    """Each example builds one episode drawn to match its specs (it must be valid) and one whose
    columns may be anything, of any specs (an image or text action, no steps: refused)."""
    tally = Tally()

    field_sets = st.dictionaries(st.sampled_from(["a", "b", "c"]), SPECS, max_size=3)

    @FUZZ
    @given(st.integers(1, 4), field_sets, VALUE_SPECS, st.integers(0, 4), field_sets, SPECS, st.data())
    def run(steps, fields, action, junk_steps, junk_fields, junk_action, data) -> None:
        episode(steps, fields, action, data, True)  # drawn to fit: must be valid
        episode(junk_steps, junk_fields, junk_action, data, False)

    def episode(steps, fields, action, data, fit) -> None:
        def column(spec: FieldSpec) -> Any:
            if spec.modality == "text":
                texts = st.lists(st.text(max_size=8), min_size=steps, max_size=steps)
                return data.draw(texts if fit else st.one_of(texts, anything))
            if spec.modality == "image":
                fitting = arrays(np.uint8, (steps, *spec.shape))
            elif spec.modality == "discrete":
                fitting = arrays(np.int64, (steps, *spec.shape),
                                 elements=st.integers(spec.offset, spec.offset + spec.n - 1))
            else:
                fitting = arrays(np.float32, (steps, *spec.shape), elements=st.floats(-1e3, 1e3, width=32))
            return data.draw(fitting if fit else st.one_of(fitting, anything))

        observations = {k: column(s) for k, s in fields.items()}
        actions = column(action) if action.modality != "text" else data.draw(anything)
        kinds = [f.modality for f in fields.values()] + [f"action:{action.modality}"]
        seq = tally.add(documented(episode_sequence, observations, actions, fields, action, CFG,
                                   text_tokenizer), *kinds)
        if fit:
            assert seq is not None, (steps, fields, action)
        if seq is not None:
            seq.check(CFG)
            assert in_range(seq.tokens, 0, CFG.vocab_size) and len(seq.starts) == len(np.asarray(actions))
            t, n_act = len(seq.starts), int(np.prod(action.shape))
            assert t == steps or not fit
            assert int(seq.targets.sum()) == n_act * t  # exactly the action tokens carry loss
            sep = CFG.special_id("<|sep|>")
            assert int((seq.tokens == sep).sum()) == t
            n_patches = sum(_grid(f.shape) for f in fields.values() if f.modality == "image")
            assert len(seq.patches) == n_patches * t

    run()
    tally.check(0.25, kinds=("image", "discrete", "continuous", "text", "action:discrete",
                             "action:continuous"))


def test_caption_sequence(text_tokenizer) -> None:
    tally = Tally()
    captions = st.one_of(st.text(max_size=20), st.integers(), st.none())

    def build(img, caption):
        seq = tally.add(documented(caption_sequence, img, caption, CFG, text_tokenizer))
        if seq is not None:
            seq.check(CFG)
            assert in_range(seq.tokens, 0, CFG.vocab_size)
            assert len(seq.patches) == _grid(img.shape)
            text = seq.tokens[seq.targets]  # the caption and its <|eos|> are the targets
            assert text[-1] == CFG.special_id("<|eos|>")
            assert text_tokenizer.decode(text[:-1]) == caption
        return seq

    @FUZZ
    @given(uint8_images, st.text(max_size=20), anything, captions)
    def run(img, caption, junk_img, junk_caption) -> None:
        assert build(img, caption) is not None
        build(junk_img, junk_caption)

    run()
    tally.check()


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
