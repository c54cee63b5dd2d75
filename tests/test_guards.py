"""Resource guards (issue 22): files that are well formed but absurd in content end in one line and
exit 2, before anything is allocated, decoded or written."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from gato_mini.config import GatoConfig
from gato_mini.config_files import read_yaml
from gato_mini.data.captions import MAX_IMAGE_PIXELS, load_image, read_caption_metadata
from gato_mini.data.jsonl import iter_jsonl
from gato_mini.errors import ConfigError, FileFormatError, GatoError
from gato_mini.model import GatoModel
from gato_mini.model.export import export_model, load_model
from gato_mini.model.model import available_memory, check_fits
from gato_mini.tokenizers import TextTokenizer
from tests.conftest import CORPUS

CFG = GatoConfig.from_name("tiny", n_layer=1, n_embd=32, n_head=2, block_size=32, text_vocab_size=300)
DEEP = "[" * 100_000


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (and whose data is empty)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("guards")
    tok = root / "tokenizer.json"
    TextTokenizer.train(CORPUS, vocab_size=300).save(tok)
    torch.manual_seed(0)
    return export_model(root / "model", GatoModel(CFG), tok, {"sources": {}})


def test_a_model_config_too_large_for_memory_is_refused_before_allocating(model_dir, tmp_path) -> None:
    bad = tmp_path / "model"
    bad.mkdir()
    for f in model_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    huge = {**json.loads((model_dir / "config.json").read_text()), "n_layer": 4096, "n_embd": 65536,
            "n_head": 512, "head_dim": 128}
    (bad / "config.json").write_text(json.dumps(huge))
    with pytest.raises(GatoError, match=r"4096 layers x 65536 .* GiB here; this machine has"):
        load_model(bad)
    r = subprocess.run([sys.executable, "-m", "gato_mini.cli", "caption", "--model", str(bad), "x.png"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "GiB" in r.stderr, r.stderr
    load_model(model_dir)  # a model that fits still loads


def test_the_memory_estimate_is_a_lower_bound_of_the_real_count() -> None:
    from gato_mini.model.model import count_params

    for name in ("tiny", "small", "gato-79m", "gato-1.18b"):
        cfg = GatoConfig.from_name(name)
        d = cfg.n_embd
        lower = cfg.padded_vocab_size * d + cfg.n_layer * (4 * d * d + 3 * d * cfg.intermediate_size)
        assert lower <= count_params(cfg) < 1.5 * lower, name
    assert available_memory() > 2**28
    check_fits(GatoConfig.from_name("tiny"), "tiny", copies=4)


def test_training_a_config_too_large_for_memory_stops_before_writing(tmp_path) -> None:
    from gato_mini.train.config import parse_run_config
    from gato_mini.train.run import train

    raw = {"model": {"name": "tiny", "n_layer": 2048, "n_embd": 32768, "n_head": 256},
           "data": {"root": str(tmp_path / "data"), "sources": {"text-pydoc": {"max_modules": 1}}},
           "train": {"out": str(tmp_path / "run")}, "trainer": {"max_steps": 1, "accelerator": "cpu"}}
    with pytest.raises(GatoError, match="GiB"):
        train(parse_run_config(raw), progress=False)
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


def test_an_image_header_claiming_billions_of_pixels_is_refused_before_decoding(tmp_path) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(100_000, 100_000))
    with pytest.raises(FileFormatError, match=r"bomb.png claims more than twice the 67,108,864 pixels"):
        load_image(bomb, (64, 64))
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 1
    bomb.write_bytes(_png_header(side, side))
    with pytest.raises(FileFormatError, match="shrink it first"):
        load_image(bomb, (64, 64))
    ok = tmp_path / "ok.png"
    from PIL import Image

    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(ok)
    assert load_image(ok, (32, 32)).shape == (32, 32, 3)
    # the same through a caption folder and the caption command: one line, exit 2
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "bomb.png", "text": "a bomb"}) + "\n")
    entries = list(read_caption_metadata(tmp_path))
    with pytest.raises(FileFormatError, match="claims"):
        load_image(entries[0].image_path, (64, 64), entries[0].where)


@pytest.mark.parametrize("kind", ["yaml", "config.json", "jsonl", "sources.json", "tasks.json"])
def test_json_and_yaml_nested_too_deeply_are_one_line(kind, tmp_path, model_dir) -> None:
    if kind == "yaml":
        (tmp_path / "c.yaml").write_text(DEEP)
        with pytest.raises(ConfigError, match="nested too deeply"):
            read_yaml(tmp_path / "c.yaml")
    elif kind == "config.json":
        (tmp_path / "config.json").write_text(DEEP)
        with pytest.raises(FileFormatError, match="nested too deeply"):
            GatoConfig.from_json(tmp_path / "config.json")
    elif kind == "jsonl":
        (tmp_path / "chats.jsonl").write_text('{"messages": []}\n' + DEEP + "\n")
        with pytest.raises(FileFormatError, match=r"chats.jsonl:2: nested too deeply"):
            list(iter_jsonl(tmp_path / "chats.jsonl"))
    else:
        bad = tmp_path / "model"
        bad.mkdir()
        for f in model_dir.iterdir():
            (bad / f.name).write_bytes(f.read_bytes())
        (bad / "sources.json").unlink()
        (bad / kind).write_text(DEEP)  # tasks.json: the name older folders have
        with pytest.raises(FileFormatError, match=f"{kind} is nested too deeply"):
            load_model(bad)


def _dataset(root: Path, obs_space, rows, steps: int = 3) -> Path:
    from gymnasium import spaces

    from gato_mini.data.minari_writer import DatasetWriter

    with DatasetWriter(root, "odd/big-v0", obs_space, spaces.Discrete(2)) as w:
        w.add(rows, np.zeros(steps, np.int64), [0.0] * steps, [False] * (steps - 1) + [True], [False] * steps)
        return w.commit()


def test_a_dataset_too_large_for_the_model_or_the_machine_is_one_line(tmp_path, monkeypatch) -> None:
    """From its spaces and episode lengths alone, before anything is read or written: a timestep over
    block_size (the CLI: exit 2, one line), an observation over max_local_positions, frames over the
    pixel limit, an episode whose arrays would not fit in the available memory."""
    import yaml
    from gymnasium import spaces

    import gato_mini.data.sources as sources
    from gato_mini.data.datacfg import load_data_config
    from gato_mini.data.prepare import prepare
    from gato_mini.tokenizers import image

    wide = _dataset(tmp_path / "wide", spaces.Box(-1, 1, (300,), np.float32), np.zeros((4, 300), np.float32))
    config = tmp_path / "data.yaml"
    root = tmp_path / "out"
    config.write_text(yaml.safe_dump({"model": {"name": "tiny", "block_size": 256, "text_vocab_size": 300},
                                      "data": {"root": str(root), "sources": {"wide": {
                                          "kind": "episodes", "dataset": str(wide)}}}}))
    r = subprocess.run([sys.executable, "-m", "gato_mini.cli", "prepare", "--config", str(config),
                        "--no-progress"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "one timestep is 302 tokens, more than block_size=256" in r.stderr
    assert not root.exists()
    data, cfg = load_data_config(config)
    narrow = GatoConfig.from_name("tiny", max_local_positions=64, text_vocab_size=300)
    with pytest.raises(FileFormatError, match="one observation is 300 tokens, more than max_local_positions"):
        prepare(data, narrow, progress=False)
    box = spaces.Box(0, 255, (40, 40), np.uint8)
    frames = _dataset(tmp_path / "frames", box, np.zeros((4, 40, 40), np.uint8))
    data.sources[0].options["dataset"] = str(frames)
    monkeypatch.setattr(image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(FileFormatError, match="'observation' frames are 40x40, more than the 1,000 pixels"):
        prepare(data, cfg, progress=False)
    monkeypatch.undo()
    monkeypatch.setattr(sources, "available_memory", lambda: 1000)
    with pytest.raises(FileFormatError, match=r"episode 0 is 3 steps, about 0\.0 GiB to read and tokenize, "
                                              r"more than the 0\.0 GiB this machine has available; split"):
        prepare(data, cfg, progress=False)
    assert not root.exists()


def test_text_too_large_to_read_whole_a_line_too_long_and_chats_longer_than_the_context(tmp_path,
                                                                                     monkeypatch) -> None:
    """A text or chat file too large to read whole here is one line before anything is read; a JSONL
    line past the line limit is one line naming FILE:LINE (read in pieces, never whole); a chat longer
    than the context is trained on its start only, and the prepare report counts it."""
    import yaml

    import gato_mini.data.jsonl as jsonl
    import gato_mini.data.source as source  # Source.check reads the available memory
    from gato_mini.data.datacfg import load_data_config
    from gato_mini.data.prepare import prepare

    docs, chats = tmp_path / "docs.txt", tmp_path / "chats.jsonl"
    docs.write_text(CORPUS[0] * 4)
    long_chat = [{"role": "user", "content": "tell me a long story"},
                 {"role": "assistant", "content": " ".join(f"word{k}" for k in range(400))}]
    short = [[{"role": "user", "content": f"hi {k}"}, {"role": "assistant", "content": "hello"}]
             for k in range(20)]
    chats.write_text("".join(json.dumps({"messages": m}) + "\n" for m in [long_chat] + short))
    config = tmp_path / "data.yaml"
    root = tmp_path / "out"
    config.write_text(yaml.safe_dump({"model": {"name": "tiny", "block_size": 128, "text_vocab_size": 300},
                                      "data": {"root": str(root), "val_fraction": 0.0, "sources": {
                                          "docs": {"kind": "text", "path": str(docs)},
                                          "chats": {"kind": "chat-jsonl", "path": str(chats)}}}}))
    data, cfg = load_data_config(config)
    with monkeypatch.context() as m:
        m.setattr(source, "available_memory", lambda: 1000)
        too_big = (rf"source '(docs|chats)': {tmp_path}/\w+\.\w+ is 0\.0 GiB of text; tokenizing reads it "
                   r"whole.*split it into several sources")
        with pytest.raises(FileFormatError, match=too_big):
            prepare(data, cfg, progress=False)
    assert not root.exists()
    with monkeypatch.context() as m:
        m.setattr(jsonl, "MAX_LINE_CHARS", 100)
        with pytest.raises(FileFormatError, match=rf"{chats}:1: a line longer than 100 characters; split it"):
            list(iter_jsonl(chats))
    result = prepare(data, cfg, progress=False)
    skipped = {r.name: r.skipped for r in result.sources}
    assert skipped["chats"] == {"longer than block_size=128 (only its start is trained on)": 1}


def test_gathered_weights_that_do_not_match_the_config_are_refused_before_writing(tmp_path) -> None:
    """An export handed a state dict gathered from shards (FSDP) checks it against the config, name by
    name and shape by shape, before writing anything."""
    model = GatoModel(CFG)
    tok = TextTokenizer.train(CORPUS, vocab_size=CFG.text_vocab_size)
    tok.save(tmp_path / "tokenizer.json")
    state = dict(model.state_dict())
    state.pop("wte.weight")
    with pytest.raises(GatoError, match=r"the gathered weights do not match the model config \(first "
                                        r"differences: wte\.weight\)"):
        export_model(tmp_path / "model", model, tmp_path / "tokenizer.json", {}, state=state)
    assert not (tmp_path / "model").exists() and not (tmp_path / ".tmp-model").exists()
    state = dict(model.state_dict())
    export_model(tmp_path / "model", model, tmp_path / "tokenizer.json", {}, state=state)
    assert load_model(tmp_path / "model")[0].cfg == CFG
