"""Data path speed: tokens/s into shards, and batches/s out of the DataModule.

Builds a mixture like the default one in a temporary folder: expert episodes of
atari-pong and control-pendulum, caption-shapes, text-pydoc (with the standard
library's docstrings) and chat-chatterbot. Then:

* ``prepare``: tokens written per second, with one worker process and with
  two (wall clock); the baseline in the same run is the bare BPE encoder over
  the same text (``text_encode_tokens_per_s``), the fastest any text shard
  could be built.
* ``datamodule``: for the ``tiny`` and ``small`` configs, batches and tokens
  per second the training DataLoader delivers (0 and 2 workers); the baseline
  is copying the same number of tokens as random contiguous slices out of the
  memory-mapped shards with nothing else (``raw_slice_tokens_per_s``), so
  ``over_raw_slices`` is the cost of windows, prompts, padding and collation.

    python benchmarks/data.py [--batches 60] [--out FILE]
"""

from __future__ import annotations

import os
import sys

# benchmarks/tokenize.py would shadow the standard library's tokenize: keep this
# folder at the end of sys.path, not the front.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _common import write  # noqa: E402

from gato_mini.collect import Recording, run_episodes  # noqa: E402
from gato_mini.config import GatoConfig  # noqa: E402
from gato_mini.data.datacfg import parse_data_config  # noqa: E402
from gato_mini.data.datamodule import GatoDataModule  # noqa: E402
from gato_mini.data.prepare import prepare, shard_dir  # noqa: E402
from gato_mini.data.shards import Shard  # noqa: E402
from gato_mini.data.sources import make_source  # noqa: E402
from gato_mini.tokenizers import TextTokenizer  # noqa: E402


def mixture(root: Path, episodes: Path) -> dict:
    return {"root": str(root), "episodes": str(episodes), "workers": 1,
            "sources": {"atari-pong": {"weight": 1.0}, "control-pendulum": {"weight": 1.0},
                        "caption-shapes": {"weight": 1.0, "count": 5000, "val_count": 200},
                        "text-pydoc": {"weight": 0.5}, "chat-chatterbot": {"weight": 0.5}}}


def bench_prepare(tmp: Path, cfg: GatoConfig) -> dict:
    run_episodes("atari-pong", Recording("expert", 4, max_steps=600), out=tmp / "eps", progress=False)
    run_episodes("control-pendulum", Recording("expert", 10), out=tmp / "eps", progress=False)
    raw = mixture(tmp / "data", tmp / "eps")
    data = parse_data_config(raw)
    quiet = {"progress": False, "say": lambda s: None}
    prepare(data, cfg, **quiet)  # trains the tokenizer (not timed below)
    out = {}
    for workers in (1, 2):
        data.workers = workers
        t0 = time.perf_counter()
        result = prepare(data, cfg, force=True, **quiet)
        wall = time.perf_counter() - t0
        n = result.built_tokens
        per_source = {r.name: round(sum(r.tokens.values()) / r.seconds) for r in result.sources}
        out[f"workers_{workers}"] = {"tokens": n, "wall_s": round(wall, 2),
                                     "tokens_per_s_wall": round(n / wall),
                                     "tokens_per_s_per_process": round(n / result.build_seconds),
                                     "per_source_tokens_per_s": per_source}
    t0 = time.perf_counter()
    again = prepare(data, cfg, **quiet)
    out["rerun_unchanged_s"] = round(time.perf_counter() - t0, 3)
    assert {r.status for r in again.sources} == {"up to date"}
    # baseline: the bare BPE encoder over the pydoc text
    tok = TextTokenizer.load(data.root / "tokenizer.json", cfg)
    docs = list(make_source(data.source("text-pydoc")).texts())
    t0 = time.perf_counter()
    n = sum(len(ids) for ids in tok.encode_batch(docs))
    out["text_encode_tokens_per_s"] = round(n / (time.perf_counter() - t0))
    pydoc = out["workers_1"]["per_source_tokens_per_s"]["text-pydoc"]
    out["pydoc_shard_over_bare_encode"] = round(pydoc / out["text_encode_tokens_per_s"], 3)
    return {"prepare": out, "data": data}


def raw_slices(data, block: int, batch: int, batches: int) -> float:
    shards = [Shard(shard_dir(data.root, s.name, "train")) for s in data.sources]
    arrays = [np.asarray(s.array("tokens")) for s in shards]
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(batches):
        rows = []
        for _ in range(batch):
            a = arrays[rng.integers(len(arrays))]
            o = rng.integers(max(1, len(a) - block))
            rows.append(np.array(a[o:o + block]))
        np.stack([np.pad(r, (0, block - len(r))) for r in rows])
    return batches * batch * block / (time.perf_counter() - t0)


def bench_loader(data, size: str, batch: int, batches: int) -> dict:
    cfg = GatoConfig.from_name(size)
    out = {"block_size": cfg.block_size, "batch_size": batch}
    for workers in (0, 2):
        dm = GatoDataModule(data, cfg, batch_size=batch, num_workers=workers, prepare=False)
        dm.setup("fit")
        it = iter(dm.train_dataloader())
        for _ in range(5):
            next(it)
        t0 = time.perf_counter()
        tokens = real = 0
        for _ in range(batches):
            b = next(it)
            tokens += b["tokens"].numel()
            real += int((b["tokens"] != cfg.special_id("<|pad|>")).sum())
        dt = time.perf_counter() - t0
        out[f"workers_{workers}"] = {"batches_per_s": round(batches / dt, 1),
                                     "tokens_per_s": round(tokens / dt),
                                     "non_pad_fraction": round(real / tokens, 3)}
        del it
    out["raw_slice_tokens_per_s"] = round(raw_slices(data, cfg.block_size, batch, batches))
    out["over_raw_slices"] = round(out["workers_0"]["tokens_per_s"] / out["raw_slice_tokens_per_s"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # tiny and small share the id layout (text_vocab_size 4096), so one set of shards serves both
        res = bench_prepare(Path(tmp), GatoConfig.from_name("tiny"))
        data = res.pop("data")
        res["datamodule"] = {"tiny": bench_loader(data, "tiny", 32, args.batches),
                             "small": bench_loader(data, "small", 16, args.batches)}
    write("data", res, args.out)


if __name__ == "__main__":
    main()
