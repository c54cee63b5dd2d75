"""prepare -> shards -> DataModule: round trips, caching, splits, ranks and workers, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import yaml
from _data import CHATS, DOCS, EPISODES, STEPS, _episode, _write_config, _write_dataset  # noqa: E402
from torch.utils.data import DataLoader

from gato_mini.data.datacfg import load_data_config
from gato_mini.data.datamodule import GatoDataModule, TrainWindows, open_sampler
from gato_mini.data.prepare import check_shards, prepare, shard_dir
from gato_mini.data.shapes import make_scene
from gato_mini.data.windows import collate
from gato_mini.errors import ConfigError, FileFormatError
from gato_mini.fields import FieldSpec
from gato_mini.tokenizers import TextTokenizer, image, vector


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data")
    config = _write_config(tmp, _write_dataset(tmp / "eps"))
    data, cfg = load_data_config(config)
    result = prepare(data, cfg, progress=False, say=lambda s: None)
    return tmp, config, data, cfg, result


def _files(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_prepare_builds_every_source_and_counts_skips(prepared) -> None:
    tmp, _, data, cfg, result = prepared
    by = {r.name: r for r in result.sources}
    assert all(r.status == "built" for r in result.sources) and result.tokenizer_trained
    assert by["demo"].units["train"] + by["demo"].units["val"] == EPISODES
    assert by["demo"].units["val"] >= 1
    # 4 patches, the 2-value state as one vector token (obs_layout: vector, the default), |, 1 action
    assert by["demo"].tokens["train"] == by["demo"].units["train"] * STEPS * 7
    assert by["caption-shapes"].units == {"train": 300, "val": 40}
    assert by["docs"].skipped == {"empty document": 1}
    assert sum(by["docs"].units.values()) == 4 and sum(by["chats"].units.values()) == 30
    index = json.loads((data.root / "data.json").read_text())
    assert index["sources"]["demo"]["fields"]["action"] == FieldSpec("discrete", (), n=3).to_dict()
    assert not list(data.root.rglob(".tmp-*"))


def test_rerun_does_no_work_and_changes_rebuild_what_depends_on_them(prepared, tmp_path) -> None:
    tmp, config, data, cfg, _ = prepared
    before = _files(data.root)
    again = prepare(data, cfg, progress=False, say=lambda s: None)
    assert {r.status for r in again.sources} == {"up to date"} and not again.tokenizer_trained
    assert _files(data.root) == before
    # a changed document retrains the tokenizer; text sources follow, episodes (no text) do not
    (tmp / "docs" / "d.txt").write_text("Short one, now longer.")
    third = prepare(data, cfg, progress=False, say=lambda s: None)
    status = {r.name: r.status for r in third.sources}
    assert third.tokenizer_trained
    assert status["demo"] == "up to date" and status["docs"] == "built"
    # a changed episode dataset rebuilds only its own shards
    h5 = next((tmp / "eps").rglob("main_data.hdf5"))
    h5.touch()
    fourth = prepare(data, cfg, progress=False, say=lambda s: None)
    assert {r.name: r.status for r in fourth.sources} == {"demo": "built", "caption-shapes": "up to date",
                                                         "docs": "up to date", "chats": "up to date"}


def _timesteps(tokens: np.ndarray, sep: int) -> list[tuple[int, int]]:
    """(start, sep index) of each complete timestep in an episode window (7 tokens each: 4 patches, the
    state's vector token, the separator, the action)."""
    seps = np.flatnonzero(tokens == sep)
    return [(int(s) - 5, int(s)) for s in seps if s + 1 < len(tokens) and s >= 5]


def test_datamodule_batches_decode_back_to_the_sources(prepared) -> None:
    tmp, config, data, cfg, _ = prepared
    dm = GatoDataModule(data, cfg, batch_size=16, prepare=False)
    dm.setup("fit")
    tok = TextTokenizer.load(data.root / "tokenizer.json", cfg)
    names = dm.source_names
    episodes = [_episode(e) for e in range(EPISODES)]
    docs = [t for t in DOCS.values() if t.strip()]
    scenes = {}
    for i in range(300):
        s = make_scene(i, "train")
        scenes.setdefault(s.caption, []).append(s.image)
    seen = set()
    pad, sep, patch = (cfg.special_id(n) for n in ("<|pad|>", "<|sep|>", "<|patch|>"))
    index = json.loads((data.root / "data.json").read_text())
    stats = index["sources"]["demo"]["fields"]["observation"]["state"]
    mean, std = np.array(stats["mean"]), np.array(stats["std"])
    loader = iter(dm.train_dataloader())
    for _ in range(6):
        batch = next(loader)
        tokens, patches = batch["tokens"].numpy(), batch["patches"].numpy()
        # targets are the inputs shifted by one, masked where the next token is not a target
        assert np.array_equal(batch["targets"][:, :-1].numpy(), tokens[:, 1:])
        assert len(patches) == int((tokens == patch).sum()) == len(batch["patch_pos"])
        assert patches.dtype == np.uint8
        raw = patches
        p_off = 0
        for b in range(len(tokens)):
            row, name = tokens[b], names[int(batch["source"][b])]
            seen.add(name)
            n_patch = int((row == patch).sum())
            row_patches, p_off = raw[p_off:p_off + n_patch], p_off + n_patch
            body = row[row != pad]
            if name == "demo":
                k = 0
                for start, s in _timesteps(body, sep):
                    k = int((body[:start] == patch).sum())
                    img = image.decode(row_patches[k:k + 4], 2, 2, cfg)[..., 0]
                    ep, t = divmod(int(img[0, 0]), 25)
                    src = episodes[ep]
                    assert np.array_equal(img, src["obs"]["image"][t])
                    assert body[start + 4] == patch  # the state: one vector slot after the image's 4
                    state = vector.payload_values(row_patches[k + 4:k + 5], 2)[0] * std + mean
                    assert np.allclose(state, src["obs"]["state"][t], atol=1e-5)
                    assert body[s + 1] - cfg.discrete_offset == src["actions"][t]
                    assert batch["loss_mask"][b, s].item() and not batch["loss_mask"][b, s - 1].item()
                    assert batch["local_pos"][b, start:s + 2].tolist() == list(range(5)) + [-1, -1]
            elif name == "caption-shapes":
                caps = np.flatnonzero(body == cfg.special_id("<|caption|>"))
                eos = np.flatnonzero(body == cfg.special_id("<|eos|>"))
                for j, (c, e) in enumerate(zip(caps, eos, strict=False)):
                    text = tok.decode(body[c + 1:e])
                    picture = image.decode(row_patches[16 * j:16 * (j + 1)], 4, 4, cfg)
                    assert any(np.array_equal(picture, im) for im in scenes[text]), text
            elif name == "docs":
                text = tok.decode([i for i in body if i < tok.n_text])
                assert any(text[:40] in d * 2 for d in docs), text[:40]
            elif name == "chats":
                assert tok.decode([i for i in body if i < tok.n_text]).count("plus") >= 2
    assert seen == set(names)


def test_validation_uses_only_held_out_units(prepared) -> None:
    tmp, config, data, cfg, _ = prepared
    dm = GatoDataModule(data, cfg, batch_size=8, prepare=False)
    dm.setup("fit")
    meta = json.loads((shard_dir(data.root, "demo", "val") / "meta.json").read_text())
    val_eps = int(meta["counts"]["units"])
    loader = dm.val_dataloader()
    assert len(loader.dataset) == 4 * len(dm.source_names)
    patch, pad = cfg.special_id("<|patch|>"), cfg.special_id("<|pad|>")
    held = set()
    for batch in loader:
        raw = batch["patches"].numpy()
        offs = np.concatenate([[0], np.cumsum((batch["tokens"] == patch).sum(1).numpy())])
        for b in range(len(batch["tokens"])):
            name = dm.source_names[int(batch["source"][b])]
            if name == "demo":
                held |= {int(px[0]) // 25 for px in raw[offs[b]:offs[b + 1]:5]}  # 4 patches, 1 vector
            elif name == "caption-shapes":
                assert (batch["tokens"][b] != pad).sum() > 0
    train = open_sampler(data, cfg, "train").sources[0].shard
    train_eps = {int(train.unit(u).patches[0, 0]) // 25 for u in range(train.n_units)}
    assert held and held.isdisjoint(train_eps) and len(held) <= val_eps
    # two loaders give the same validation windows
    a = [b["tokens"] for b in dm.val_dataloader()]
    assert all((x == y).all() for x, y in zip(a, [b["tokens"] for b in dm.val_dataloader()], strict=True))


def test_ranks_and_workers_see_different_data(prepared) -> None:
    tmp, config, data, cfg, _ = prepared
    sampler = open_sampler(data, cfg, "train")

    def first(ds, n=12):
        it = iter(ds)
        return [tuple(next(it)[1].tokens.tolist()) for _ in range(n)]

    r0, r1 = first(TrainWindows(sampler, seed=0, rank=0)), first(TrainWindows(sampler, seed=0, rank=1))
    assert r0 == first(TrainWindows(sampler, seed=0, rank=0))  # reproducible
    assert len(set(r0) & set(r1)) <= 2  # different streams (short text windows can coincide)
    loader = DataLoader(TrainWindows(sampler, seed=0), batch_size=None, num_workers=2)
    it = iter(loader)
    rows = [tuple(next(it)[1].tokens.tolist()) for _ in range(24)]
    assert len(set(rows[0::2]) & set(rows[1::2])) <= 2  # worker 0 and worker 1 interleave


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_a_loader_started_after_k_batches_goes_on_with_batch_k(prepared, workers) -> None:
    """The data position of a resumed run: a loader told that 5 batches were used yields the 6th batch
    onwards of a loader started from scratch, whatever the number of workers."""
    tmp, config, data, cfg, _ = prepared
    sampler = open_sampler(data, cfg, "train")

    def batches(start: int, n: int) -> list[tuple]:
        loader = DataLoader(TrainWindows(sampler, seed=3, rank=0, batch_size=4, start=start), batch_size=4,
                            num_workers=workers, collate_fn=partial(collate, cfg=cfg))
        it = iter(loader)
        return [tuple(next(it)["tokens"].flatten().tolist()) for _ in range(n)]

    whole = batches(0, 12)
    assert len(set(whole)) == 12
    assert batches(5, 7) == whole[5:]


def test_shards_from_another_layout_or_tokenizer_are_refused(prepared, tmp_path) -> None:
    tmp, config, data, cfg, _ = prepared
    other = type(cfg).from_name("tiny", block_size=128, text_vocab_size=1024)
    with pytest.raises(ConfigError, match="another model config.*text_vocab_size=512"):
        check_shards(data, other)
    tok_file = data.root / "tokenizer.json"
    saved = tok_file.read_bytes()
    try:
        TextTokenizer.train(["something else entirely"], 300).save(tok_file)
        with pytest.raises(ConfigError, match="not the tokenizer the shards"):
            check_shards(data, cfg)
    finally:
        tok_file.write_bytes(saved)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("gato-mini") or str(Path(sys.executable).parent / "gato-mini")
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_cli_bad_inputs_one_line_and_nothing_left_behind(tmp_path) -> None:
    (tmp_path / "caps").mkdir()
    (tmp_path / "caps" / "metadata.jsonl").write_text('{"file_name": "gone.png", "text": "x"}\n')
    bad = {"unknown.yaml": "data: {root: out, sources: {atari-pongg: {}}}",
           "zero.yaml": "data: {root: out, sources: {caption-shapes: {weight: 0}}}",
           "missing.yaml": "data: {root: out, sources: {caption-shapes: {count: 5, val_count: 1}, "
                           "caps: {kind: caption-folder, path: caps}}}"}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        r = _cli("prepare", "--config", name, "--no-progress", cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("gato-mini prepare: error:"), r.stderr
    assert "metadata.jsonl:1: image gone.png not found" in r.stderr
    assert not list(tmp_path.rglob(".tmp-*")) and not list(tmp_path.rglob("meta.json"))


def test_a_failing_source_leaves_other_shards_and_no_partial_files(prepared, tmp_path) -> None:
    tmp, config, data, cfg, _ = prepared
    raw = yaml.safe_load(Path(config).read_text())
    raw["data"]["root"] = str(tmp_path / "out")
    raw["data"]["sources"]["chats"]["path"] = str(tmp_path / "chats.jsonl")
    (tmp_path / "chats.jsonl").write_text(json.dumps({"messages": CHATS[0]}) + "\n{broken\n")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    data2, cfg2 = load_data_config(path)
    with pytest.raises(FileFormatError, match=r"chats.jsonl:2: not valid JSON"):
        prepare(data2, cfg2, progress=False, say=lambda s: None)
    assert not list((tmp_path / "out").rglob(".tmp-*"))
    assert not (shard_dir(tmp_path / "out", "chats", "train") / "meta.json").exists()
