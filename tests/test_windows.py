"""Window sampling: timestep boundaries, prompt statistics, packing, mixture weights, collate."""

from __future__ import annotations

import numpy as np
import pytest

from gato_mini.config import GatoConfig
from gato_mini.data.sequence import document_sequence, episode_sequence
from gato_mini.data.shards import Shard, ShardWriter
from gato_mini.data.windows import SourceShard, WindowSampler, collate
from gato_mini.errors import ConfigError
from gato_mini.fields import FieldSpec

CFG = GatoConfig.from_name("tiny", block_size=128)
EP_FIELDS = {"ep": FieldSpec("discrete", (), n=1000), "t": FieldSpec("discrete", (), n=1000)}
STEP = 4  # ep, t, |, action


def _episodes_shard(path, n_eps=10, steps=500) -> Shard:
    with ShardWriter(path, CFG) as w:
        for ep in range(n_eps):
            t = np.arange(steps)
            w.add(episode_sequence({"ep": np.full(steps, ep), "t": t}, t % 7, EP_FIELDS,
                                   FieldSpec("discrete", (), n=7), CFG))
        w.commit({"mode": "episode"})
    return Shard(path)


def _steps(seq) -> list[tuple[int, int]]:
    """(episode, t) of each timestep of an episode window."""
    tok = seq.tokens.reshape(-1, STEP) - CFG.discrete_offset
    return [(int(a), int(b)) for a, b, *_ in tok]


def test_windows_are_whole_timesteps(tmp_path) -> None:
    sampler = WindowSampler([SourceShard("eps", "episode", 1.0, _episodes_shard(tmp_path / "s"))], CFG,
                            prompt_probability=0.0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        _, seq = sampler.sample(rng)
        assert len(seq) == 128 and len(seq) % STEP == 0  # full windows of whole timesteps
        steps = _steps(seq)
        assert len({e for e, _ in steps}) == 1
        assert [t for _, t in steps] == list(range(steps[0][1], steps[0][1] + len(steps)))
        assert np.array_equal(seq.starts, np.arange(0, 128, STEP))


def test_prompt_sampling_statistics(tmp_path) -> None:
    sampler = WindowSampler([SourceShard("eps", "episode", 1.0, _episodes_shard(tmp_path / "s"))], CFG,
                            prompt_probability=0.25, prompt_fraction=0.25)
    rng = np.random.default_rng(1)
    n, prompted, at_end = 4000, 0, 0
    for _ in range(n):
        _, seq = sampler.sample(rng)
        steps = _steps(seq)
        assert len(seq) <= 128
        if steps[0][0] != steps[-1][0]:  # a demonstration from another episode comes first
            prompted += 1
            prompt = [s for s in steps if s[0] == steps[0][0]]
            assert len(prompt) * STEP <= 32  # prompt_fraction * block_size
            ts = [t for _, t in prompt]
            assert ts == list(range(ts[0], ts[0] + len(ts)))
            at_end += ts[-1] == 499
    assert abs(prompted / n - 0.25) < 0.03, prompted / n
    # half from the end; a uniform start reaches the end too with probability 8/500
    assert abs(at_end / prompted - (0.5 + 0.5 * 8 / 500)) < 0.06, at_end / prompted


def test_pack_and_stream_windows(tmp_path, text_tokenizer) -> None:
    with ShardWriter(tmp_path / "docs", CFG) as w:
        for k in range(5):
            w.add(document_sequence(f"document number {k}. " * (k + 1), CFG, text_tokenizer))
        w.commit({"mode": "stream"})
    docs = Shard(tmp_path / "docs")
    rng = np.random.default_rng(0)
    stream = WindowSampler([SourceShard("d", "stream", 1.0, docs)], CFG)
    everything = np.asarray(docs.array("tokens"))
    for _ in range(20):
        _, seq = stream.sample(rng)
        assert len(seq) == min(128, len(everything))
        text = everything.tobytes()
        assert seq.tokens.astype(np.int32).tobytes() in text
    pack = WindowSampler([SourceShard("d", "pack", 1.0, docs)], CFG)
    bos = CFG.special_id("<|bos|>")
    for _ in range(20):
        _, seq = pack.sample(rng)
        assert seq.tokens[0] == bos and len(seq) <= 128
        assert seq.tokens[-1] == CFG.special_id("<|eos|>") or len(seq) == 128


def test_mixture_weights_and_empty_sources(tmp_path, text_tokenizer) -> None:
    eps = _episodes_shard(tmp_path / "e", n_eps=2, steps=50)
    with ShardWriter(tmp_path / "d", CFG) as w:
        w.add(document_sequence("some text " * 50, CFG, text_tokenizer))
        w.commit({"mode": "stream"})
    with ShardWriter(tmp_path / "none", CFG) as w:
        w.commit({"mode": "pack"})
    sources = [SourceShard("e", "episode", 3.0, eps), SourceShard("d", "stream", 1.0, Shard(tmp_path / "d")),
               SourceShard("none", "pack", 5.0, Shard(tmp_path / "none"))]
    sampler = WindowSampler(sources, CFG)
    rng = np.random.default_rng(0)
    picks = np.bincount([sampler.sample(rng)[0] for _ in range(2000)], minlength=3)
    assert picks[2] == 0 and abs(picks[0] / 2000 - 0.75) < 0.04
    with pytest.raises(ConfigError, match="no source with a positive weight has any data"):
        WindowSampler([sources[2]], CFG)
    with pytest.raises(ConfigError, match="timesteps of 4 tokens, more than block_size=2"):
        WindowSampler([sources[0]], CFG, block_size=2)


def test_collate_pads_and_shifts(tmp_path) -> None:
    sampler = WindowSampler([SourceShard("e", "episode", 1.0, _episodes_shard(tmp_path / "s", 2, 10))],
                            CFG, prompt_probability=0.0)
    items = [sampler.sample(np.random.default_rng(i)) for i in range(3)]
    batch = collate(items, CFG)
    assert batch["tokens"].shape == (3, 128) and batch["patches"].shape == (0, 768)
    n = len(items[0][1])
    assert n == 40  # the whole 10-step episode
    assert batch["tokens"][0, n:].eq(CFG.special_id("<|pad|>")).all()
    assert batch["targets"][0, :n - 1].tolist() == items[0][1].tokens[1:].tolist()
    assert batch["loss_mask"][0].tolist() == items[0][1].targets[1:].tolist() + [False] * (128 - n + 1)
    assert batch["local_pos"][0, :4].tolist() == [0, 1, -1, -1] and batch["local_pos"][0, n:].eq(-1).all()
    assert batch["source"].tolist() == [0, 0, 0]
