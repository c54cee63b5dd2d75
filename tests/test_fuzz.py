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

import json
import math
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
            # One image (H, W) or (H, W, C) with C in (1, 3): padded with black, never cropped. Any other
            # last axis is a width: (T, H, W) is T gray frames.
            if x.ndim == 2 or (x.ndim == 3 and x.shape[-1] in (1, 3)):
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


# --- the resource guards (issue 22) ---------------------------------------------------
def _guarded(fn, *args: Any) -> Any:
    """``fn(*args)``, or None when it raises one of our errors (one line); anything else propagates."""
    from gato_mini.errors import GatoError

    try:
        result = fn(*args)
        return True if result is None else result
    except GatoError as exc:
        assert str(exc) and "\n" not in str(exc), "our errors are one line"
        return None


json_texts = st.recursive(st.none() | st.integers() | st.text(max_size=5),
                          lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c,
                                                                              max_size=3),
                          max_leaves=8).map(lambda v: json.dumps(v).encode())
lines = st.lists(mix(json_texts, json_texts, st.binary(max_size=40), st.text(max_size=40).map(str.encode),
                     st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n)), max_size=6)


def test_iter_jsonl_raises_only_our_error(tmp_path) -> None:
    """Any bytes as a JSONL file (not UTF-8, not JSON, nested deeply, past the line limit): rows, or a
    one-line FileFormatError naming FILE:LINE."""
    import gato_mini.data.jsonl as jsonl

    tally, path, old = Tally(), tmp_path / "f.jsonl", jsonl.MAX_LINE_CHARS

    @FUZZ
    @given(lines, st.integers(5, 400))
    def run(rows, limit) -> None:
        path.write_bytes(b"\n".join(rows))
        jsonl.MAX_LINE_CHARS = limit
        try:
            got = tally.add(_guarded(lambda: list(jsonl.iter_jsonl(path))), "read")
        finally:
            jsonl.MAX_LINE_CHARS = old
        if got is not None:
            assert all(where.startswith(f"{path}:") for where, _ in got)

    run()
    tally.check(0.1)


class _Storage:
    def __init__(self, lengths: list[int]) -> None:
        self.lengths = lengths

    def get_episode_metadata(self, ids):
        return [{"id": i, "total_steps": self.lengths[i]} for i in ids]


class _Dataset:
    """What ``Episodes._check_sizes`` reads of a Minari dataset: its spaces and episode lengths."""

    def __init__(self, obs_space, act_space, lengths: list[int]) -> None:
        self.observation_space, self.action_space = obs_space, act_space
        self.episode_indices = np.arange(len(lengths))
        self.storage = _Storage(lengths)


def _space(shape, dtype, kind):
    from gymnasium import spaces

    if kind == "discrete":
        return spaces.Discrete(int(np.prod(shape)) % 2000 + 1)
    if kind == "multi":
        return spaces.MultiDiscrete(np.full(shape or (1,), 3))
    return spaces.Box(0, 255, shape, dtype)


def test_a_dataset_of_any_shape_and_length_is_checked_or_refused_in_one_line() -> None:
    """Spaces of many shapes (frames over the pixel limit, vectors of millions), episodes up to 10^13
    steps: ``Episodes`` checks pass, or refuse in one line of our own; nothing is read or allocated.
    Both outcomes occur."""
    from gymnasium import spaces

    from gato_mini.data.sources import SourceConfig, make_source

    tally = Tally()
    sides = st.one_of(st.integers(1, 12), st.integers(1, 20_000))
    # gymnasium's Box allocates its bounds at full shape, so the spaces here stay under 2M elements and
    # the pixel limit is lowered to match (an absurd frame is refused from its shape alone).
    bounded = st.lists(sides, min_size=0, max_size=3).map(
        lambda sh: tuple(sh) if math.prod(sh) <= 2_000_000 else tuple(min(x, 120) for x in sh))
    fields = st.lists(st.tuples(bounded,
                                st.sampled_from([np.uint8, np.float32, np.int16]),
                                st.sampled_from(["box", "box", "discrete", "multi"])), min_size=1, max_size=3)

    @FUZZ
    @given(fields, st.lists(st.one_of(st.integers(1, 500), st.integers(0, 10**13)), max_size=4),
           st.sampled_from([None, (84, 84), (8, 8)]))
    def run(obs, lengths, size) -> None:
        obs_space = spaces.Dict({f"k{i}": _space(shape, dt, kind) for i, (shape, dt, kind) in enumerate(obs)})
        source = make_source(SourceConfig("fuzz", "episodes", 1.0, {"dataset": "x", "image_size": size,
                                                                    "max_episodes": None}))
        source._dataset = _Dataset(obs_space, spaces.Discrete(3), lengths)
        ok = _guarded(source._check_sizes, CFG)
        tally.add(ok, "passed" if ok else "refused")

    old, image.MAX_IMAGE_PIXELS = image.MAX_IMAGE_PIXELS, 100_000
    try:
        run()
    finally:
        image.MAX_IMAGE_PIXELS = old
    tally.check(0.1, kinds=("passed",))
    assert tally.examples - tally.valid > 0  # some were refused
