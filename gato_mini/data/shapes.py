"""`caption-shapes`: synthetic scenes with compositional captions, and a held-out split.

A scene is one or two coloured shapes on black, 64x64 RGB, captioned in plain
English: ``"a large red circle above a small blue square"`` or, for one shape,
``"a small green triangle"``. Scene ``i`` of a split is a pure function of
``(seed, split, i)``.

Compositional hold-out: each object in a scene contributes a *combination*
``(shape, colour, relation)``, where the relation is the object's own (``above``
for the first object of "A above B", ``below`` for B, ``alone`` for a single
shape). About a quarter of all combinations are held out. Training scenes use
none of them; held-out scenes use only them, so the two splits share no
combination while every shape, colour and relation appears in both.

>>> scene = make_scene(0, "train", seed=0)
>>> scene.image.shape, scene.image.dtype.name
((64, 64, 3), 'uint8')
>>> all(c not in HELD_OUT for c in scene.combinations)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 230),
           "yellow": (230, 220, 40), "purple": (150, 60, 200), "white": (235, 235, 235)}
SIZES = {"small": 7, "large": 13}  # radius in pixels
RELATIONS = ("above", "below", "left of", "right of", "alone")
_INVERSE = {"above": "below", "below": "above", "left of": "right of", "right of": "left of"}
SCENE_SIZE = 64
SINGLE_FRACTION = 0.2  # share of one-shape scenes
SPLITS = ("train", "val")
GENERATOR_VERSION = 1  # bump when drawing or wording changes (invalidates cached shards)

Combination = tuple[str, str, str]  # (shape, colour, relation)


def _held_out(shape: str, colour: str, relation: str) -> bool:
    # A fixed lattice, not a random draw: every (shape, colour) pair keeps 3 or
    # 4 of its 5 relations for training and holds out the others.
    s, c, r = SHAPES.index(shape), list(COLOURS).index(colour), RELATIONS.index(relation)
    return (s + 2 * c + r) % 4 == 0


#: Every held-out (shape, colour, relation) combination.
HELD_OUT: frozenset[Combination] = frozenset(
    (s, c, r) for s in SHAPES for c in COLOURS for r in RELATIONS if _held_out(s, c, r))


@dataclass(frozen=True)
class Obj:
    shape: str
    colour: str
    size: str

    def words(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"


@dataclass
class Scene:
    image: np.ndarray  # (64, 64, 3) uint8
    caption: str
    combinations: tuple[Combination, ...]
    references: tuple[str, ...] = ()  # every correct wording (either object first), for scoring


def _draw(draw: ImageDraw.ImageDraw, obj: Obj, x: int, y: int) -> None:
    r, fill = SIZES[obj.size], COLOURS[obj.colour]
    if obj.shape == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
    elif obj.shape == "square":
        draw.rectangle([x - r, y - r, x + r, y + r], fill=fill)
    elif obj.shape == "triangle":
        draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=fill)
    else:
        draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=fill)


def _centre(rng: np.random.Generator, r: int, lo: int, hi: int) -> int:
    """A centre coordinate so that [c - r, c + r] lies inside [lo, hi)."""
    return int(rng.integers(lo + r + 1, hi - r - 1))


def _random_obj(rng: np.random.Generator) -> Obj:
    return Obj(SHAPES[rng.integers(len(SHAPES))], list(COLOURS)[rng.integers(len(COLOURS))],
               list(SIZES)[rng.integers(len(SIZES))])


def make_scene(index: int, split: str = "train", seed: int = 0) -> Scene:
    """Scene ``index`` of ``split`` ("train" or "val"), deterministic from ``seed``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = np.random.default_rng([seed, SPLITS.index(split), index, GENERATOR_VERSION])
    want_held = split == "val"
    while True:  # rejection: keep scenes whose combinations are all (not) held out
        a = _random_obj(rng)
        if rng.random() < SINGLE_FRACTION:
            combos: tuple[Combination, ...] = ((a.shape, a.colour, "alone"),)
            b, rel = None, "alone"
        else:
            b, rel = _random_obj(rng), RELATIONS[rng.integers(4)]
            combos = ((a.shape, a.colour, rel), (b.shape, b.colour, _INVERSE[rel]))
        held = [c in HELD_OUT for c in combos]
        if all(held) == want_held and any(held) == want_held:
            break
    img = Image.new("RGB", (SCENE_SIZE, SCENE_SIZE))
    draw = ImageDraw.Draw(img)
    half = SCENE_SIZE // 2
    if b is None:
        r = SIZES[a.size]
        _draw(draw, a, _centre(rng, r, 0, SCENE_SIZE), _centre(rng, r, 0, SCENE_SIZE))
        caption = f"a {a.words()}"
        references: tuple[str, ...] = (caption,)
    else:
        ra, rb = SIZES[a.size], SIZES[b.size]
        # A goes in the half its relation names, B in the other half.
        first = {"above": (0, half), "below": (half, SCENE_SIZE),
                 "left of": (0, half), "right of": (half, SCENE_SIZE)}[rel]
        second = (half, SCENE_SIZE) if first[0] == 0 else (0, half)
        if rel in ("above", "below"):
            pa = (_centre(rng, ra, 0, SCENE_SIZE), _centre(rng, ra, *first))
            pb = (_centre(rng, rb, 0, SCENE_SIZE), _centre(rng, rb, *second))
        else:
            pa = (_centre(rng, ra, *first), _centre(rng, ra, 0, SCENE_SIZE))
            pb = (_centre(rng, rb, *second), _centre(rng, rb, 0, SCENE_SIZE))
        _draw(draw, a, *pa)
        _draw(draw, b, *pb)
        # Either object may be named first ("A above B" or "B below A").
        wordings = (f"a {a.words()} {rel} a {b.words()}", f"a {b.words()} {_INVERSE[rel]} a {a.words()}")
        caption = wordings[0] if rng.random() < 0.5 else wordings[1]
        references = (caption, wordings[1] if caption == wordings[0] else wordings[0])
    return Scene(np.asarray(img, dtype=np.uint8), caption, combos, references)


def parse_caption(caption: str) -> tuple[Combination, ...]:
    """The combinations a caption states (inverse of the wording above; for scoring)."""
    words = caption.split()
    objs, rel, i = [], None, 0
    while i < len(words):
        if words[i] == "a" and i + 3 < len(words) + 0 and words[i + 1] in SIZES:
            objs.append((words[i + 3], words[i + 2]))
            i += 4
        elif words[i] in ("above", "below"):
            rel, i = words[i], i + 1
        elif words[i] in ("left", "right") and i + 1 < len(words) and words[i + 1] == "of":
            rel, i = f"{words[i]} of", i + 2
        else:
            i += 1
    if len(objs) == 1:
        return ((objs[0][0], objs[0][1], "alone"),)
    if len(objs) == 2 and rel is not None:
        return ((objs[0][0], objs[0][1], rel), (objs[1][0], objs[1][1], _INVERSE[rel]))
    return ()
