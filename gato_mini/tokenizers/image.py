"""Images <-> patches: the one image codec (Gato Sec. 2.1).

Every image gato-mini tokenizes goes through this module: env frames (when
episodes become shards and when the agent acts), caption images (files,
generated scenes, digits), the caption command, the tokenize benchmark and the
fuzz tests. It works on ``uint8`` pixels and stays ``uint8``: patches are
stored raw in shards (4x smaller than floats), and the model's patch embedding
alone scales them to ``[-1, 1] / sqrt(P)`` on its own device
(:class:`gato_mini.model.model.PatchEmbedding`). An env's own frame
preprocessing (gray, 80x80) belongs to its wrapper stack, not here.

Layout: ``(..., H, W, C)`` with ``C`` 1 (gray) or 3 (RGB); a 2-D array is one
gray image, and an array whose last axis is neither 1 nor 3 reads as gray
images without a channel axis. A gray image stays one channel unless the model
asks for three (``cfg.image_channels``), and RGB becomes BT.601 luma for a
one-channel model.

Size policy: with a target ``size=(H, W)`` the image is resized to it (area
when shrinking, nearest when growing); it is then padded with black at the
bottom and right up to the next multiple of the patch size, so no pixel is
ever cropped. :func:`letterbox` fits a picture of any aspect inside a size
first (caption files).

>>> import numpy as np
>>> from gato_mini.config import GatoConfig
>>> cfg = GatoConfig.from_name("tiny")
>>> frame = np.zeros((84, 84, 3), dtype=np.uint8)
>>> patches = encode(frame, cfg)
>>> patches.shape, patches.dtype   # 84 is padded to 96: 6 x 6 patches of 16*16*3 pixels
((36, 768), dtype('uint8'))
>>> decode(patches, 6, 6, cfg).shape
(96, 96, 3)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from einops import rearrange

from gato_mini.config import GatoConfig
from gato_mini.errors import TokenizationError

#: BT.601 luma weights, RGB -> gray.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


#: The most pixels one image may hold (an image file, a dataset's frames): an image file's header is
#: read first, so a file claiming billions of pixels (a decompression bomb) is refused before anything
#: is decoded. 8192 x 8192, under the 89M at which Pillow itself starts to warn.
MAX_IMAGE_PIXELS = 1 << 26


def as_pixels(image: Any) -> np.ndarray:
    """Check an image (or a stack) and return it as uint8 ``(..., H, W, C)``, C in (1, 3).

    Raises :class:`TokenizationError` for a dtype other than uint8, fewer than
    two dimensions, or a zero height or width.
    """
    x = np.asarray(image)
    if x.dtype != np.uint8:
        raise TokenizationError(f"image pixels must be uint8 (0..255), got dtype {x.dtype}")
    if x.ndim < 2:
        raise TokenizationError(f"image must have at least 2 dimensions (H, W), got shape {x.shape}")
    if x.ndim == 2 or x.shape[-1] not in (1, 3):
        x = x[..., None]
    if 0 in x.shape[-3:-1]:
        raise TokenizationError(f"image has zero size: shape {np.asarray(image).shape}")
    return x


def convert_channels(x: np.ndarray, channels: int) -> np.ndarray:
    """uint8 ``(..., H, W, C)`` -> ``channels`` channels: gray repeats, RGB -> luma."""
    c = x.shape[-1]
    if c == channels:
        return x
    if channels == 3:
        return np.repeat(x, 3, axis=-1)
    return np.clip(np.rint(x.astype(np.float32) @ LUMA), 0, 255).astype(np.uint8)[..., None]


def resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``(..., H, W, C)`` -> ``(..., *size, C)``: area when shrinking, nearest when growing."""
    import cv2  # heavy; only images that change size need it

    h, w = size
    if h <= 0 or w <= 0:
        raise TokenizationError(f"resize target must be positive, got {size}")
    if tuple(x.shape[-3:-1]) == (h, w):
        return x
    lead, c = x.shape[:-3], x.shape[-1]
    shrink = h <= x.shape[-3] and w <= x.shape[-2]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_NEAREST
    out = np.stack([cv2.resize(f, (w, h), interpolation=interp).reshape(h, w, c)
                    for f in x.reshape(-1, *x.shape[-3:])])
    return out.reshape(*lead, h, w, c)


def letterbox(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One uint8 ``(H, W, C)`` picture fitted inside ``size``: aspect kept, black bottom/right."""
    h, w = size
    scale = min(h / x.shape[0], w / x.shape[1])
    fitted = resize(x, (min(h, max(1, round(x.shape[0] * scale))), min(w, max(1, round(x.shape[1] * scale)))))
    out = np.zeros((h, w, x.shape[-1]), np.uint8)
    out[:fitted.shape[0], :fitted.shape[1]] = fitted
    return out


def pad_to_multiple(x: np.ndarray, patch_size: int) -> np.ndarray:
    """Pad ``(..., H, W, C)`` with black at the bottom and right to multiples of ``patch_size``."""
    h, w = x.shape[-3:-1]
    ph, pw = (-h) % patch_size, (-w) % patch_size
    if not (ph or pw):
        return x
    return np.pad(x, [(0, 0)] * (x.ndim - 3) + [(0, ph), (0, pw), (0, 0)])


def patchify(x: np.ndarray, patch_size: int) -> np.ndarray:
    """``(..., H, W, C)`` -> ``(..., n_patches, P*P*C)``, patches in raster order."""
    return rearrange(x, "... (h p1) (w p2) c -> ... (h w) (p1 p2 c)", p1=patch_size, p2=patch_size)


def unpatchify(patches: np.ndarray, height: int, width: int, patch_size: int) -> np.ndarray:
    """Inverse of :func:`patchify` for an image of (padded) size ``height x width``."""
    return rearrange(patches, "... (h w) (p1 p2 c) -> ... (h p1) (w p2) c",
                     h=height // patch_size, p1=patch_size, p2=patch_size)


def grid_shape(shape: tuple[int, ...], patch_size: int,
               size: tuple[int, int] | None = None) -> tuple[int, int]:
    """(rows, cols) of patches :func:`encode` makes from an image of ``shape`` (H, W[, C])."""
    h, w = size if size is not None else shape[:2]
    return math.ceil(h / patch_size), math.ceil(w / patch_size)


def encode(images: Any, cfg: GatoConfig, size: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 images ``(..., H, W[, C])`` -> uint8 patches ``(..., N, P*P*cfg.image_channels)``.

    Channels become ``cfg.image_channels``, the image is resized to ``size``
    when given, padded to the patch grid and cut into raster-order patches.
    """
    x = convert_channels(as_pixels(images), cfg.image_channels)
    if size is not None:
        x = resize(x, size)
    return np.ascontiguousarray(patchify(pad_to_multiple(x, cfg.patch_size), cfg.patch_size))


def decode(patches: Any, rows: int, cols: int, cfg: GatoConfig) -> np.ndarray:
    """Inverse of :func:`encode` (before any resize): uint8 ``(..., rows*P, cols*P, C)``."""
    p = cfg.patch_size
    return unpatchify(np.asarray(patches), rows * p, cols * p, p)


def patch_intervals(n: int, intervals: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Quantized position interval ``[lo, hi)`` of each of ``n`` patch rows (or columns).

    Gato Sec. 2.2: a patch's normalized span ``[i/n, (i+1)/n]`` is quantized to
    ``intervals`` bins; training samples a random index in ``[lo, hi)``,
    evaluation uses the middle. ``hi > lo`` always.
    """
    if n <= 0:
        raise TokenizationError(f"number of patches must be positive, got {n}")
    i = np.arange(n)
    lo = np.floor(i * intervals / n).astype(np.int64)
    hi = np.maximum(np.ceil((i + 1) * intervals / n).astype(np.int64), lo + 1)
    return lo, np.minimum(hi, intervals)


def patch_positions(rows: int, cols: int, cfg: GatoConfig) -> np.ndarray:
    """``(rows*cols, 4)`` uint8: row lo, row hi, col lo, col hi of each raster-order patch."""
    rlo, rhi = patch_intervals(rows, cfg.position_intervals)
    clo, chi = patch_intervals(cols, cfg.position_intervals)
    r, c = np.divmod(np.arange(rows * cols), cols)
    return np.stack([rlo[r], rhi[r], clo[c], chi[c]], axis=1).astype(np.uint8)
