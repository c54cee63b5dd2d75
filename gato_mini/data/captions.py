"""Image-caption readers: a user's image folder, and scikit-learn's handwritten digits.

A caption folder follows the image-folder convention of the HF ``datasets``
library: images anywhere below the folder plus a ``metadata.jsonl`` whose lines
hold ``file_name`` (relative to the folder) and ``text``. Several captions per
image are allowed, either as several lines with the same ``file_name`` or as a
list in ``text``.

Errors name the file and line (``metadata.jsonl:7: ...``): a line that is not
JSON, a line without ``file_name`` or ``text``, an image that is missing or
unreadable, a ``file_name`` that leads outside the folder (``../../etc/passwd``,
an absolute path, or a symlink out of it). A blank line is ignored; an empty caption is skipped and counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gato_mini.data.jsonl import iter_jsonl
from gato_mini.errors import FileFormatError
from gato_mini.tokenizers import image

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass
class CaptionEntry:
    key: str  # stable id: "file_name#k"
    image_path: Path
    caption: str
    where: str  # "metadata.jsonl:LINE", for errors


def image_in_folder(folder: Path, name: str, where: str, key: str = "image") -> Path:
    """The image file ``name`` of a line (``where``) of a file kept in ``folder``: inside the folder
    (not absolute, no ``..`` or symlink out of it) and present, or a one-line error naming the line."""
    path = folder / name
    if Path(name).is_absolute() or not path.resolve().is_relative_to(folder.resolve()):
        raise FileFormatError(f"{where}: {key} {name!r} points outside {folder}; images must be inside the "
                              "folder of the file that lists them")
    if not path.is_file():
        raise FileFormatError(f"{where}: image {name} not found in {folder}")
    return path


def read_caption_metadata(folder: str | Path, skips: Counter | None = None) -> Iterator[CaptionEntry]:
    """Every (image, caption) pair listed in ``folder/metadata.jsonl``; images are checked to exist."""
    folder = Path(folder)
    meta = folder / "metadata.jsonl"
    if not folder.is_dir():
        raise FileFormatError(f"caption folder not found: {folder}")
    if not meta.is_file():
        raise FileFormatError(f"{folder} has no metadata.jsonl (lines of file_name and text)")
    skips = skips if skips is not None else Counter()
    seen: Counter = Counter()
    for where, row in iter_jsonl(meta):
        if not isinstance(row, dict) or "file_name" not in row or "text" not in row:
            raise FileFormatError(f"{where}: each line needs \"file_name\" and \"text\"")
        name, texts = row["file_name"], row["text"]
        texts = texts if isinstance(texts, list) else [texts]
        if not isinstance(name, str) or not all(isinstance(t, str) for t in texts):
            raise FileFormatError(f"{where}: file_name must be a string and text a string or list")
        path = image_in_folder(folder, name, where, "file_name")
        for text in texts:
            if not text.strip():
                skips["empty caption"] += 1
                continue
            seen[name] += 1
            yield CaptionEntry(f"{name}#{seen[name] - 1}", path, text.strip(), where)


MAX_IMAGE_PIXELS = image.MAX_IMAGE_PIXELS  # an image file's header is checked against it first


def load_image(path: Path, size: tuple[int, int], where: str = "") -> np.ndarray:
    """An RGB uint8 image fitted inside ``size`` (H, W): aspect kept, black padding, never cropped."""
    from PIL import Image, UnidentifiedImageError

    prefix = f"{where}: " if where else ""
    if not Path(path).is_file():
        raise FileFormatError(f"{prefix}image not found: {path}")
    try:
        with Image.open(path) as im:
            if im.width == 0 or im.height == 0:
                raise FileFormatError(f"{prefix}image {path} has zero size")
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise FileFormatError(f"{prefix}image {path} claims {im.width}x{im.height} pixels, more than "
                                      f"the {MAX_IMAGE_PIXELS:,} gato-mini decodes; shrink it first")
            pixels = np.asarray(im.convert("RGB"), dtype=np.uint8)
        return image.letterbox(pixels, size)
    except FileFormatError:
        raise
    except Image.DecompressionBombError:  # Pillow's own check, at twice its limit, before ours can run
        raise FileFormatError(f"{prefix}image {path} claims more than twice the {MAX_IMAGE_PIXELS:,} pixels "
                              "gato-mini decodes; shrink it first") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FileFormatError(f"{prefix}cannot read image {path}: {exc}") from None


def _load_digits() -> Any:
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        raise FileFormatError("caption-digits needs scikit-learn (pip install scikit-learn)") from None
    return load_digits()


def digit_count() -> int:
    """How many digits scikit-learn ships (1,797)."""
    return len(_load_digits().target)


def digit_captions(size: int = 32) -> Iterator[tuple[str, np.ndarray, str]]:
    """scikit-learn's 1,797 8x8 handwritten digits, upscaled to ``size``, captioned by name."""
    digits = _load_digits()
    for i, (img, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        px = np.clip(np.rint(img * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        px = image.resize(px[..., None], (size, size))[..., 0]  # nearest-neighbour upscaling
        yield f"digit-{i}", px, f"a handwritten digit {DIGIT_WORDS[int(label)]}"
