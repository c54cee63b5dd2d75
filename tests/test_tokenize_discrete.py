"""Discrete values: exact round trip and errors naming the value."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis.extra.numpy import array_shapes, arrays
from hypothesis.strategies import integers

from gato_mini.config import GatoConfig
from gato_mini.errors import TokenizationError
from gato_mini.tokenizers import discrete

CFG = GatoConfig.from_name("tiny")


@given(arrays(np.int64, array_shapes(max_dims=3, max_side=5), elements=integers(0, 1023)))
def test_round_trip_is_exact_and_in_range(x):
    ids = discrete.encode(x, CFG)
    assert ids.shape == x.shape
    assert np.all((ids >= CFG.discrete_offset) & (ids < CFG.continuous_offset))
    assert np.array_equal(discrete.decode(ids, CFG), x)
    assert torch.equal(discrete.encode(torch.from_numpy(x), CFG), torch.from_numpy(ids))


def test_accepts_bool_uint8_and_integral_floats():
    assert discrete.encode(np.array([True, False]), CFG).tolist() == [4097, 4096]
    assert discrete.encode(np.array([255], dtype=np.uint8), CFG).tolist() == [4096 + 255]
    assert discrete.encode(np.array([2.0, 7.0]), CFG).tolist() == [4098, 4103]


@pytest.mark.parametrize(("bad", "message"), [
    ([0, 1024], "1024 at index \\[1\\] is outside 0..1023"),
    ([-1], "-1 at index \\[0\\] is outside"),
    ([0.0, 2.5], "2.5 at index \\[1\\] is not an integer"),
    ([np.nan], "nan .* not an integer"),
    (["up"], "must be integers"),
])
def test_bad_values_are_named(bad, message):
    with pytest.raises(TokenizationError, match=message):
        discrete.encode(np.array(bad), CFG)


def test_torch_errors_and_foreign_ids():
    with pytest.raises(TokenizationError, match="outside"):
        discrete.encode(torch.tensor([[3, 5000]]), CFG)
    with pytest.raises(TokenizationError, match="not a discrete-value id"):
        discrete.decode([CFG.continuous_offset], CFG)
    # the message names the id, its index and the range (mutmut: these survived as None)
    with pytest.raises(TokenizationError, match=rf"^id {CFG.continuous_offset} at index \[1\] is not a "
                                                r"discrete-value id"):
        discrete.decode([CFG.discrete_offset, CFG.continuous_offset], CFG)
    with pytest.raises(TokenizationError, match="^discrete-value ids must be integers, got dtype float64"):
        discrete.decode(np.array([1.0]), CFG)
