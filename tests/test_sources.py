"""Sources: caption-shapes and its held-out split, caption folders, text and chat readers, bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from gato_mini.data import captions, corpora, shapes
from gato_mini.data.datacfg import load_data_config, parse_data_config
from gato_mini.data.sources import source_of
from gato_mini.errors import ConfigError, FileFormatError

# --- caption-shapes ------------------------------------------------------------------


def test_shapes_are_deterministic_and_vary() -> None:
    a, b = shapes.make_scene(3, "train", seed=1), shapes.make_scene(3, "train", seed=1)
    assert np.array_equal(a.image, b.image) and a.caption == b.caption
    caps = {shapes.make_scene(i, "train", seed=1).caption for i in range(200)}
    assert len(caps) > 150
    assert not np.array_equal(shapes.make_scene(3, "train", seed=2).image, a.image)


def test_held_out_split_shares_no_combination_with_training() -> None:
    train = [c for i in range(3000) for c in shapes.make_scene(i, "train").combinations]
    val = [c for i in range(600) for c in shapes.make_scene(i, "val").combinations]
    assert set(train).isdisjoint(set(val))
    assert set(val) <= shapes.HELD_OUT
    # both splits still use every shape, colour and relation
    for split in (train, val):
        assert {c[0] for c in split} == set(shapes.SHAPES)
        assert {c[1] for c in split} == set(shapes.COLOURS)
        assert {c[2] for c in split} == set(shapes.RELATIONS)


def test_captions_describe_the_scene() -> None:
    for i in range(100):
        scene = shapes.make_scene(i, "val")
        assert sorted(shapes.parse_caption(scene.caption)) == sorted(scene.combinations)
        assert scene.caption.startswith("a ")
        # every named colour is drawn: its pixels are present
        for _, colour, _ in scene.combinations:
            rgb = np.array(shapes.COLOURS[colour])
            assert np.any(np.all(scene.image == rgb, axis=-1))


# --- caption folders ------------------------------------------------------------------


def _folder(tmp_path: Path, lines: list[str], images: dict[str, str] | None = None) -> Path:
    folder = tmp_path / "caps"
    folder.mkdir(exist_ok=True)
    for name, colour in (images or {"a.png": "red", "b.jpg": "blue"}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 20), colour).save(folder / name)
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_caption_folder_reads_several_captions(tmp_path: Path) -> None:
    folder = _folder(tmp_path, [json.dumps({"file_name": "a.png", "text": ["red one", "a red box"]}), "",
                                json.dumps({"file_name": "b.jpg", "text": "blue"}),
                                json.dumps({"file_name": "a.png", "text": "  "})])
    skips: Counter = Counter()
    entries = list(captions.read_caption_metadata(folder, skips))
    assert [(e.key, e.caption) for e in entries] == [("a.png#0", "red one"), ("a.png#1", "a red box"),
                                                    ("b.jpg#0", "blue")]
    assert skips == {"empty caption": 1}
    img = captions.load_image(entries[0].image_path, (32, 32))
    assert img.shape == (32, 32, 3)
    # 40x20 fits as 32x16 (aspect kept), black below: never cropped
    assert np.all(img[:16, :, 0] > 200) and np.all(img[17:] == 0)


@pytest.mark.parametrize("line, message", [
    ("{not json", r"metadata.jsonl:2: not valid JSON"),
    (json.dumps({"file_name": "a.png"}), r"metadata.jsonl:2: each line needs"),
    (json.dumps({"file_name": "gone.png", "text": "x"}), r"metadata.jsonl:2: image gone.png not found"),
    (json.dumps({"file_name": "../../../etc/passwd", "text": "x"}), r"metadata.jsonl:2: .* points outside"),
    (json.dumps({"file_name": "/etc/passwd", "text": "x"}), r"metadata.jsonl:2: .* points outside"),
    (json.dumps({"file_name": "link.png", "text": "x"}), r"metadata.jsonl:2: .* points outside"),
])
def test_caption_folder_bad_lines(tmp_path: Path, line: str, message: str) -> None:
    folder = _folder(tmp_path, [json.dumps({"file_name": "a.png", "text": "ok"}), line])
    outside = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(outside)
    (folder / "link.png").symlink_to(outside)  # a symlink out of the folder is refused too
    with pytest.raises(FileFormatError, match=message):
        list(captions.read_caption_metadata(folder))


def test_unreadable_image_names_file_and_line(tmp_path: Path) -> None:
    folder = _folder(tmp_path, [json.dumps({"file_name": "bad.png", "text": "x"})])
    (folder / "bad.png").write_bytes(b"not a png at all")
    (entry,) = captions.read_caption_metadata(folder)
    with pytest.raises(FileFormatError, match=r"metadata.jsonl:1: cannot read image .*bad.png"):
        captions.load_image(entry.image_path, (32, 32), entry.where)


def test_digits_are_named() -> None:
    first = list(zip(range(3), captions.digit_captions(32), strict=False))
    key, img, text = first[0][1]
    assert img.shape == (32, 32) and img.dtype == np.uint8 and img.max() > 200
    assert text == "a handwritten digit zero"


# --- text and chat ----------------------------------------------------------------


def test_pydoc_has_topics_and_docstrings() -> None:
    docs = list(corpora.pydoc_documents(docstrings=True, max_modules=5))
    keys = [k for k, _ in docs]
    assert any(k.startswith("topic/") for k in keys) and any(k.startswith("module/") for k in keys)
    assert all(text.strip() for _, text in docs)
    assert len([k for k in keys if k.startswith("topic/")]) > 50


def test_chatterbot_dialogues_alternate_roles() -> None:
    convs = list(corpora.chatterbot_conversations())
    assert len(convs) > 1000
    for _, msgs in convs[:50]:
        assert [m["role"] for m in msgs] == [("user", "assistant")[k % 2] for k in range(len(msgs))]


def test_chat_jsonl(tmp_path: Path) -> None:
    f = tmp_path / "chats.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    lonely = {"messages": [{"role": "user", "content": "?"}]}
    f.write_text(json.dumps(good) + "\n" + json.dumps(lonely) + "\n")
    skips: Counter = Counter()
    assert list(corpora.read_chat_jsonl(f, skips)) == [("chats.jsonl:1", good["messages"])]
    assert skips == {"conversation without an assistant turn": 1}
    f.write_text(json.dumps(good) + "\n" + json.dumps({"messages": [{"role": "robot", "content": "x"}]}))
    with pytest.raises(FileFormatError, match=r"chats.jsonl:2: message 0 has unknown role 'robot'"):
        list(corpora.read_chat_jsonl(f))
    f.write_text("[1, 2]\n")
    with pytest.raises(FileFormatError, match=r"chats.jsonl:1: each line needs \"messages\""):
        list(corpora.read_chat_jsonl(f))


def test_a_chat_source_keeps_each_distinct_dialogue_once(tmp_path: Path) -> None:
    """A repeated dialogue is read once (the first copy), counted as skipped, so no copy of a training
    dialogue is held out; chatterbot-corpus's repeated tech-support exchanges are read once each."""
    f = tmp_path / "chats.jsonl"
    a = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    b = {"messages": [{"role": "user", "content": "bye"}, {"role": "assistant", "content": "see you"}]}
    f.write_text("\n".join(json.dumps(x) for x in (a, b, a, a)) + "\n")
    source = source_of("mine", "chat-jsonl", {"path": str(f)})
    skips: Counter = Counter()
    assert [k for k, _ in source.chats(skips)] == ["chats.jsonl:1", "chats.jsonl:2"]
    assert skips == {"a repeat of an earlier dialogue": 2}
    bot = source_of("chat-chatterbot", "chat-chatterbot").chats(Counter())
    assert len({json.dumps(m) for _, m in bot}) == len(bot) > 800


def test_text_documents_skip_empty_ones(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("alpha")
    (tmp_path / "docs" / "empty.md").write_text("  \n")
    (tmp_path / "docs" / "ignored.bin").write_bytes(b"\x00")
    skips: Counter = Counter()
    assert list(corpora.read_text_documents(tmp_path / "docs", skips)) == [("a.txt", "alpha")]
    assert skips == {"empty document": 1}
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(FileFormatError, match="bad.txt: not UTF-8"):
        list(corpora.read_text_documents(tmp_path / "bad.txt"))


# --- the data config ------------------------------------------------------------------


@pytest.mark.parametrize("sources, message", [
    ({"atari-pongg": {}}, "unknown source 'atari-pongg'.*did you mean 'atari-pong'"),
    ({"caption-shapes": {"weight": -1}}, "source .caption-shapes.: weight must be at least 0, got -1"),
    ({"caption-shapes": {"count": "many"}}, "caption-shapes.: .count. must be at least 0 .*got .many."),
    ({"caption-shapes": {"weight": 0}, "text-pydoc": {"weight": 0}}, "weights are all zero"),
    ({"caption-shapes": {"colour": "red"}}, "unknown option.*colour"),
    ({"mine": {"kind": "chat-jsonl"}}, "needs 'path'"),
    ({"mine": {"kind": "video"}}, "unknown kind 'video'"),
    ({"caption-shapes": {"weight": "lots"}}, "weight must be at least 0, got .lots."),
    ({"caption-shapes": {"weight": "nan"}}, "weight must be at least 0, got nan"),
])
def test_data_config_errors(sources: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_data_config({"sources": sources})


def test_data_config_file(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("model: {name: tiny, block_size: 256}\ndata:\n  root: out\n  sources:\n"
                 "    atari-pong: {weight: 2}\n    caption-shapes: {}\n")
    data, cfg = load_data_config(f)
    assert cfg.block_size == 256 and data.root == Path("out")
    assert data.source("atari-pong").options["dataset"] == str(Path("runs/episodes/atari-pong/expert-v0"))
    assert data.weights == {"atari-pong": 2.0, "caption-shapes": 1.0}
    f.write_text("data:\n  sources: {caption-shapes: {}}\n  val_fracton: 0.1\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown data config key 'val_fracton'.*val_fraction"):
        load_data_config(f)
    f.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="c.yaml:.*not valid YAML"):
        load_data_config(f)


def test_every_config_file_parses(tmp_path: Path) -> None:
    """Every YAML in configs/ builds its data config: a data config alone, or the data section of a
    training (or quickstart) config; test_train.py builds the models of the latter."""
    from gato_mini.quickstart import load_config
    from gato_mini.train.config import load_run_config, parse_run_config

    root = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(root.glob("*.yaml"))
    kinds = []
    for f in files:
        raw = yaml.safe_load(f.read_text())
        if "model" not in raw:
            data, cfg = load_data_config(f)
            kinds.append("data")
        else:
            run = parse_run_config(load_config(f, tmp_path)[1]) if "quickstart" in raw else load_run_config(f)
            data, cfg = run.data, run.model
            kinds.append("run")
        assert data.sources and sum(data.weights.values()) > 0, f
        assert cfg.vocab_size > 0, f
    assert len(kinds) == len(files) >= 4 and {"data", "run"} <= set(kinds)


def test_text_jsonl_documents(tmp_path: Path) -> None:
    f = tmp_path / "notes.jsonl"
    f.write_text('{"text": "first"}\n\n{"text": ""}\n{"text": "third"}\n')
    skips: Counter = Counter()
    docs = list(corpora.read_text_documents(f, skips))
    assert docs == [("notes.jsonl:1", "first"), ("notes.jsonl:4", "third")]
    assert skips == {"empty document": 1}
    f.write_text('{"text": "ok"}\n{"body": "x"}\n')
    with pytest.raises(FileFormatError, match=r"notes.jsonl:2: each line needs a string \"text\""):
        list(corpora.read_text_documents(f))


def test_recipes_by_name_from_any_directory_and_one_path_rule(tmp_path: Path, monkeypatch) -> None:
    """`--config tiny` names a packaged recipe wherever the user is; every relative path in a config
    starts from the current directory, `data: NAME` included; each training config keeps its data in
    <train.out>/data (issue 19)."""
    from gato_mini.config_files import read_config_file, recipes, resolve_config
    from gato_mini.train.config import load_run_config

    monkeypatch.chdir(tmp_path)
    assert {"tiny", "small", "mixture", "language", "quickstart", "gato-79m"} <= set(recipes())
    assert all(recipes().values())  # each says what it is
    for name in ("tiny", "tiny.yaml"):
        run = load_run_config(name)
        assert run.data.root == Path("runs/tiny/data") and run.train.out == "runs/tiny"
    assert load_run_config("small").data.root == Path("runs/small/data")  # configs never share data
    assert load_data_config("mixture")[0].root == Path("runs/data")  # a data config alone
    assert load_run_config("tiny", ["--train.out", "elsewhere"]).data.root == Path("elsewhere/data")
    with pytest.raises(ConfigError, match="config file not found: tiyn.*recipes: .*did you mean 'tiny'"):
        resolve_config("tiyn")
    # a file of the user's wins over a recipe of the same name, and data: NAME follows the same rule
    (tmp_path / "mixture.yaml").write_text("sources: {caption-shapes: {count: 10}}\n")
    (tmp_path / "mine.yaml").write_text("model: tiny\ndata: mixture.yaml\n")
    assert list(read_config_file("mine.yaml")["data"]["sources"]) == ["caption-shapes"]
    (tmp_path / "mine.yaml").write_text("model: tiny\ndata: mixture\n")  # no file named so: the recipe
    assert "atari-pong" in read_config_file("mine.yaml")["data"]["sources"]
    # the trap of the old rule: a data file beside the config, not in the current directory
    sub = tmp_path / "cfg"
    sub.mkdir()
    (sub / "mine.yaml").write_text("model: tiny\ndata: my-data.yaml\n")
    (sub / "my-data.yaml").write_text("sources: {caption-shapes: {}}\n")
    with pytest.raises(ConfigError, match="read from the current directory.*cfg/my-data.yaml"):
        read_config_file(sub / "mine.yaml")
    # sources at the top of a training config: the error says where they go
    (tmp_path / "my.yaml").write_text("model: tiny\nsources: {caption-shapes: {}}\n")
    with pytest.raises(ConfigError, match="'sources' belongs under 'data:'"):
        load_run_config("my.yaml")


def test_an_unknown_kind_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"unknown kind 'chatjsonl' \(did you mean 'chat-jsonl'\?\); known"):
        parse_data_config({"sources": {"mine": {"kind": "chatjsonl", "path": "x"}}})
