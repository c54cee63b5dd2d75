"""gato-mini from Python (`gato_mini.load`): each call gives what the matching command gives."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gato_mini
from gato_mini.collect import Recording, run_episodes
from gato_mini.config import GatoConfig
from gato_mini.envs.caption import caption_items
from gato_mini.envs.registry import get_task
from gato_mini.errors import FileFormatError, GatoError
from gato_mini.model.export import export_model
from tests._models import loud_model

EXE = shutil.which("gato-mini") or str(Path(sys.executable).parent / "gato-mini")
CFG = GatoConfig.from_name("tiny", n_layer=2, n_embd=64, n_head=4, block_size=256, text_vocab_size=400)
SHAPES = {"count": 20, "val_count": 6, "seed": 0}
VQA = {"count": 20, "val_count": 6, "seed": 0, "per_scene": 2}


@pytest.fixture(scope="module")
def folder(tmp_path_factory, text_tokenizer) -> Path:
    """A model of loud weights (its outputs read its inputs) trained on a control task, captions and chat."""
    tmp = tmp_path_factory.mktemp("apimodel")
    torch.manual_seed(0)
    text_tokenizer.save(tmp / "tok.json")
    run_episodes("control-pendulum", Recording("expert", 2, seed=0, max_steps=30), out=tmp / "eps",
                 progress=False)
    fields, action = get_task("control-pendulum").fields()
    (tmp / "chats.jsonl").write_text("\n".join(json.dumps({"messages": [
        {"role": "user", "content": f"hi {k}"}, {"role": "assistant", "content": f"hello fox {k}"}]})
        for k in range(8)) + "\n")
    sources = {"sources": {
        "control-pendulum": {"kind": "episodes", "fields": {
            "observation": {k: f.to_dict() for k, f in fields.items()}, "action": action.to_dict()},
            "options": {"dataset": str(tmp / "eps" / "control-pendulum" / "expert-v0")}, "val_fraction": 0.5},
        "caption-shapes": {"kind": "caption-shapes", "options": SHAPES, "val_fraction": 0.05},
        "vqa-shapes": {"kind": "vqa-shapes", "options": VQA, "val_fraction": 0.05},
        "chats": {"kind": "chat-jsonl", "options": {"path": str(tmp / "chats.jsonl")}, "val_fraction": 0.5}}}
    export_model(tmp / "model", loud_model(CFG, std=0.15), tmp / "tok.json", sources)
    for it in caption_items("caption-shapes", SHAPES)[:3]:
        Image.fromarray(it.load()).save(tmp / f"{it.key.replace('/', '-')}.png")
    return tmp


def _cli(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300, input=stdin, cwd=cwd)


def test_load_says_what_the_model_learned_and_refuses_a_folder_that_is_not_one(folder: Path) -> None:
    gato = gato_mini.load(folder / "model")
    assert gato.sources == ["control-pendulum", "caption-shapes", "vqa-shapes", "chats"]
    assert [gato.entry(s) for s in gato.sources] == ["agent", "caption", "ask", "chat"]
    assert gato_mini.Gato is type(gato)
    with pytest.raises(FileFormatError, match="lacks config.json"):
        gato_mini.load(folder)
    with pytest.raises(AttributeError):
        gato_mini.no_such_thing  # noqa: B018


def test_caption_is_the_caption_commands(folder: Path) -> None:
    gato = gato_mini.load(folder / "model")
    images = sorted(folder.glob("*.png"))
    r = subprocess.run([EXE, "caption", "--model", str(folder / "model"), *map(str, images)],
                       capture_output=True, timeout=300)  # bytes: a caption may hold a \r
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    starts = [out.index(f"{p}: ") for p in images] + [len(out)]
    printed = [out[a + len(f"{p}: "):b - 1] for p, a, b in zip(images, starts, starts[1:], strict=False)]
    ours = [gato.caption(p) for p in images]
    assert ours == printed and len(set(ours)) >= 2, ours  # loud weights: the captions read the images
    pixels = np.asarray(Image.open(images[0]).convert("RGB"))
    assert gato.caption(pixels) == ours[0]  # an array is fitted as a file is
    with pytest.raises(GatoError, match=r"an image is a uint8 array \(height, width, 3\)"):
        gato.caption(pixels.astype(np.float32))


def test_ask_is_the_ask_command(folder: Path) -> None:
    gato = gato_mini.load(folder / "model")
    images = sorted(folder.glob("*.png"))
    questions = ["what colour is the circle?", "how many shapes are there?"]
    ours, printed = [], []
    for picture, question in zip(images, questions, strict=False):
        r = subprocess.run([EXE, "ask", "--model", str(folder / "model"), str(picture), question],
                           capture_output=True, timeout=300)
        assert r.returncode == 0, r.stderr
        printed.append(r.stdout.decode()[:-1])
        ours.append(gato.ask(picture, question))
    assert ours == printed and len(set(ours)) == 2, (ours, printed)  # loud weights: answers read their input
    pixels = np.asarray(Image.open(images[0]).convert("RGB"))
    assert gato.ask(pixels, questions[0]) == ours[0]  # an array is fitted as a file is
    with pytest.raises(GatoError, match="the question is empty"):
        gato.ask(pixels, "  ")
    bad = _cli("ask", "--model", str(folder / "model"), str(folder / "none.png"), "why?")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "image not found" in bad.stderr


def test_a_visual_question_source_is_evaluated_as_eval_evaluates_it(folder: Path) -> None:
    gato = gato_mini.load(folder / "model")
    summary = gato.evaluate("vqa-shapes", episodes=4).summary()
    out = folder / "vqa-eval.json"
    r = _cli("eval", "--model", str(folder / "model"), "--source", "vqa-shapes", "--episodes", "4",
             "--no-progress", "--out", str(out))
    assert r.returncode == 0, r.stderr
    theirs = json.loads(out.read_text())["sources"][0]
    assert theirs["evaluation"] == summary["evaluation"] == "vqa"
    assert [e["info"]["answer"] for e in theirs["per_episode"]] == \
        [e["info"]["answer"] for e in summary["per_episode"]]
    assert summary["questions"] == 4 and sum(t["questions"] for t in summary["by_type"].values()) == 4
    assert 0 <= summary["vqa_accuracy"] <= 1 and summary["random"] is not None and summary["expert"] == 1.0
    assert "VQA accuracy" in r.stdout


def test_chat_is_the_chat_commands_and_keeps_the_conversation(folder: Path) -> None:
    gato = gato_mini.load(folder / "model")
    r = _cli("chat", "--model", str(folder / "model"), "--max-tokens", "12", stdin="hi 1\nhello again\n")
    assert r.returncode == 0, r.stderr
    want = [line.replace("\\n", "\n").replace("\\\\", "\\") for line in r.stdout.split("\n")[:-1]]
    assert [gato.chat("hi 1", max_tokens=12), gato.chat("hello again", max_tokens=12)] == want
    assert gato.chat("hi 1", max_tokens=12, reset=True) == want[0]  # a new conversation
    with pytest.raises(GatoError, match="empty message"):
        gato.chat("  ")


def test_evaluate_and_agent_play_what_eval_plays(folder: Path, monkeypatch) -> None:
    monkeypatch.chdir(folder)
    gato = gato_mini.load(folder / "model")
    report = gato.evaluate("control-pendulum", episodes=2, max_steps=20)
    out = folder / "eval.json"
    r = _cli("eval", "--model", str(folder / "model"), "--source", "control-pendulum", "--episodes", "2",
             "--max-steps", "20", "--no-progress", "--out", str(out), cwd=folder)
    assert r.returncode == 0, r.stderr
    summary = json.loads(out.read_text())["sources"][0]
    assert [e["ret"] for e in summary["per_episode"]] == pytest.approx(report.returns, rel=1e-5)
    assert report.summary()["normalized_mean"] == pytest.approx(summary["normalized_mean"], rel=1e-5)
    # the agent, stepped by hand from the first evaluation seed, plays the first episode
    agent, env = gato.agent("control-pendulum")
    obs, _ = env.reset(seed=1000)
    agent.reset(0)
    total = 0.0
    for _ in range(20):
        obs, reward, *_ = env.step(agent.act({0: obs})[0])
        total += float(reward)
    assert total == pytest.approx(report.returns[0], rel=1e-5)
    with pytest.raises(GatoError, match="caption-shapes is not a control source"):
        gato.agent("caption-shapes")
