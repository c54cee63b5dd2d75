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
from gato_mini.data.captions import MAX_IMAGE_PIXELS, load_image, read_caption_metadata
from gato_mini.data.datacfg import read_yaml
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


@pytest.mark.parametrize("kind", ["yaml", "config.json", "jsonl", "tasks.json"])
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
        (bad / "tasks.json").write_text(DEEP)
        with pytest.raises(FileFormatError, match="tasks.json is nested too deeply"):
            load_model(bad)
