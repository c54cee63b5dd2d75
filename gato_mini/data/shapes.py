"""`caption-shapes`: synthetic scenes with compositional captions, and a held-out split.

A scene is one or two coloured shapes on black, 64x64 RGB, captioned in plain
English: ``"a large red circle above a small blue square"`` or, for one shape,
``"a small green triangle"``. Scene ``i`` of a split is a pure function of
``(seed, split, i)``. Its references, for scoring, are every right caption: either
object named first, and each relation true of the drawing (about one two-object
scene in eight splits its objects across both axes' halves).

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
from typing import Any

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
    references: tuple[str, ...] = ()  # every correct wording (either object first, any true relation)
    objects: tuple[Obj, ...] = ()  # as drawn: the first object, then the second
    relations: tuple[str, ...] = ()  # every relation true of the first object to the second


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


def _true_relations(pa: tuple[int, int], ra: int, pb: tuple[int, int], rb: int) -> list[str]:
    """The relations of an object at ``pa`` (radius ``ra``) to one at ``pb``: "A above B" when A lies wholly
    in the top half and B wholly in the bottom half, and so on (how :func:`make_scene` places them)."""
    half = SCENE_SIZE // 2
    (xa, ya), (xb, yb) = pa, pb
    true = {"above": ya + ra < half <= yb - rb, "below": yb + rb < half <= ya - ra,
            "left of": xa + ra < half <= xb - rb, "right of": xb + rb < half <= xa - ra}
    return [r for r in RELATIONS if true.get(r)]


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
        objects, relations = (a,), ()
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
        def said(r: str) -> tuple[str, str]:  # either object may be named first ("A above B", "B below A")
            return f"a {a.words()} {r} a {b.words()}", f"a {b.words()} {_INVERSE[r]} a {a.words()}"

        wordings = said(rel)
        caption = wordings[0] if rng.random() < 0.5 else wordings[1]
        # Every relation true of the drawing is a right caption: about one scene in eight also splits the
        # objects across the other axis's halves ("above" and "left of" both true).
        also = [w for r in _true_relations(pa, ra, pb, rb) if r != rel for w in said(r)]
        references = (caption, wordings[1] if caption == wordings[0] else wordings[0], *also)
        objects, relations = (a, b), (rel, *(r for r in _true_relations(pa, ra, pb, rb) if r != rel))
    return Scene(np.asarray(img, dtype=np.uint8), caption, combos, references, objects, relations)


def parse_caption(caption: str) -> tuple[Combination, ...]:
    """The combinations a well-formed caption states (inverse of the wording above); () otherwise."""
    objects, rel = read_caption(caption)
    if any(None in o.values() for o in objects):
        return ()
    combos = [(str(o["shape"]), str(o["colour"])) for o in objects]
    if len(combos) == 1 and rel is None:
        return ((*combos[0], "alone"),)
    if len(combos) == 2 and rel is not None:
        return ((*combos[0], rel), (*combos[1], _INVERSE[rel]))
    return ()


# --- scoring a caption by attribute ------------------------------------------------
#: What :func:`score_attributes` rates, each in [0, 1]: the object count, each object's size, colour and
#: shape (by the object's place in the caption), the whole object, and the relation (two-object scenes).
ATTRIBUTES = ("count", "size", "colour", "shape", "object", "relation")
_SLOTS = (("size", tuple(SIZES)), ("colour", tuple(COLOURS)), ("shape", SHAPES))


def read_caption(caption: str) -> tuple[tuple[dict[str, str | None], ...], str | None]:
    """A caption read leniently: its objects (each "a" opens one; its size, colour and shape are the
    words of those vocabularies before the next "a" or relation, None where missing) and its relation
    (the first relation word, None if none). Unknown words are skipped, so a model's broken captions
    still read as far as they go."""
    words = caption.lower().replace(".", " ").split()
    objects: list[dict[str, str | None]] = []
    relation, i = None, 0
    while i < len(words):
        word, pair = words[i], " ".join(words[i:i + 2])
        if pair in ("left of", "right of") or word in ("above", "below"):
            relation = relation or (pair if pair in ("left of", "right of") else word)
            i += 2 if pair in ("left of", "right of") else 1
            continue
        if word in ("a", "an"):
            objects.append({slot: None for slot, _ in _SLOTS})
        elif objects:
            for slot, vocabulary in _SLOTS:
                if word in vocabulary and objects[-1][slot] is None:
                    objects[-1][slot] = word
                    break
        i += 1
    return tuple(objects), relation


def _marks(said: tuple[tuple[dict[str, str | None], ...], str | None],
           truth: tuple[tuple[dict[str, str | None], ...], str | None]) -> dict[str, tuple[int, int]]:
    """(right, counted) per attribute of one read caption against one read reference wording."""
    (objects, relation), (true_objects, true_relation) = said, truth
    marks = {"count": (int(len(objects) == len(true_objects)), 1)}
    n = len(true_objects)
    pairs = list(zip((list(objects) + [None] * n)[:n], true_objects, strict=True))  # a missing object: None
    for slot, _ in _SLOTS:
        marks[slot] = (sum(s is not None and s[slot] == t[slot] for s, t in pairs), n)
    marks["object"] = (sum(s == t for s, t in pairs), n)
    two = n == 2
    marks["relation"] = (int(two and len(objects) == 2 and relation == true_relation), int(two))
    for k, (s, t) in enumerate(pairs):  # each object apart: a copied attribute shows
        for slot, _ in _SLOTS:
            marks[f"{slot}_{k + 1}"] = (int(s is not None and s[slot] == t[slot]), 1)
    return marks


def score_attributes(captions: list[str], references: list[list[str]]) -> dict[str, Any]:
    """Each part of caption-shapes captions rated against their references: the rate of right answers per
    attribute (:data:`ATTRIBUTES`), and per object (``by_object``: the first and the second object's size,
    colour and shape apart), and ``seen_combination``. A caption is read against the reference wording it
    matches best (a scene may be said with either object first), so "B below A" for "A above B" is all
    right."""
    totals: dict[str, list[int]] = {}
    for caption, refs in zip(captions, references, strict=True):
        said = read_caption(caption)
        best = max((_marks(said, read_caption(r)) for r in refs),
                   key=lambda m: sum(m[a][0] for a in ATTRIBUTES))
        for key, (right, counted) in best.items():
            total = totals.setdefault(key, [0, 0])
            total[0], total[1] = total[0] + right, total[1] + counted
    seen = [c not in HELD_OUT for caption in captions for c in parse_caption(caption)]
    rate = {k: (r / n if n else None) for k, (r, n) in totals.items()}
    return {**{a: rate.get(a) for a in ATTRIBUTES},
            # of the objects the well-formed captions state, the share whose (shape, colour, relation) the
            # training scenes use: on held-out scenes every true one is held out, so each such object is
            # wrong, the decoder falling back on a combination it saw
            "seen_combination": float(np.mean(seen)) if seen else None,
            "by_object": {place: {slot: rate.get(f"{slot}_{k}") for slot, _ in _SLOTS}
                          for k, place in ((1, "first"), (2, "second")) if f"size_{k}" in rate},
            "scenes": len(captions), "two_object_scenes": totals.get("relation", [0, 0])[1]}
