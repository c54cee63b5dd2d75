"""Continuous values: round-trip bounds, id range, per-field mu-law, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from gato_mini.config import GatoConfig
from gato_mini.errors import TokenizationError
from gato_mini.tokenizers import continuous

CFG = GatoConfig.from_name("tiny")
HALF_BIN = 1.0 / CFG.continuous_bins  # bins are 2/1024 wide over [-1, 1]
EPS = 1e-9

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
unit = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)


def in_range(ids) -> bool:
    ids = np.asarray(ids)
    return bool(((ids >= CFG.continuous_offset) & (ids < CFG.special_offset)).all())


@given(arrays(np.float64, array_shapes(max_dims=3, max_side=5), elements=unit))
def test_direct_field_round_trip_within_half_a_bin(x):
    ids = continuous.encode(x, CFG)
    assert ids.shape == x.shape and in_range(ids)
    assert np.all(np.abs(continuous.decode(ids, CFG) - x) <= HALF_BIN + EPS)


@given(finite)
def test_direct_field_clips_outside_unit_interval(v):
    ids = continuous.encode(np.array([v]), CFG)
    assert in_range(ids)
    assert abs(continuous.decode(ids, CFG)[0] - np.clip(v, -1, 1)) <= HALF_BIN + EPS


@given(st.floats(min_value=-256.0, max_value=256.0, allow_nan=False))
def test_mu_law_round_trip_within_documented_bound(v):
    x = np.array([v])
    ids = continuous.encode(x, CFG, mu_law_field=True)
    assert in_range(ids)
    err = abs(continuous.decode(ids, CFG, mu_law_field=True)[0] - v)
    assert err <= continuous.mu_law_error_bound(x, CFG)[0] + EPS


@given(finite.filter(lambda v: abs(v) > 256.0))
def test_mu_law_clips_beyond_m(v):
    ids = continuous.encode(np.array([v]), CFG, mu_law_field=True)
    assert in_range(ids)
    back = continuous.decode(ids, CFG, mu_law_field=True)[0]
    assert abs(back - np.sign(v) * CFG.mu_m) <= continuous.mu_law_error_bound(np.array([256.0]), CFG)[0]


def test_mu_law_bound_is_about_one_percent_relative():
    bound = continuous.mu_law_error_bound(np.array([1.0, 10.0, 256.0]), CFG)
    assert np.all(bound / np.array([1.0, 10.0, 256.0]) < 0.011)


@pytest.mark.parametrize("mu_law_field", [False, True])
def test_edge_values_stay_in_range(mu_law_field):
    edges = np.array([-1e308, -257.0, -256.0, -1.0, -1e-300, 0.0, 1e-300, 1.0, 256.0, 257.0, 1e308,
                      np.finfo(np.float64).tiny])
    ids = continuous.encode(edges, CFG, mu_law_field=mu_law_field)
    assert in_range(ids)
    if mu_law_field:  # -M and +M are the ends of the mu-law range
        assert (ids[2], ids[8]) == (CFG.continuous_offset, CFG.special_offset - 1)
    else:  # -1 and +1 are the ends of the direct range
        assert (ids[3], ids[7]) == (CFG.continuous_offset, CFG.special_offset - 1)


@given(arrays(np.float64, 16, elements=finite), st.booleans())
def test_encoding_is_monotone(x, mu):
    x = np.sort(x)
    assert np.all(np.diff(continuous.encode(x, CFG, mu_law_field=mu)) >= 0)


@given(arrays(np.float32, array_shapes(max_dims=2, max_side=6),
              elements=st.floats(-300, 300, width=32)), st.booleans())
def test_torch_and_numpy_agree(x, mu):
    ids_np = continuous.encode(x.astype(np.float64), CFG, mu_law_field=mu)
    ids_t = continuous.encode(torch.from_numpy(x).double(), CFG, mu_law_field=mu)
    assert isinstance(ids_t, torch.Tensor) and ids_t.dtype == torch.int64
    assert np.array_equal(ids_t.numpy(), ids_np)
    back = continuous.decode(ids_t, CFG, mu_law_field=mu)
    assert np.allclose(back.numpy(), continuous.decode(ids_np, CFG, mu_law_field=mu))


def test_mu_law_is_decided_per_field_not_per_value():
    # A field bounded by [-2, 2] is mu-law encoded as a whole: 0.99 and 1.01 stay neighbours.
    assert continuous.needs_mu_law(-2.0, 2.0) and not continuous.needs_mu_law(-1.0, 1.0)
    assert continuous.needs_mu_law([-1, -np.inf], [1, np.inf])
    ids = continuous.encode(np.array([0.99, 1.01]), CFG, mu_law_field=True)
    assert abs(int(ids[1]) - int(ids[0])) <= 1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused_with_their_index(bad):
    with pytest.raises(TokenizationError, match=r"index \[1\] is not finite"):
        continuous.encode(np.array([0.0, bad]), CFG)
    with pytest.raises(TokenizationError, match="index"):
        continuous.encode(torch.tensor([[0.0, bad]]), CFG, mu_law_field=True)


def test_non_numeric_and_foreign_ids_are_refused():
    with pytest.raises(TokenizationError, match="numbers"):
        continuous.encode(np.array(["a"]), CFG)
    with pytest.raises(TokenizationError, match="not a continuous-value id"):
        continuous.decode(np.array([CFG.continuous_offset - 1]), CFG)
    with pytest.raises(TokenizationError, match="^continuous-value ids must be integers, got dtype float64"):
        continuous.decode(np.array([1.0]), CFG)


def test_mu_law_defaults_are_gatos_constants():
    """Gato Sec. 2.1: mu = 100, M = 256, the config's values; the functions' defaults must agree."""
    x = np.array([-300.0, -5.0, -0.01, 0.0, 0.3, 7.0, 256.0])
    assert (CFG.mu, CFG.mu_m) == (100.0, 256.0)
    assert np.array_equal(continuous.mu_law(x), continuous.mu_law(x, 100.0, 256.0))
    y = continuous.mu_law(np.clip(x, -256, 256))
    assert np.array_equal(continuous.inverse_mu_law(y), continuous.inverse_mu_law(y, 100.0, 256.0))
    assert continuous.mu_law(np.array([256.0]))[0] == pytest.approx(1.0)
