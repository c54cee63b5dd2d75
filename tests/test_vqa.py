"""Visual question answering: the accuracy, the readers (a JSONL beside its images, VQAv2's own files),
the questions asked of the caption-shapes scenes, the sequence, and bad input refused before anything
is written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from gato_mini.config import GatoConfig
from gato_mini.data import shapes
from gato_mini.data.sequence import answer_sequence, question_prompt_sequence
from gato_mini.data.sources import source_of
from gato_mini.data.vqa import (
    AGREEING,
    majority_answer,
    normalize_answer,
    read_vqa_jsonl,
    read_vqav2,
    scene_questions,
    shape_items,
    vqa_accuracy,
)
from gato_mini.envs.vqa import QuestionEnv
from gato_mini.errors import FileFormatError

EXE = shutil.which("gato-mini") or str(Path(sys.executable).parent / "gato-mini")
CFG = GatoConfig.from_name("tiny", n_layer=1, n_embd=32, n_head=2, block_size=64, text_vocab_size=300)


def test_vqa_accuracy_counts_three_agreeing_answers_as_whole() -> None:
    assert vqa_accuracy("two", ["2", "2", "two", "3"]) == 1.0  # number words are digits
    assert vqa_accuracy("Red.", ["red", "red", "blue"]) == pytest.approx(2 / 3)  # case and punctuation
    assert vqa_accuracy("a red", ["red", "blue", "blue"]) == pytest.approx(1 / 3)  # articles dropped
    assert vqa_accuracy("green", ["red"] * 10) == 0.0
    assert vqa_accuracy("", ["red"]) == 0.0
    assert normalize_answer("  The  TWO cats! ") == "2 cats"
    assert majority_answer(["Blue", "red", "blue"]) == "Blue"  # the most common after normalizing, as given


def _images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        Image.fromarray(np.full((20, 30, 3), 40 * k, np.uint8)).save(folder / name)


def test_vqav2_files_and_a_jsonl_read_into_the_same_records(tmp_path) -> None:
    ids = [262148, 393225]
    names = [f"COCO_val2014_{i:012d}.jpg" for i in ids]
    _images(tmp_path / "coco", names)
    qs = [("is it dark?", ids[0], ["yes"] * 9 + ["no"], "yes/no"),
          ("how many?", ids[1], ["2"] * 5 + ["two"] * 5, "number"),
          ("what colour?", ids[1], ["grey"] * 6 + ["gray"] * 4, "other")]
    (tmp_path / "questions.json").write_text(json.dumps({"questions": [
        {"image_id": i, "question": q, "question_id": 100 + k} for k, (q, i, _, _) in enumerate(qs)]}))
    (tmp_path / "annotations.json").write_text(json.dumps({"annotations": [
        {"question_id": 100 + k, "image_id": i, "answer_type": t,
         "answers": [{"answer": a, "answer_id": j} for j, a in enumerate(ans)]}
        for k, (_, i, ans, t) in enumerate(qs)]}))
    v2 = list(read_vqav2(tmp_path / "questions.json", tmp_path / "annotations.json", tmp_path / "coco",
                         (16, 16)))
    rows = [{"image": names[ids.index(i)], "question": q, "answers": ans, "type": t} for q, i, ans, t in qs]
    (tmp_path / "coco" / "vqa.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n")
    mine = list(read_vqa_jsonl(tmp_path / "coco" / "vqa.jsonl", (16, 16)))

    def said(items: list) -> list:
        return [(it.question, it.answers, it.qtype) for it in items]
    assert said(v2) == said(mine)
    assert [it.image_key for it in v2] == [str(i) for _, i, _, _ in qs]
    for a, b in zip(v2, mine, strict=True):
        assert np.array_equal(a.load(), b.load()) and a.load().shape == (16, 16, 3)
    assert majority_answer(v2[2].answers) == "grey" and vqa_accuracy("2", v2[1].answers) == 1.0


def test_the_shapes_questions_are_true_of_their_scenes_and_held_out_with_them() -> None:
    types: Counter = Counter()
    relation_answers: Counter = Counter()
    for i in range(200):
        scene = shapes.make_scene(i, "train")
        asked = scene_questions(scene, np.random.default_rng(i))
        objs = scene.objects
        assert asked["count"] == [("how many shapes are there?", ("one", "two")[len(objs) - 1])]
        for q, a in asked.get("colour", []):
            assert any(q == f"what colour is the {o.shape}?" and a == o.colour for o in objs)
        for q, a in asked.get("shape", []):
            assert any(q == f"what shape is the {o.colour} object?" and a == o.shape for o in objs)
        for q, a in asked.get("relation", []):
            r = q.split(f"{objs[0].shape} ", 1)[1].split(" the ", 1)[0]
            assert (a == "yes") == (r in scene.relations)
            relation_answers[a] += 1
        types.update(asked)
    assert set(types) == {"colour", "shape", "size", "count", "relation"}
    assert 0.35 < relation_answers["yes"] / sum(relation_answers.values()) < 0.65  # a blind "yes" is a coin
    items = shape_items("val", 10, 0, 2, (32, 32))
    assert len(items) == 20 and len({it.qtype for it in items[:2]}) == 2  # two types a scene
    assert all(it.image_key.startswith("val/") and len(it.answers) == AGREEING for it in items)
    held = {c for i in range(10) for c in shapes.make_scene(i, "val").combinations}
    assert held <= shapes.HELD_OUT  # the captions' held-out compositions


def test_a_question_is_a_prompt_then_the_answer_is_the_loss(text_tokenizer) -> None:
    picture = np.zeros((16, 16, 3), np.uint8)
    seq = answer_sequence(picture, "what colour is it?", "red", CFG, text_tokenizer)
    prompt = question_prompt_sequence(picture, "what colour is it?", CFG, text_tokenizer)
    n = len(prompt)
    assert np.array_equal(seq.tokens[:n], prompt.tokens) and not seq.targets[:n].any()
    answer = text_tokenizer.encode("red")
    assert list(seq.tokens[n:]) == [*answer, CFG.special_id("<|eos|>")] and seq.targets[n:].all()
    assert prompt.tokens[-1] == CFG.special_id("<|sep|>")
    assert (prompt.tokens == CFG.special_id("<|caption|>")).sum() == 1


def test_the_question_env_scores_an_answer_by_vqa_accuracy() -> None:
    items = shape_items("val", 4, 0, 1, (32, 32))
    env = QuestionEnv(items)
    obs, info = env.reset(seed=5)
    it = items[5 % len(items)]
    assert obs["question"] == it.question and obs["image"].shape == (32, 32, 3) and info["key"] == it.key
    _, reward, done, _, info = env.step(it.answers[0].upper())
    assert reward == 1.0 and done and info["exact_match"] and info["type"] == it.qtype
    env.reset(seed=5)
    assert env.step("purple banana")[1] == 0.0


def _prepare(tmp: Path, sources: dict, block_size: int = 64) -> subprocess.CompletedProcess:
    cfg = {"model": {"name": "tiny", "n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": block_size,
                     "text_vocab_size": 300},
           "data": {"root": str(tmp / "data"), "workers": 1, "sources": sources}}
    (tmp / "c.yaml").write_text(yaml.safe_dump(cfg))
    return subprocess.run([EXE, "prepare", "--config", str(tmp / "c.yaml"), "--no-progress"],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case", ["long question", "not an image", "no answers", "outside the folder"])
def test_bad_vqa_input_is_one_line_and_exit_2_with_nothing_written(tmp_path, case) -> None:
    folder = tmp_path / "qa"
    _images(folder, ["a.png", "b.png"])
    rows = [{"image": "a.png", "question": "what is it?", "answers": ["dark"]},
            {"image": "b.png", "question": "what is it?", "answers": ["light"]}]
    want = {"long question": "block_size is 64", "not an image": "cannot read image",
            "no answers": "'answers' must be a non-empty list", "outside the folder": "points outside"}[case]
    if case == "long question":
        rows[1]["question"] = " ".join(["why"] * 200) + "?"
    elif case == "not an image":
        (folder / "b.png").write_text("not a picture")
    elif case == "no answers":
        rows[1]["answers"] = []
    else:
        rows[1]["image"] = "../elsewhere.png"
    (folder / "vqa.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    r = _prepare(tmp_path, {"mine": {"kind": "vqa", "path": str(folder / "vqa.jsonl")}})
    assert r.returncode == 2, r.stderr
    assert want in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    shards = tmp_path / "data" / "shards"
    assert not shards.exists() or not any(shards.rglob("*.npy"))


def test_a_vqa_source_needs_its_files() -> None:
    with pytest.raises(Exception, match="needs 'path'"):
        source_of("mine", "vqa", {"questions": "q.json"}).check()
    with pytest.raises(FileFormatError, match="not found"):
        source_of("mine", "vqa", {"path": "/nowhere/vqa.jsonl"}).check()
    with pytest.raises(Exception, match="per_scene must be 1 to 5"):
        source_of("vqa-shapes", "vqa-shapes", {"per_scene": 9}).check()
