"""Images: exact patchify/unpatchify, raster order, normalization, layouts, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gato_mini.config import GatoConfig
from gato_mini.errors import TokenizationError
from gato_mini.tokenizers import image

CFG = GatoConfig.from_name("tiny")
P = CFG.patch_size


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.sampled_from([1, 3]), st.integers(0, 2**31 - 1))
def test_patchify_unpatchify_is_exact(rows, cols, channels, seed):
    img = np.random.default_rng(seed).integers(0, 256, (2, rows * P, cols * P, channels), dtype=np.uint8)
    patches = image.patchify(img, P)
    assert patches.shape == (2, rows * cols, P * P * channels)
    assert np.array_equal(image.unpatchify(patches, rows * P, cols * P, P), img)


def test_patches_are_in_raster_order():
    # Give each 16x16 block a constant value equal to its raster index.
    rows, cols = 3, 4
    img = np.kron(np.arange(rows * cols).reshape(rows, cols), np.ones((P, P)))[..., None]
    patches = image.patchify(img, P)
    for k in range(rows * cols):
        assert np.all(patches[k] == k)
    # Inside a patch, pixels are row-major: the first P values are the patch's top row.
    img = np.arange(P * P, dtype=np.float64).reshape(P, P, 1)
    assert np.array_equal(image.patchify(img, P)[0], np.arange(P * P))


def test_normalization_range_and_inverse():
    img = np.array([[0, 255], [128, 64]], dtype=np.uint8)
    patches = image.encode(img, CFG)
    scale = 1 / math.sqrt(P)  # [-1, 1] divided by sqrt(16) = 4
    assert np.isclose(patches.min(), -scale) and np.isclose(patches.max(), scale)
    back = image.decode(patches, CFG, P, P)
    assert np.array_equal(back[:2, :2, 0], img)  # gray repeated to RGB, exact after rounding
    assert np.array_equal(back[:2, :2, 0], back[:2, :2, 2])


def test_uint8_round_trip_through_encode_is_exact():
    img = np.random.default_rng(0).integers(0, 256, (3, 84, 84, 3), dtype=np.uint8)
    patches = image.encode(img, CFG)
    assert patches.shape == (3, 36, P * P * 3) and patches.dtype == np.float32
    back = image.decode(patches, CFG, 96, 96)
    assert np.array_equal(back[:, :84, :84], img)
    assert np.all(back[:, 84:, :] == 0) and np.all(back[:, :, 84:] == 0)  # black padding


def test_chw_and_hwc_and_torch_agree():
    hwc = np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    a = image.encode(hwc, CFG)
    b = image.encode(np.transpose(hwc, (2, 0, 1)), CFG, channels_first=True)
    c = image.encode(torch.from_numpy(hwc), CFG)
    assert np.array_equal(a, b) and torch.allclose(c, torch.from_numpy(a))


def test_float_input_and_resize():
    yy, xx = np.mgrid[0:50, 0:70]
    img = np.stack([yy / 49, xx / 69, (yy + xx) / 118], axis=-1)  # a smooth picture
    patches = image.encode(img, CFG, size=(64, 80))
    assert patches.shape == (4 * 5, P * P * 3)
    assert image.grid_shape(50, 70, P, size=(64, 80)) == (4, 5)
    t = image.encode(torch.from_numpy(img).float(), CFG, size=(64, 80))
    assert t.shape == (20, P * P * 3)
    assert np.abs(t.numpy() - patches).max() < 0.01  # two resamplers, same picture


def test_gray_config_reduces_rgb_to_luma():
    cfg = GatoConfig.from_name("tiny", image_channels=1)
    img = np.zeros((16, 16, 3), dtype=np.uint8)
    img[..., 1] = 255
    patches = image.encode(img, cfg)
    assert patches.shape == (1, 256)
    assert np.allclose(image.denormalize(patches, P), 0.587, atol=1e-6)


@pytest.mark.parametrize(("bad", "kwargs", "message"), [
    (np.zeros((0, 16, 3), np.uint8), {}, "zero size"),
    (np.zeros((16, 0), np.uint8), {}, "zero size"),
    (np.zeros((16, 16, 4), np.uint8), {}, "4 channels"),
    (np.zeros((2, 16, 16), np.uint8), {"channels_first": True}, "2 channels.*CHW"),
    (np.zeros(16, np.uint8), {}, "at least 2 dimensions"),
    (np.full((16, 16), 2.0), {}, "must lie in \\[0, 1\\]"),
    (np.full((16, 16), np.nan), {}, "NaN"),
    (np.zeros((16, 16), np.int32), {}, "dtype int32"),
    (np.array([["a"]]), {}, "numbers"),
])
def test_bad_images_are_refused(bad, kwargs, message):
    with pytest.raises(TokenizationError, match=message):
        image.encode(bad, CFG, **kwargs)


@pytest.mark.parametrize("n", [1, 5, 6, 127, 128, 200])
def test_patch_intervals_partition_the_span(n):
    lo, hi = image.patch_intervals(n, 128)
    assert lo[0] == 0 and hi[-1] == 128
    assert np.all(hi > lo) and np.all(np.diff(lo) >= 0)
    assert np.all((lo >= 0) & (hi <= 128))
