"""Pictures for reports: a caption grid (Pillow), loss curves and score bars (matplotlib).

Every writer writes to a temporary file beside the target and renames it into
place, so a figure is either whole or absent.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gato_mini.errors import GatoError


def _rename_into_place(tmp: Path, out: Path) -> str:
    os.replace(tmp, out)
    return str(out)


def caption_grid(images: Sequence[np.ndarray], captions: Sequence[str], references: Sequence[Sequence[str]],
                 path: str | Path, columns: int = 4, tile: int = 160) -> str:
    """A PNG grid: each image enlarged, its generated caption below (green when it matches a
    reference exactly, red otherwise) and the first reference in grey."""
    from PIL import Image, ImageDraw, ImageFont

    from gato_mini.envs.caption import exact_match

    if not images or len(images) != len(captions) or len(captions) != len(references):
        raise GatoError("caption_grid needs as many images, captions and reference lists, and at least one")
    font = ImageFont.load_default()
    width = max(12, tile // 6)  # characters per caption line
    text_h = 5 * 12 + 8
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * tile, rows * (tile + text_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (img, cap, refs) in enumerate(zip(images, captions, references, strict=True)):
        x, y = (k % columns) * tile, (k // columns) * (tile + text_h)
        arr = np.asarray(img, dtype=np.uint8)
        pic = Image.fromarray(arr if arr.ndim == 3 else arr, "RGB" if arr.ndim == 3 else "L").convert("RGB")
        scale = (tile - 8) / max(pic.size)
        pic = pic.resize((max(1, int(pic.width * scale)), max(1, int(pic.height * scale))),
                         Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX)
        sheet.paste(pic, (x + (tile - pic.width) // 2, y + 4))
        colour = (0, 130, 0) if exact_match(cap, refs) else (190, 0, 0)
        lines = textwrap.wrap(cap or "(empty)", width)[:3]
        ref_lines = textwrap.wrap(refs[0] if refs else "", width)[:2]
        ty = y + tile
        for line in lines:
            draw.text((x + 4, ty), line, fill=colour, font=font)
            ty += 12
        for line in ref_lines:
            draw.text((x + 4, ty), line, fill=(120, 120, 120), font=font)
            ty += 12
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    sheet.save(tmp)
    return _rename_into_place(tmp, out)
