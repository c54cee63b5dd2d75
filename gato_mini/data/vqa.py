"""Visual question answering: image-question-answer records, read from a user's files or asked of the
caption-shapes scenes, and the two source kinds that train on them (``vqa``, ``vqa-shapes``).

A unit is ``[patches] <|caption|> question <|sep|> answer <|eos|>``, loss on the answer
(:func:`~gato_mini.data.sequence.answer_sequence`): the image, the question as text, and the answer
as the text the model says after ``<|sep|>`` (Gato's layout for VQAv2: the image, then the text).
Training reads each question with its most common answer; evaluation reads every answer, scored by
VQA accuracy (:func:`vqa_accuracy`: ``min(1, matching answers / 3)``) beside exact match
(:mod:`gato_mini.agent.eval_vqa`).

Files a ``vqa`` source reads (``docs/own-data.md``):

* ``path``: a JSONL file of ``{"image": "pic.png", "question": "...", "answers": ["...", ...]}`` (an
  optional ``"type"`` names the question's type), the images beside it (paths relative to the file's
  folder, never outside it), as a caption folder's users already keep theirs;
* or VQAv2's own files, read directly: ``questions`` (``v2_OpenEnded_mscoco_*_questions.json``),
  ``annotations`` (``v2_mscoco_*_annotations.json``) and ``images``, the folder of the COCO images, each
  found by the image id its file name ends with (``COCO_val2014_000000262148.jpg``).

Errors name the file and line or question: a line that is not JSON, a record without an image,
question or answer, an answer list that is empty, an image that is not one, a question that does not
fit the context with its image.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gato_mini.config import GatoConfig
from gato_mini.data import shapes
from gato_mini.data.captions import image_in_folder, load_image
from gato_mini.data.jsonl import iter_jsonl
from gato_mini.data.sequence import answer_sequence
from gato_mini.data.source import Source, Unit, file_stat, image_size_option, register_kind, val_keys
from gato_mini.errors import ConfigError, FileFormatError
from gato_mini.tokenizers import image
from gato_mini.tokenizers.text import TextTokenizer

#: How many annotators must give an answer for it to count whole (VQA's convention).
AGREEING = 3
_NUMBERS = {w: str(k) for k, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven",
                                             "eight", "nine", "ten"))}
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_answer(text: str) -> str:
    """An answer as it is compared: lower case, punctuation and articles dropped, number words as digits
    (``"Two."`` and ``"2"`` match), spaces collapsed (after the official VQA evaluation's rules)."""
    words = _PUNCTUATION.sub(" ", text.lower()).split()
    return " ".join(_NUMBERS.get(w, w) for w in words if w not in ("a", "an", "the"))


def vqa_accuracy(answer: str, answers: tuple[str, ...] | list[str]) -> float:
    """VQA accuracy of one answer: ``min(1, matching answers / 3)``, matched after
    :func:`normalize_answer`; an answer three annotators gave is wholly right."""
    said = normalize_answer(answer)
    return min(1.0, sum(normalize_answer(a) == said for a in answers) / AGREEING)


def majority_answer(answers: tuple[str, ...] | list[str]) -> str:
    """The most common answer (after :func:`normalize_answer`; the first given breaks ties), as given."""
    counts = Counter(normalize_answer(a) for a in answers)
    best = max(counts.values())
    return next(a for a in answers if counts[normalize_answer(a)] == best)


@dataclass(frozen=True)
class VqaItem:
    """One question about one image, with every answer given to it."""

    key: str  # the question's stable id
    image_key: str  # the image's: every question of a held-out image is held out
    load: Callable[[], np.ndarray]
    question: str
    answers: tuple[str, ...]
    qtype: str  # the question's type ("colour", "yes/no", ...; "" when not given)
    where: str  # for errors: "file:LINE" or "questions.json: question 7"


def _answers(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise FileFormatError(f"{where}: 'answers' must be a non-empty list of answers")
    texts = [a.get("answer") if isinstance(a, dict) else a for a in raw]  # VQAv2: [{"answer": ...}]
    if not all(isinstance(a, str) and a.strip() for a in texts):
        raise FileFormatError(f"{where}: every answer must be non-empty text")
    return tuple(a.strip() for a in texts)


def _question(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise FileFormatError(f"{where}: 'question' must be non-empty text")
    return raw.strip()


def read_vqa_jsonl(path: str | Path, size: tuple[int, int]) -> Iterator[VqaItem]:
    """The records of a JSONL file (see the module docstring), images fitted inside ``size``."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"VQA file not found: {path}")
    folder = path.parent
    seen: Counter = Counter()
    for where, row in iter_jsonl(path):
        if not isinstance(row, dict) or "image" not in row or "question" not in row or "answers" not in row:
            raise FileFormatError(f"{where}: each line needs \"image\", \"question\" and \"answers\"")
        name = row["image"]
        if not isinstance(name, str):
            raise FileFormatError(f"{where}: 'image' must be a path relative to {folder}")
        picture = image_in_folder(folder, name, where)
        qtype = row.get("type", "")
        seen[name] += 1  # a question's key: its image and its place among that image's questions
        yield VqaItem(f"{name}#{seen[name] - 1}", name, lambda p=picture, w=where: load_image(p, size, w),
                      _question(row["question"], where), _answers(row["answers"], where),
                      qtype if isinstance(qtype, str) else "", where)


def _read_json(path: str | Path, key: str) -> list[Any]:
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"VQAv2 file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise FileFormatError(f"{path}: a VQAv2 file holds a list under '{key}'")
    return data[key]


def image_ids(folder: str | Path) -> dict[int, Path]:
    """COCO image files of a folder by the image id their name ends with (``..._000000262148.jpg``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileFormatError(f"VQAv2 image folder not found: {folder}")
    out: dict[int, Path] = {}
    for f in sorted(folder.iterdir()):
        m = re.search(r"(\d+)$", f.stem)
        if f.is_file() and m:
            out.setdefault(int(m.group(1)), f)
    return out


def read_vqav2(questions: str | Path, annotations: str | Path, images: str | Path,
               size: tuple[int, int]) -> Iterator[VqaItem]:
    """The questions of VQAv2's files with their annotators' answers (see the module docstring)."""
    name = Path(questions).name
    answers: dict[int, dict[str, Any]] = {}
    for k, a in enumerate(_read_json(annotations, "annotations")):
        if not isinstance(a, dict) or "question_id" not in a:
            raise FileFormatError(f"{Path(annotations).name}: annotation {k} has no question_id")
        answers[a["question_id"]] = a
    files = image_ids(images)
    for k, q in enumerate(_read_json(questions, "questions")):
        where = f"{name}: question {k}"
        if not isinstance(q, dict) or "question_id" not in q or "image_id" not in q:
            raise FileFormatError(f"{where}: needs question_id, image_id and question")
        a = answers.get(q["question_id"])
        if a is None:
            raise FileFormatError(f"{where}: question_id {q['question_id']} has no annotation in "
                                  f"{Path(annotations).name}")
        picture = files.get(int(q["image_id"]))
        if picture is None:
            raise FileFormatError(f"{where}: no image of id {q['image_id']} in {images}")
        yield VqaItem(str(q["question_id"]), str(q["image_id"]),
                      lambda p=picture, w=where: load_image(p, size, w), _question(q.get("question"), where),
                      _answers(a.get("answers"), where), str(a.get("answer_type", "")), where)


#: The question types asked of a caption-shapes scene.
SHAPE_QUESTIONS = ("colour", "shape", "size", "count", "relation")


def scene_questions(scene: shapes.Scene, rng: np.random.Generator) -> dict[str, list[tuple[str, str]]]:
    """Every question a scene answers unambiguously, by type: (question, answer). An object is named by
    what tells it from the other (its shape, its colour, both); the relation is a yes/no question about
    a relation drawn true or false with equal odds."""
    objs = scene.objects
    out: dict[str, list[tuple[str, str]]] = {t: [] for t in SHAPE_QUESTIONS}
    out["count"].append(("how many shapes are there?", ("one", "two")[len(objs) - 1]))
    for k, o in enumerate(objs):
        other = objs[1 - k] if len(objs) == 2 else None
        if other is None or other.shape != o.shape:
            out["colour"].append((f"what colour is the {o.shape}?", o.colour))
        if other is None or other.colour != o.colour:
            out["shape"].append((f"what shape is the {o.colour} object?", o.shape))
        if other is None or (other.colour, other.shape) != (o.colour, o.shape):
            out["size"].append((f"what size is the {o.colour} {o.shape}?", o.size))
    if len(objs) == 2 and (objs[0].colour, objs[0].shape) != (objs[1].colour, objs[1].shape):
        a, b = objs
        true = [r for r in shapes.RELATIONS[:4] if r in scene.relations]
        false = [r for r in shapes.RELATIONS[:4] if r not in scene.relations]
        said = true if rng.random() < 0.5 else false
        r = said[int(rng.integers(len(said)))]
        out["relation"].append((f"is the {a.colour} {a.shape} {r} the {b.colour} {b.shape}?",
                                "yes" if r in scene.relations else "no"))
    return {t: qs for t, qs in out.items() if qs}


def shape_items(split: str, count: int, seed: int, per_scene: int, size: tuple[int, int]) -> list[VqaItem]:
    """``per_scene`` questions of distinct types about each of the first ``count`` caption-shapes scenes
    of ``split`` (the captions' scenes: the held-out ones hold out the same compositions)."""
    items = []
    for i in range(count):
        scene = shapes.make_scene(i, split, seed)
        rng = np.random.default_rng([seed, shapes.SPLITS.index(split), i, 7])  # 7: the questions' stream
        asked = scene_questions(scene, rng)
        kinds = list(asked)
        for t in rng.permutation(kinds)[:per_scene]:
            question, answer = asked[t][int(rng.integers(len(asked[t])))]
            items.append(VqaItem(f"{split}/{i}/{t}", f"{split}/{i}",
                                 lambda s=scene: image.resize(s.image, size), question, (answer,) * AGREEING,
                                 str(t), f"scene {split}/{i}"))
    return items


class Questions(Source):
    """Questions about images: a unit is one question with its most common answer
    (:func:`~gato_mini.data.sequence.answer_sequence`); every question of an image is held out with it."""

    group, group_title = "vqa", "visual questions"
    evaluation = "gato_mini.agent.eval_vqa:VqaEvaluation"

    def items(self, split: str, val_fraction: float, limit: int | None = None) -> list[VqaItem]:
        """The questions of one split, each with every answer given to it (the first ``limit``)."""
        raise NotImplementedError

    def image_size(self) -> tuple[int, int]:
        """The (H, W) its images are fitted to (``image_size``: an int, or [height, width])."""
        return image_size_option(self.name, self.options["image_size"])

    def check(self, cfg: GatoConfig | None = None) -> None:
        self.image_size()
        super().check(cfg)

    def texts(self) -> Iterator[str]:
        for it in self.items("train", 0.0, 20000):
            yield it.question
            yield from it.answers

    def units(self, split: str, cfg: GatoConfig, tokenizer: TextTokenizer | None, val_fraction: float,
              skips: Counter) -> Iterator[Unit]:
        assert tokenizer is not None
        size = self.image_size()
        for it in self.items(split, val_fraction):
            seq = answer_sequence(it.load(), it.question, majority_answer(it.answers), cfg, tokenizer, size)
            if len(seq) > cfg.block_size:
                raise FileFormatError(f"{it.where}: the question and its answer take {len(seq)} tokens with "
                                      f"the image; block_size is {cfg.block_size} (a shorter question, or a "
                                      "smaller image_size)")
            yield it.key, seq


@register_kind
class Vqa(Questions):
    """A user's questions: a JSONL file beside its images, or VQAv2's questions and annotations files
    with the COCO image folder."""

    name_of_kind = "vqa"
    defaults = {"path": None, "questions": None, "annotations": None, "images": None, "image_size": [64, 64]}

    def check(self, cfg: GatoConfig | None = None) -> None:
        o = self.options
        vqav2 = [o["questions"], o["annotations"], o["images"]]
        if (o["path"] is None) == all(v is None for v in vqav2) or (o["path"] is None and None in vqav2):
            raise ConfigError(f"source '{self.name}': kind 'vqa' needs 'path' (a JSONL of image, question "
                              "and answers) or all of 'questions', 'annotations' and 'images' (VQAv2's "
                              "files)")
        for key in ("questions", "annotations", "images"):
            if o[key] is not None and not Path(o[key]).exists():
                raise FileFormatError(f"source '{self.name}': {o[key]} not found")
        super().check(cfg)

    def _input(self) -> Any:
        o = self.options
        if o["path"] is not None:
            return file_stat(Path(o["path"]).parent)
        return [file_stat(Path(o[k])) for k in ("questions", "annotations", "images")]

    def items(self, split: str, val_fraction: float, limit: int | None = None) -> list[VqaItem]:
        o, size = self.options, self.image_size()
        every = list(read_vqa_jsonl(o["path"], size) if o["path"] is not None else
                     read_vqav2(o["questions"], o["annotations"], o["images"], size))
        held = val_keys([it.image_key for it in every], val_fraction)
        return [it for it in every if (it.image_key in held) == (split == "val")][:limit]


@register_kind
class VqaShapes(Questions):
    """Questions about the caption-shapes scenes (colour, shape, size, count, relation), asked of the
    captions' own scenes: the held-out scenes hold out the same compositions."""

    name_of_kind = "vqa-shapes"
    defaults = {"count": 20000, "val_count": 500, "seed": 0, "image_size": shapes.SCENE_SIZE, "per_scene": 2}
    whole_numbers = ("count", "val_count", "per_scene")
    builtin = ("vqa-shapes",)

    def _input(self) -> Any:
        return [shapes.GENERATOR_VERSION, 1]  # 1: the questions' version

    def check(self, cfg: GatoConfig | None = None) -> None:
        n = self.options["per_scene"]
        if not 1 <= n <= len(SHAPE_QUESTIONS):
            raise ConfigError(f"source '{self.name}': per_scene must be 1 to {len(SHAPE_QUESTIONS)} "
                              f"(question types: {', '.join(SHAPE_QUESTIONS)}), got {n}")
        super().check(cfg)

    def items(self, split: str, val_fraction: float, limit: int | None = None) -> list[VqaItem]:
        o = self.options
        n = o["count"] if split == "train" else o["val_count"]
        if limit is not None:  # a scene asks per_scene questions (fewer when fewer types fit it)
            n = min(n, -(-limit // o["per_scene"]))
        return shape_items(split, n, o["seed"], o["per_scene"], self.image_size())[:limit]

    def texts(self) -> Iterator[str]:
        for it in shape_items("train", min(self.options["count"], 2000), self.options["seed"],
                              len(SHAPE_QUESTIONS), self.image_size()):
            yield it.question
            yield from it.answers
