"""The image codec: exact patch round trips (gray and RGB), raster order, sizes, channels, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gato_mini.config import GatoConfig
from gato_mini.errors import TokenizationError
from gato_mini.model.model import GatoModel
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


@pytest.mark.parametrize("channels", [1, 3])
@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 50), w=st.integers(1, 50), seed=st.integers(0, 2**31 - 1))
def test_encode_then_decode_is_exact_gray_and_rgb(channels, h, w, seed):
    """Patch then unpatch gives the picture back, pixel for pixel, with black padding around it."""
    cfg = GatoConfig.from_name("tiny", image_channels=channels)
    img = np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)
    patches = image.encode(img, cfg)
    rows, cols = image.grid_shape(img.shape, P)
    assert patches.dtype == np.uint8 and patches.shape == (rows * cols, P * P * channels)
    back = image.decode(patches, rows, cols, cfg)
    assert back.shape == (rows * P, cols * P, channels)
    assert np.array_equal(back[:h, :w], img)
    assert not back[h:].any() and not back[:, w:].any()


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


def test_a_gray_frame_stays_one_channel_unless_the_model_asks_for_three():
    gray = np.random.default_rng(0).integers(0, 256, (2, 32, 32), dtype=np.uint8)  # a stack, no channel axis
    one = image.encode(gray, GatoConfig.from_name("tiny", image_channels=1))
    assert one.shape == (2, 4, P * P)
    three = image.encode(gray, CFG)
    assert three.shape == (2, 4, P * P * 3)
    assert np.array_equal(three.reshape(2, 4, P * P, 3)[..., 2], one)  # repeated into each channel


def test_rgb_becomes_luma_for_a_gray_model():
    cfg = GatoConfig.from_name("tiny", image_channels=1)
    img = np.zeros((16, 16, 3), dtype=np.uint8)
    img[..., 1] = 255
    assert np.all(image.encode(img, cfg) == round(0.587 * 255))


def test_resize_shrinks_by_area_and_grows_by_nearest():
    img = np.zeros((4, 4, 1), np.uint8)
    img[:2, :2] = 200
    assert image.resize(img, (2, 2))[..., 0].tolist() == [[200, 0], [0, 0]]
    assert image.resize(img, (8, 8))[:4, :4].min() == 200  # each pixel becomes a 2x2 block
    assert image.encode(np.zeros((50, 70, 3), np.uint8), CFG, size=(64, 80)).shape == (20, P * P * 3)
    assert image.grid_shape((50, 70, 3), P, size=(64, 80)) == (4, 5)


def test_letterbox_keeps_the_aspect_and_pads_with_black():
    img = np.full((10, 40, 3), 255, np.uint8)
    out = image.letterbox(img, (32, 32))
    assert out.shape == (32, 32, 3)
    assert np.all(out[:8] == 255) and not out[8:].any()


def test_the_model_normalizes_the_codecs_pixels_once():
    """uint8 patches go straight to the model; its patch embedding alone scales them (Gato Sec. 2.1)."""
    torch.manual_seed(0)
    model = GatoModel(GatoConfig.from_name("tiny", patch_norm="none")).eval()
    img = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    raw = torch.from_numpy(image.encode(img, CFG))
    pos = torch.from_numpy(image.patch_positions(2, 2, CFG)).long()
    floats = (raw.float() / 127.5 - 1.0) / (P ** 0.5)  # [-1, 1] / sqrt(16)
    with torch.no_grad():
        assert torch.allclose(model.patch_embed(raw, pos), model.patch_embed(floats, pos), atol=1e-5)


@pytest.mark.parametrize(("bad", "message"), [
    (np.zeros((0, 16, 3), np.uint8), "zero size"),
    (np.zeros((16, 0), np.uint8), "zero size"),
    (np.zeros(16, np.uint8), "at least 2 dimensions"),
    (np.full((16, 16), 0.5), "must be uint8"),
    (np.zeros((16, 16), np.int32), "dtype int32"),
    (np.array([["a"]]), "must be uint8"),
])
def test_bad_images_are_refused(bad, message):
    with pytest.raises(TokenizationError, match=message):
        image.encode(bad, CFG)


@pytest.mark.parametrize("n", [1, 5, 6, 127, 128, 200])
def test_patch_intervals_partition_the_span(n):
    lo, hi = image.patch_intervals(n, 128)
    assert lo[0] == 0 and hi[-1] == 128
    assert np.all(hi > lo) and np.all(np.diff(lo) >= 0)
    assert np.all((lo >= 0) & (hi <= 128))
