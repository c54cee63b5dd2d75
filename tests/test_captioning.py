"""Captioning as an environment, caption metrics, and held-out perplexity in `gato-mini eval`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from PIL import Image
from torchmetrics.functional.text import bleu_score

from gato_mini.agent.agent import Agent, AgentOptions
from gato_mini.agent.eval_captions import caption_image_size
from gato_mini.agent.evaluate import EvalOptions, evaluate_source
from gato_mini.agent.rollout import run_agent
from gato_mini.collect import Recording, run_episodes
from gato_mini.config import GatoConfig
from gato_mini.data import shapes
from gato_mini.data.sequence import caption_prompt_sequence
from gato_mini.data.shapes import ATTRIBUTES, HELD_OUT, parse_caption, score_attributes
from gato_mini.data.sources import SourceConfig, make_source, source_of
from gato_mini.envs.caption import CaptionEnv, caption_items, exact_match, score_captions, sentence_bleu
from gato_mini.envs.registry import get_task
from gato_mini.errors import GatoError
from gato_mini.fields import FieldSpec, observation_fields
from gato_mini.model import GatoModel
from gato_mini.model.export import export_model, load_model
from gato_mini.model.generate import Sampling
from gato_mini.references import measure_reference
from gato_mini.tokenizers.text import TextTokenizer
from tests._models import LogitLog, assert_same_logits, loud_model

EXE = shutil.which("gato-mini") or str(Path(sys.executable).parent / "gato-mini")
CFG = GatoConfig.from_name("tiny", n_layer=2, n_embd=64, n_head=4, block_size=128, text_vocab_size=400)
SHAPES = {"count": 20, "val_count": 6, "seed": 0}


def test_caption_envs_pass_the_gymnasium_checker() -> None:
    for task in ("caption-shapes", "caption-digits"):
        env = get_task(task).make()
        check_env(env.unwrapped)
        obs, info = env.reset(seed=7)
        assert obs["image"].dtype == np.uint8 and info["index"] == 7 % len(env.unwrapped.items)
        _, reward, terminated, _, info = env.step(env.unwrapped.references[0])
        assert reward == 1.0 and terminated and info["exact_match"]
    fields, action = get_task("caption-shapes").fields()
    assert fields == {"image": FieldSpec("image", (64, 64, 3))} and action.modality == "text"


def test_shapes_references_are_both_wordings() -> None:
    items = caption_items("caption-shapes", SHAPES)
    two = [it for it in items if len(it.references) == 2]
    assert two, "some held-out scenes hold two objects"
    for it in two:
        a, b = it.references
        assert a != b and set(parse_caption(a)) == set(parse_caption(b))  # the same scene said two ways
        assert exact_match(b.upper() + "  ", it.references)


def test_shapes_references_hold_every_true_relation() -> None:
    # Objects split across both axes' halves make two relations true: each is a right caption.
    scenes = [shapes.make_scene(i, "val", 0) for i in range(200)]
    both = [s for s in scenes if len(s.references) == 4]
    assert 10 <= len(both) <= 45, len(both)  # about one two-object scene in eight
    for s in both:
        assert s.caption == s.references[0]
        relations = {shapes.read_caption(r)[1] for r in s.references}
        assert len(relations) == 4 and {frozenset(parse_caption(r)) for r in s.references[:2]} == \
            {frozenset(parse_caption(s.caption))}
        assert score_attributes([s.references[2]], [list(s.references)])["relation"] == 1.0
        assert exact_match(s.references[3], s.references)
    axis = {"above": 0, "below": 0, "left of": 1, "right of": 1}
    for s in both:  # the two true relations lie on different axes
        first, other = (shapes.read_caption(s.references[k])[1] for k in (0, 2))
        assert axis[first] != axis[other]


def test_shapes_image_size_resizes_training_and_eval_alike() -> None:
    # The scenes are drawn at 64x64; image_size fits them, in the training shards and when eval asks.
    source = source_of("caption-shapes", "caption-shapes", {**SHAPES, "image_size": 32})
    assert source.image_size() == (32, 32)
    entry = {"kind": "caption-shapes", "options": {**SHAPES, "image_size": 32}}
    assert caption_image_size({"sources": {"caption-shapes": entry}}) == ((32, 32), None)
    tok = TextTokenizer.train(["a small red circle above a large blue square"], vocab_size=300)
    key, unit = next(source.units("val", CFG, tok, 0.05, Counter()))
    assert key == "val/0" and len(unit.patches) == 4  # a 2x2 grid of 16-pixel patches
    scene = shapes.make_scene(0, "val", 0)
    assert np.array_equal(unit.patches, caption_prompt_sequence(scene.image, CFG, (32, 32)).patches)
    held_out = caption_items("caption-shapes", {**SHAPES, "image_size": 32})  # what eval captions
    assert held_out[0].load().shape == (32, 32, 3) and held_out[0].references == scene.references
    assert np.array_equal(caption_prompt_sequence(held_out[0].load(), CFG).patches, unit.patches)
    default = source_of("caption-shapes", "caption-shapes", SHAPES)
    assert len(next(default.units("val", CFG, tok, 0.05, Counter()))[1].patches) == 16  # 64x64, as drawn


@pytest.mark.parametrize("size", [0, -3, "big", [32], [32, 0], True, 32.5])
def test_a_bad_caption_image_size_is_one_line_before_any_work(size) -> None:
    for kind in ("caption-shapes", "caption-digits"):
        with pytest.raises(GatoError, match="image_size must be a positive int or \\[height, width\\], got"):
            source_of(kind, kind, {"image_size": size}).check()


def test_caption_scores() -> None:
    # Where every n-gram order matches, our smoothed sentence BLEU is torchmetrics' smoothed BLEU.
    hyp = "a small red circle above a large blue square"
    refs = ["a small red circle above a small blue square"]
    assert sentence_bleu(hyp, refs) == pytest.approx(float(bleu_score([hyp], [refs], n_gram=4, smooth=True)))
    # torchmetrics gives 0 when an order has no match; ours stays informative, and below a match.
    partial = sentence_bleu("a small red circle", ["a small green circle"])
    assert 0 < partial < sentence_bleu("a small green circle", ["a small green circle"]) == 1.0
    assert sentence_bleu("", ["a circle"]) == 0.0
    m = score_captions(["a red circle", "A  blue square ", "nope"],
                       [["a red circle"], ["a blue square", "x"], ["a green disc"]])
    assert m["exact_match"] == pytest.approx(2 / 3)
    assert m["bleu4"] == pytest.approx(float(bleu_score(["a red circle", "a blue square", "nope"],
                                                        [["a red circle"], ["a blue square", "x"],
                                                         ["a green disc"]], n_gram=4)))


SCENE = ["a large white square below a small green triangle",
         "a small green triangle above a large white square"]


def test_attribute_scores_name_the_part_of_a_caption_that_is_wrong() -> None:
    def score(caption: str, refs: list[str] = SCENE) -> dict:
        return score_attributes([caption], [refs])

    right = score("a small green triangle above a large white square")  # the other wording: all right
    assert all(right[a] == 1.0 for a in ATTRIBUTES), right
    colour = score("a large green square below a small green triangle")  # the first colour copied
    assert colour["colour"] == 0.5 and colour["shape"] == colour["size"] == colour["relation"] == 1.0
    assert colour["by_object"]["first"]["colour"] == 0.0 and colour["by_object"]["second"]["colour"] == 1.0
    assert colour["object"] == 0.5 and colour["count"] == 1.0
    swapped = score("a large white square above a small green triangle")  # the relation turned round
    assert swapped["relation"] == 0.0 and swapped["colour"] == swapped["shape"] == swapped["object"] == 1.0
    missing = score("a large white square")  # one object of two
    assert missing["count"] == 0.0 and missing["relation"] == 0.0 and missing["object"] == 0.5
    assert missing["by_object"]["second"] == {"size": 0.0, "colour": 0.0, "shape": 0.0}
    extra = score("a small purple circle right of a small purple circle", ["a small purple circle"])
    assert extra["count"] == 0.0 and extra["object"] == 1.0
    assert extra["relation"] is None  # a one-object scene has no relation to get
    assert extra["two_object_scenes"] == 0 and "second" not in extra["by_object"]
    broken = score("small blue", ["a small blue circle"])  # no object opened: nothing right but nothing lost
    assert broken["count"] == broken["colour"] == 0.0
    both = score_attributes(["a large green square below a small green triangle", "a small purple circle"],
                            [SCENE, ["a small red circle"]])  # rates pool the objects of every scene
    assert both["colour"] == pytest.approx(1 / 3) and both["shape"] == 1.0 and both["scenes"] == 2
    # An object said as a (shape, colour, relation) the training scenes use: wrong on any held-out scene
    held = next(c for c in sorted(HELD_OUT) if c[2] == "alone")
    seen = next((s, c, "alone") for s in shapes.SHAPES for c in shapes.COLOURS
                if (s, c, "alone") not in HELD_OUT)
    said = [f"a small {held[1]} {held[0]}", f"a small {seen[1]} {seen[0]}", "small"]
    assert score_attributes(said, [[said[0]]] * 3)["seen_combination"] == 0.5  # of the two well-formed
    # Only a kind whose captions have a grammar is read by attribute; a folder's captions are not.
    assert make_source(SourceConfig("mine", "caption-folder", 1.0, {"path": "."})).score_attributes(
        ["a cat"], [["a dog"]]) is None


def test_caption_references_and_collect(tmp_path: Path) -> None:
    expert = measure_reference("caption-shapes", "expert", 6, seed=0, progress=False)
    chance = measure_reference("caption-shapes", "random", 20, seed=0, progress=False)
    assert expert.mean == 1.0 and 0 < chance.mean < 0.6
    with pytest.raises(GatoError, match="captioning task: there are no episodes to record"):
        run_episodes("caption-shapes", Recording("expert", 1), out=tmp_path, progress=False)


def test_a_folder_caption_env_groups_captions_by_image(tmp_path: Path) -> None:
    rows = []
    for k in range(6):
        Image.fromarray(np.full((20, 30, 3), 40 * k, np.uint8)).save(tmp_path / f"{k}.png")
        rows.append(json.dumps({"file_name": f"{k}.png", "text": [f"shade {k}", f"grey {k}"]}))
    (tmp_path / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    items = caption_items("caption-folder", {"path": str(tmp_path), "image_size": [32, 32]}, "val", 0.5)
    assert items and all(len(it.references) == 2 for it in items)
    env = CaptionEnv(items)
    check_env(env)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (32, 32, 3)


@pytest.fixture(scope="module")
def caption_model(tmp_path_factory, text_tokenizer) -> Path:
    tmp = tmp_path_factory.mktemp("capmodel")
    torch.manual_seed(0)
    text_tokenizer.save(tmp / "tok.json")
    notes = tmp / "notes"
    notes.mkdir()
    for k in range(8):
        (notes / f"{k}.txt").write_text(f"note {k}: the quick brown fox jumps over the lazy dog. " * (k + 1))
    (tmp / "chats.jsonl").write_text("\n".join(json.dumps({"messages": [
        {"role": "user", "content": f"hi {k}"}, {"role": "assistant", "content": f"hello fox {k}"}]})
        for k in range(8)) + "\n")
    tasks = {"sources": {
        "caption-shapes": {"kind": "caption-shapes", "options": SHAPES, "val_fraction": 0.05},
        "notes": {"kind": "text", "options": {"path": str(notes)}, "val_fraction": 0.5},
        "chats": {"kind": "chat-jsonl", "options": {"path": str(tmp / "chats.jsonl")}, "val_fraction": 0.5}}}
    export_model(tmp / "model", GatoModel(CFG), tmp / "tok.json", tasks)
    export_model(tmp / "loud", loud_model(CFG, std=0.15), tmp / "tok.json", tasks)  # its captions differ
    for it in caption_items("caption-shapes", SHAPES):
        Image.fromarray(it.load()).save(tmp / f"{it.key.replace('/', '-')}.png")
    return tmp


def test_agent_rollout_captions_equal_the_caption_command(caption_model: Path) -> None:
    model, tok, tasks = load_model(caption_model / "loud")
    items = caption_items("caption-shapes", SHAPES)
    envs = [CaptionEnv(items) for _ in range(4)]
    fields = observation_fields(envs[0].observation_space)
    runs, logs = {}, {}
    for cache in (True, False):
        agent = Agent(model, fields, FieldSpec("text", ()), 4, tok,
                      options=AgentOptions(Sampling(max_tokens=20, seed=0), use_cache=cache))
        with LogitLog.recording() as logs[cache]:
            results = run_agent(agent, envs, 6, seed=0, keep_actions=True)
        runs[cache] = [r.info["caption"] for r in results]
        assert [r.actions[0] for r in results] == runs[cache]
    assert runs[True] == runs[False]
    assert_same_logits(logs[True], logs[False])
    assert len(set(runs[True])) >= 3, runs[True]  # the captions read the images
    images = [str(caption_model / f"val-{k}.png") for k in range(6)]
    r = subprocess.run([EXE, "caption", "--model", str(caption_model / "loud"), *images,
                        "--max-tokens", "20"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")[:-1]  # not splitlines(): a caption may hold \x1c, a line break to it
    printed = [line.split(": ", 1)[1] if ": " in line else "" for line in lines]
    assert printed == runs[True]


def test_eval_captions_and_perplexity_through_the_command(caption_model: Path) -> None:
    out = caption_model / "eval.json"
    r = subprocess.run([EXE, "eval", "--model", str(caption_model / "model"), "--task", "caption-shapes",
                        "--task", "notes", "--task", "chats", "--out", str(out), "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "exact match" in r.stdout and "perplexity" in r.stdout
    report = {t["source"]: t for t in json.loads(out.read_text())["sources"]}
    cap = report["caption-shapes"]
    assert cap["episodes"] == 6 and cap["images"] == 6  # every held-out image by default
    assert 0 <= cap["exact_match"] <= 1 and 0 <= cap["bleu4"] <= 1
    attributes = cap["attributes"]  # caption-shapes is read by attribute too
    assert set(ATTRIBUTES) <= set(attributes) and attributes["scenes"] == 6
    assert all(attributes[a] is None or 0 <= attributes[a] <= 1 for a in ATTRIBUTES)
    assert cap["normalized_mean"] is not None  # against the stored chance and expert references
    grid = Path(cap["samples"])
    assert grid.is_file() and Image.open(grid).size[0] > 0
    model, tok, _ = load_model(caption_model / "model")
    for name, kind, path in (("notes", "text", caption_model / "notes"),
                             ("chats", "chat-jsonl", caption_model / "chats.jsonl")):
        ppl = report[name]
        source = make_source(SourceConfig(name, kind, 1.0, {"path": str(path)}))
        units = source.units("val", CFG, tok, 0.5, Counter())
        targets = sum(int(seq.targets[1:].sum()) for _, seq in units)
        assert ppl["tokens"] == targets > 0  # exactly the held-out tokens training puts a loss on
        assert 1 < ppl["perplexity"] < 10 * CFG.vocab_size


def test_eval_perplexity_matches_a_hand_computed_loss(caption_model: Path) -> None:
    model, tok, tasks = load_model(caption_model / "model")
    report = evaluate_source(model, tok, tasks, "notes", EvalOptions(0, 1, seed=0))
    units = list(make_source(SourceConfig("notes", "text", 1.0, {"path": str(caption_model / "notes")}))
                 .units("val", CFG, tok, 0.5, Counter()))
    nll, n, n_bytes = 0.0, 0, 0
    for _, seq in units:
        text_ids = seq.tokens[1:][seq.targets[1:]]
        text_ids = text_ids[text_ids < tok.n_text]
        n_bytes += len(tok.decode(text_ids.tolist()).encode("utf-8"))  # the scored text, as bytes
        for a in range(0, len(seq) - 1, CFG.block_size - 1):
            t = torch.as_tensor(seq.tokens[a:a + CFG.block_size], dtype=torch.long)[None]
            with torch.no_grad():
                logits = model.logits(t, torch.full_like(t, -1))
            logp = torch.log_softmax(logits[0, :-1].float(), -1)
            keep = torch.as_tensor(seq.targets[a + 1:a + t.shape[1]])
            nll -= float(logp[torch.arange(t.shape[1] - 1), t[0, 1:]][keep].sum())
            n += int(keep.sum())
    assert report.extra["perplexity"] == pytest.approx(np.exp(nll / n), rel=1e-4)
    assert report.extra["bytes"] == n_bytes > 0
    assert report.extra["bits_per_byte"] == pytest.approx(nll / np.log(2) / n_bytes, rel=1e-4)


def test_the_caption_command_fits_images_to_the_size_the_model_trained_at(tmp_path: Path, text_tokenizer,
                                                                         monkeypatch, capsys) -> None:
    from gato_mini.cli import main
    from gato_mini.data import captions

    text_tokenizer.save(tmp_path / "tok.json")
    Image.fromarray(np.zeros((50, 70, 3), np.uint8)).save(tmp_path / "x.png")
    seen = []
    real = captions.load_image
    monkeypatch.setattr(captions, "load_image", lambda path, size: seen.append(size) or real(path, size))

    def run(sources, *extra):
        export_model(tmp_path / "m", GatoModel(CFG), tmp_path / "tok.json", {"sources": sources})
        return main(["caption", "--model", str(tmp_path / "m"), str(tmp_path / "x.png"), "--max-tokens", "2",
                     *extra])

    assert run({"caption-digits": {"kind": "caption-digits", "options": {"image_size": 32}}}) == 0
    assert run({"caption-shapes": {"kind": "caption-shapes", "options": SHAPES}}) == 0
    assert run({"caption-digits": {"kind": "caption-digits", "options": {}}}, "--image-size", "40") == 0
    assert seen == [(32, 32), (64, 64), (40, 40)]
    two = {"caption-digits": {"kind": "caption-digits", "options": {"image_size": 32}},
           "caption-shapes": {"kind": "caption-shapes", "options": SHAPES}}
    capsys.readouterr()
    assert run(two) == 0 and seen[-1] == (64, 64)  # the largest, and a note saying so
    assert "captioning at 64x64, the size caption-shapes trained at (caption-digits at 32x32; --image-size " \
           "chooses)" in capsys.readouterr().err
