"""Images: fit to the patch grid, normalize, cut into 16x16 patches in raster order.

Gato Sec. 2.1: images become non-overlapping 16x16 patches in raster order;
pixels are scaled to [-1, 1] and divided by sqrt(patch size) (= 4).

Input layout is stated, never guessed: HWC by default, CHW with
``channels_first=True``; any leading batch dimensions are kept. A 2-D array is
one grayscale image. uint8 images are read as 0..255; float images must already
be in [0, 1]. Channels must be 1 (gray) or 3 (RGB); :func:`encode` converts to
the model's ``image_channels`` (gray is repeated, RGB is reduced to luma).

Size policy (:func:`fit`): if a target ``size=(H, W)`` is given the image is
resized to it (area interpolation, as Atari preprocessing does); the result is
then padded at the bottom and right with black up to the next multiple of the
patch size, so no pixel is ever cropped. Tasks choose their size once, and the
same size serves collection, training and evaluation.

>>> import numpy as np
>>> from gato_mini.config import GatoConfig
>>> cfg = GatoConfig.from_name("tiny")
>>> frame = np.zeros((84, 84, 3), dtype=np.uint8)
>>> patches = encode(frame, cfg)
>>> patches.shape   # 84 is padded to 96: 6 x 6 patches of 16*16*3 pixels
(36, 768)
>>> float(patches.min()) == -0.25
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from einops import rearrange

from gato_mini.config import GatoConfig
from gato_mini.errors import TokenizationError
from gato_mini.tokenizers._backend import Array, as_array, is_torch, torch_module, xp


def to_hwc(image: Any, channels_first: bool = False) -> Array:
    """Check an image (or batch) and return it as ``(..., H, W, C)``.

    A 2-D input is one grayscale image. Raises :class:`TokenizationError` for
    zero size, a non-numeric dtype or a channel count other than 1 or 3.
    """
    x = as_array(image)
    if not is_torch(x) and x.dtype.kind not in "buif":
        raise TokenizationError(f"image must hold numbers, got dtype {x.dtype}")
    if x.ndim < 2:
        raise TokenizationError(f"image must have at least 2 dimensions (H, W), got shape {tuple(x.shape)}")
    if x.ndim == 2:
        x = x[..., None]
    elif channels_first:
        x = rearrange(x, "... c h w -> ... h w c")
    h, w, c = x.shape[-3:]
    if h == 0 or w == 0:
        raise TokenizationError(f"image has zero size: shape {tuple(x.shape)}")
    if c not in (1, 3):
        layout = "CHW" if channels_first else "HWC"
        raise TokenizationError(
            f"image has {c} channels (read as {layout}, shape {tuple(as_array(image).shape)}); "
            "only 1 (gray) or 3 (RGB) are supported; a batch of gray images needs a "
            "channel axis, (N, H, W, 1)"
        )
    return x


def to_unit_float(x: Array) -> Array:
    """uint8 0..255 -> float32 0..1; float input must already lie in [0, 1]."""
    lib = xp(x)
    if is_torch(x):
        torch = torch_module()
        if x.dtype == torch.uint8:
            return x.to(torch.float32) / 255.0
        if x.dtype == torch.bool or not x.dtype.is_floating_point:
            raise TokenizationError(f"image dtype {x.dtype} is not supported; use uint8 or float")
        x = x.to(torch.float32)
    else:
        if x.dtype == np.uint8:
            return x.astype(np.float32) / np.float32(255.0)
        if x.dtype.kind != "f":
            raise TokenizationError(f"image dtype {x.dtype} is not supported; use uint8 or float")
        x = x.astype(np.float32)
    if x.numel() if is_torch(x) else x.size:
        if not bool(lib.isfinite(x).all()):
            raise TokenizationError("image holds NaN or inf")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise TokenizationError(
                f"float image values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]; "
                "pass uint8 for 0..255 pixels"
            )
    return x


def convert_channels(x: Array, channels: int) -> Array:
    """``(..., H, W, C)`` float -> ``channels`` (1 or 3): gray repeats, RGB -> luma (BT.601)."""
    c = x.shape[-1]
    if c == channels:
        return x
    if channels == 3:
        return x.repeat(*([1] * (x.ndim - 1)), 3) if is_torch(x) else np.repeat(x, 3, axis=-1)
    weights = [0.299, 0.587, 0.114]
    if is_torch(x):
        w = torch_module().tensor(weights, dtype=x.dtype, device=x.device)
        return (x * w).sum(-1, keepdim=True)
    return (x * np.asarray(weights, dtype=x.dtype)).sum(-1, keepdims=True)


def resize(x: Array, size: tuple[int, int]) -> Array:
    """Resize float ``(..., H, W, C)`` images to ``size = (H, W)`` (area interpolation)."""
    h, w = size
    if h <= 0 or w <= 0:
        raise TokenizationError(f"resize target must be positive, got {size}")
    if tuple(x.shape[-3:-1]) == (h, w):
        return x
    if is_torch(x):
        lead = x.shape[:-3]
        y = rearrange(x.reshape(-1, *x.shape[-3:]), "b h w c -> b c h w")
        mode = "area" if h <= y.shape[-2] else "bilinear"
        y = torch_module().nn.functional.interpolate(y, size=(h, w), mode=mode)
        return rearrange(y, "b c h w -> b h w c").reshape(*lead, h, w, x.shape[-1])
    import cv2

    flat = x.reshape(-1, *x.shape[-3:])
    out = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA).reshape(h, w, -1)
                    for im in flat])
    return out.reshape(*x.shape[:-3], h, w, x.shape[-1])


def pad_to_multiple(x: Array, patch_size: int) -> Array:
    """Pad ``(..., H, W, C)`` at the bottom/right with zeros to multiples of ``patch_size``."""
    h, w = x.shape[-3:-1]
    ph, pw = (-h) % patch_size, (-w) % patch_size
    if not (ph or pw):
        return x
    if is_torch(x):
        return torch_module().nn.functional.pad(x, (0, 0, 0, pw, 0, ph))
    pad = [(0, 0)] * (x.ndim - 3) + [(0, ph), (0, pw), (0, 0)]
    return np.pad(x, pad)


def fit(x: Array, patch_size: int, size: tuple[int, int] | None = None) -> Array:
    """Resize to ``size`` if given, then pad to a multiple of the patch size."""
    if size is not None:
        x = resize(x, size)
    return pad_to_multiple(x, patch_size)


def patchify(x: Array, patch_size: int) -> Array:
    """``(..., H, W, C)`` -> ``(..., n_patches, P*P*C)``, patches in raster order."""
    return rearrange(x, "... (h p1) (w p2) c -> ... (h w) (p1 p2 c)", p1=patch_size, p2=patch_size)


def unpatchify(patches: Array, height: int, width: int, patch_size: int) -> Array:
    """Inverse of :func:`patchify` for an image of (padded) size ``height x width``."""
    return rearrange(patches, "... (h w) (p1 p2 c) -> ... (h p1) (w p2) c",
                     h=height // patch_size, p1=patch_size, p2=patch_size)


def grid_shape(height: int, width: int, patch_size: int,
               size: tuple[int, int] | None = None) -> tuple[int, int]:
    """(rows, cols) of patches that :func:`encode` makes from an image of this size."""
    if size is not None:
        height, width = size
    return math.ceil(height / patch_size), math.ceil(width / patch_size)


def normalize(x: Array, patch_size: int) -> Array:
    """Unit floats [0, 1] -> [-1, 1] / sqrt(patch_size)."""
    return (x * 2.0 - 1.0) / math.sqrt(patch_size)


def denormalize(x: Array, patch_size: int) -> Array:
    """Inverse of :func:`normalize`, back to [0, 1]."""
    return (x * math.sqrt(patch_size) + 1.0) / 2.0


def encode(image: Any, cfg: GatoConfig, channels_first: bool = False,
           size: tuple[int, int] | None = None) -> Array:
    """Image(s) -> normalized patches ``(..., n_patches, P*P*image_channels)`` (float32)."""
    x = to_unit_float(to_hwc(image, channels_first))
    x = convert_channels(x, cfg.image_channels)
    x = fit(x, cfg.patch_size, size)
    return patchify(normalize(x, cfg.patch_size), cfg.patch_size)


def decode(patches: Any, cfg: GatoConfig, height: int, width: int) -> np.ndarray:
    """Patches -> uint8 ``(..., H, W, C)`` image of the padded size (for tests and pictures)."""
    x = denormalize(unpatchify(as_array(patches), height, width, cfg.patch_size), cfg.patch_size)
    if is_torch(x):
        x = x.detach().cpu().numpy()
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


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
