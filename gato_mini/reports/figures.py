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

from gato_mini.data.sources import KINDS
from gato_mini.envs.caption import exact_match
from gato_mini.errors import GatoError


def _rename_into_place(tmp: Path, out: Path) -> str:
    os.replace(tmp, out)
    return str(out)


def caption_grid(images: Sequence[np.ndarray], captions: Sequence[str], references: Sequence[Sequence[str]],
                 path: str | Path, columns: int = 4, tile: int = 160) -> str:
    """A PNG grid: each image enlarged, its generated caption below (green when it matches a
    reference exactly, red otherwise) and the first reference in grey."""
    from PIL import Image, ImageDraw, ImageFont

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


def _pyplot():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def read_metrics(*csv_paths: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Lightning's CSV logs as ``{column: [(step, value), ...]}`` (empty cells skipped). Several logs
    of one run (its parts: a resume, the pauses of DAgger rounds) are read in order into one series each,
    a later part's rows replacing an earlier part's from its first step on."""
    import csv

    series: dict[str, list[tuple[int, float]]] = {}
    for csv_path in csv_paths:
        part: dict[str, list[tuple[int, float]]] = {}
        with open(csv_path, newline="") as f:
            for row in csv.DictReader(f):
                step = int(float(row.get("step") or 0))
                for key, value in row.items():
                    if key in ("step", "epoch") or value in (None, ""):
                        continue
                    try:
                        part.setdefault(key, []).append((step, float(value)))
                    except ValueError:
                        continue
        first = min((pts[0][0] for pts in part.values() if pts), default=None)
        if first is not None:  # a resumed part redoes the steps after the earlier part's checkpoint
            series = {k: [pt for pt in v if pt[0] < first] for k, v in series.items()}
        for key, pts in part.items():
            series.setdefault(key, []).extend(pts)
    return series


def loss_groups() -> dict[str, str]:
    """Each loss group training logs (``train/loss_<group>``) and its panel's title: the source kinds'
    (:attr:`Source.group <gato_mini.data.source.Source.group>`), in the order of the kinds."""
    out: dict[str, str] = {}
    for cls in KINDS.values():
        out.setdefault(cls.group, cls.group_title)
    return out


def loss_curves(metrics: dict[str, list[tuple[int, float]]], path: str | Path) -> str:
    """One panel per modality: training loss (smoothed) and validation loss against the step."""
    plt = _pyplot()
    groups = loss_groups()
    present = [m for m in groups if f"train/loss_{m}" in metrics or f"val/loss_{m}" in metrics]
    if not present:
        raise GatoError("no per-modality losses in the training log")
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.2), squeeze=False)
    for ax, m in zip(axes[0], present, strict=True):
        train = metrics.get(f"train/loss_{m}", [])
        if train:
            steps, values = zip(*train, strict=True)
            k = max(1, len(values) // 30)
            smooth = np.convolve(values, np.ones(k) / k, mode="valid")
            ax.plot(steps, values, color="tab:blue", alpha=0.25, lw=0.8)
            ax.plot(steps[k - 1:], smooth, color="tab:blue", label="train")
        val = metrics.get(f"val/loss_{m}", [])
        if val:
            steps, values = zip(*val, strict=True)
            ax.plot(steps, values, "o-", color="tab:orange", label="validation")
        ax.set_title(groups[m])
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats/token)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def source_names(metrics: dict[str, list[tuple[int, float]]]) -> list[str]:
    """The sources with a held-out loss in a training log (the groups' own columns left out)."""
    return sorted(k[len("val/loss_"):] for k in metrics
                  if k.startswith("val/loss_") and k[len("val/loss_"):] not in loss_groups())


def source_curves(metrics: dict[str, list[tuple[int, float]]], path: str | Path) -> str:
    """A learning curve per source: its held-out loss against the step, one small panel each (the
    sources' losses differ tenfold, so no shared axis)."""
    import math

    plt = _pyplot()
    names = source_names(metrics)
    if not names:
        raise GatoError("no per-source held-out losses in the training log")
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows), squeeze=False)
    for ax, name in zip(list(axes.flat)[:len(names)], names, strict=True):
        steps, values = zip(*metrics[f"val/loss_{name}"], strict=True)
        ax.plot(steps, values, "o-", color="tab:orange")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes[0][0].set_ylabel("held-out loss (nats/token)")
    fig.tight_layout()
    return _save(fig, path)


def score_bars(scores: dict[str, float], path: str | Path, title: str) -> str:
    """Horizontal bars of normalized scores (0 = the stronger of random and the best constant action,
    100 = expert)."""
    plt = _pyplot()
    if not scores:
        raise GatoError("no normalized scores to plot")
    names = list(scores)
    values = [scores[n] for n in names]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(names) + 1.2))
    colours = ["tab:green" if v >= 50 else "tab:orange" if v >= 10 else "tab:red" for v in values]
    ax.barh(names, values, color=colours)
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(100, color="grey", lw=0.8, ls="--")
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.0f}", va="center", ha="left" if v >= 0 else "right")
    ax.set_xlabel("normalized score: 0 = random or the best constant action (the stronger),\n"
                  "100 = the expert")  # two lines: one was cut at the figure's edge
    ax.set_title(title)
    ax.invert_yaxis()
    lo = min(0.0, min(values)) - 10
    ax.set_xlim(lo, max(110.0, max(values) + 15))
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> str:  # noqa: ANN001 (a matplotlib Figure)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    _pyplot().close(fig)
    return _rename_into_place(tmp, out)
