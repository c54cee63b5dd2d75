"""One field of one timestep <-> tokens; the order of fields inside a timestep.

DESIGN.md fixes the layout of a timestep::

    [text obs tokens] [image patches, raster order] [discrete/continuous obs values] <|sep|> [action]

with each group in sorted key order and values row-major. This module encodes
and decodes whole columns (every timestep of a field at once), so an episode is
tokenized with a handful of vectorized calls rather than a Python loop per step.

Image patches are kept as raw ``uint8`` pixels here (4x smaller than floats in
shards); :func:`normalize_patches` gives the model's ``[-1, 1] / sqrt(P)`` floats.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gato_mini.config import GatoConfig
from gato_mini.data.fields import FieldSpec
from gato_mini.errors import TokenizationError
from gato_mini.tokenizers import continuous, discrete
from gato_mini.tokenizers.image import patch_intervals, patchify, unpatchify

_GROUP = {"text": 0, "image": 1, "discrete": 2, "continuous": 2}


def field_order(fields: dict[str, FieldSpec]) -> list[str]:
    """Observation keys in stream order: text fields, then images, then values; sorted inside."""
    return sorted(fields, key=lambda k: (_GROUP[fields[k].modality], k))


# --- images ----------------------------------------------------------------
def _channels_uint8(x: np.ndarray, channels: int) -> np.ndarray:
    """``(..., H, W, C)`` uint8 -> ``channels`` channels (gray repeats; RGB -> BT.601 luma)."""
    c = x.shape[-1]
    if c == channels:
        return x
    if channels == 3:
        return np.repeat(x, 3, axis=-1)
    luma = x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]


def _resize_uint8(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    h, w = size
    if tuple(x.shape[-3:-1]) == (h, w):
        return x
    lead, c = x.shape[:-3], x.shape[-1]
    flat = x.reshape(-1, *x.shape[-3:])
    shrink = h <= x.shape[-3] and w <= x.shape[-2]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_NEAREST
    out = np.stack([cv2.resize(f, (w, h), interpolation=interp).reshape(h, w, c) for f in flat])
    return out.reshape(*lead, h, w, c)


def image_grid(shape: tuple[int, ...], cfg: GatoConfig,
               size: tuple[int, int] | None = None) -> tuple[int, int]:
    """(rows, cols) of patches for an image of ``shape`` (H, W[, C]) after resize/padding."""
    h, w = size if size is not None else shape[:2]
    return math.ceil(h / cfg.patch_size), math.ceil(w / cfg.patch_size)


def image_patches(images: Any, cfg: GatoConfig, size: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 images ``(..., H, W[, C])`` -> raw uint8 patches ``(..., N, P*P*image_channels)``.

    Channels are converted to ``cfg.image_channels``, the image is resized to
    ``size`` when given (area when shrinking, nearest when growing), then padded
    with black at the bottom and right to a multiple of the patch size (never
    cropped), and cut into raster-order patches.
    """
    x = np.asarray(images)
    if x.dtype != np.uint8:
        raise TokenizationError(f"image pixels must be uint8, got dtype {x.dtype}")
    if x.ndim < 2:
        raise TokenizationError(f"image must have at least 2 dimensions (H, W), got shape {x.shape}")
    if x.ndim == 2 or x.shape[-1] not in (1, 3):
        x = x[..., None]
    if 0 in x.shape[-3:-1]:
        raise TokenizationError(f"image has zero size: shape {x.shape}")
    x = _channels_uint8(x, cfg.image_channels)
    if size is not None:
        x = _resize_uint8(x, size)
    p = cfg.patch_size
    h, w = x.shape[-3:-1]
    ph, pw = (-h) % p, (-w) % p
    if ph or pw:
        x = np.pad(x, [(0, 0)] * (x.ndim - 3) + [(0, ph), (0, pw), (0, 0)])
    return np.ascontiguousarray(patchify(x, p))


def patch_positions(rows: int, cols: int, cfg: GatoConfig) -> np.ndarray:
    """``(rows*cols, 4)`` uint8: row lo, row hi, col lo, col hi of each raster-order patch."""
    rlo, rhi = patch_intervals(rows, cfg.position_intervals)
    clo, chi = patch_intervals(cols, cfg.position_intervals)
    r, c = np.divmod(np.arange(rows * cols), cols)
    return np.stack([rlo[r], rhi[r], clo[c], chi[c]], axis=1).astype(np.uint8)


def patches_to_image(patches: np.ndarray, rows: int, cols: int, cfg: GatoConfig) -> np.ndarray:
    """Inverse of :func:`image_patches` (before resizing): uint8 ``(rows*P, cols*P, C)``."""
    return unpatchify(np.asarray(patches), rows * cfg.patch_size, cols * cfg.patch_size, cfg.patch_size)


def normalize_patches(patches: Any, cfg: GatoConfig) -> Any:
    """Raw uint8 patches (numpy or torch) -> float32 ``[-1, 1] / sqrt(P)`` (Gato Sec. 2.1)."""
    if isinstance(patches, np.ndarray):
        scale = np.float32(math.sqrt(cfg.patch_size))
        return (patches.astype(np.float32) / np.float32(127.5) - np.float32(1.0)) / scale
    return (patches.float() / 127.5 - 1.0) / math.sqrt(cfg.patch_size)


# --- values ------------------------------------------------------------------
def field_width(spec: FieldSpec, cfg: GatoConfig, size: tuple[int, int] | None = None) -> int:
    """Tokens one timestep of a fixed-width field takes (text fields vary: an error here)."""
    if spec.modality == "image":
        rows, cols = image_grid(spec.shape, cfg, size)
        return rows * cols
    if spec.modality == "text":
        raise TokenizationError("text fields have no fixed width")
    return int(np.prod(spec.shape, dtype=np.int64)) if spec.shape else 1


def encode_values(column: Any, spec: FieldSpec, cfg: GatoConfig, name: str = "field") -> np.ndarray:
    """A discrete or continuous column ``(T, *shape)`` -> ids ``(T, width)`` (int64)."""
    x = np.asarray(column)
    try:
        if x.dtype.kind not in "biuf":
            raise TokenizationError(f"values must be numbers, got dtype {x.dtype}")
        if x.ndim == 0:
            raise TokenizationError("values need one row per step, got a single value")
        t, width = x.shape[0], math.prod(spec.shape)
        if math.prod(x.shape[1:]) != width:
            raise TokenizationError(f"each row must hold {width} value(s) (shape {spec.shape}), "
                                    f"got rows of shape {x.shape[1:]}")
        x = x.reshape(t, width)
        if spec.modality == "continuous":
            ids = continuous.encode(x, cfg, spec.mu_law)
        elif spec.modality == "discrete":
            x = x.astype(np.float64 if x.dtype.kind == "f" else np.int64)  # wide enough for the offset
            ids = discrete.encode(x - spec.offset, cfg)
        else:
            raise TokenizationError(f"{spec.modality} is not a value modality")
    except TokenizationError as exc:
        raise TokenizationError(f"{name}: {exc}") from None
    return np.asarray(ids, dtype=np.int64)


def decode_values(ids: Any, spec: FieldSpec, cfg: GatoConfig) -> np.ndarray:
    """Inverse of :func:`encode_values` for ids ``(..., width)`` -> values ``(..., *shape)``."""
    ids = np.asarray(ids)
    if spec.modality == "continuous":
        out = np.asarray(continuous.decode(ids, cfg, spec.mu_law), dtype=np.float32)
    else:
        out = np.asarray(discrete.decode(ids, cfg)) + spec.offset
    return out.reshape((*ids.shape[:-1], *spec.shape))


def legal_range(spec: FieldSpec, cfg: GatoConfig) -> tuple[int, int]:
    """[lo, hi) ids an action element of this field may take (DESIGN.md: acting)."""
    if spec.modality == "discrete":
        return cfg.discrete_offset, cfg.discrete_offset + max(spec.n, 1)
    return cfg.continuous_offset, cfg.continuous_offset + cfg.continuous_bins
