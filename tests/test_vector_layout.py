"""The vector layout of continuous observations (``obs_layout: vector``): one token per field, its values
normalized by statistics computed at prepare time and stored with the model; Gato's per-value layout by
name; old model folders act as before; bad statistics and NaN observations refused in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from gato_mini.agent import Agent
from gato_mini.agent.agent import AgentOptions
from gato_mini.agent.rollout import run_agent
from gato_mini.collect import Recording, run_episodes
from gato_mini.config import GatoConfig
from gato_mini.data.minari_io import iter_episodes
from gato_mini.data.sequence import episode_sequence, observation_sequence
from gato_mini.data.source import val_keys
from gato_mini.data.windows import collate
from gato_mini.errors import ConfigError, GatoError, TokenizationError
from gato_mini.fields import FieldSpec, action_field, observation_fields, with_statistics
from gato_mini.model import GatoModel
from gato_mini.model.export import export_model, load_model
from gato_mini.model.generate import Sampling
from gato_mini.tokenizers import vector
from gato_mini.train.lit import MODEL_KEYS
from tests._fakeenvs import MatchEnv
from tests._models import LogitLog, assert_same_logits, loud_model

EXE = shutil.which("gato-mini") or str(Path(sys.executable).parent / "gato-mini")
CFG = GatoConfig.from_name("tiny", n_layer=2, n_embd=64, n_head=4, block_size=96, text_vocab_size=400)
MEAN, STD = [0.1, -0.2, 0.3], [0.5, 0.25, 2.0]
MODEL = {"name": "tiny", "n_layer": 2, "n_embd": 64, "block_size": 128, "text_vocab_size": 300}


def _vector_fields(env: MatchEnv) -> dict[str, FieldSpec]:
    fields = observation_fields(env.observation_space)
    return {**fields, "state": with_statistics(fields["state"], MEAN, STD)}


def test_a_vector_field_is_one_token_after_the_patches_then_the_separator_and_the_actions() -> None:
    env = MatchEnv(continuous=True)
    fields, action = _vector_fields(env), action_field(env.action_space)
    rng = np.random.default_rng(0)
    obs = {"image": rng.integers(0, 256, (4, 16, 32), dtype=np.uint8),
           "state": rng.uniform(-1, 1, (4, 3)).astype(np.float32)}
    acts = rng.uniform(-1, 1, (4, 2)).astype(np.float32)
    seq = episode_sequence(obs, acts, fields, action, CFG)
    patch, sep = CFG.special_id("<|patch|>"), CFG.special_id("<|sep|>")
    # per timestep: 2 image patches, 1 vector slot, <|sep|>, 2 action values
    assert len(seq) == 4 * 6 and seq.starts.tolist() == [0, 6, 12, 18]
    step = seq.tokens[:6]
    assert step[:4].tolist() == [patch, patch, patch, sep]
    assert np.all((step[4:] >= CFG.continuous_offset) & (step[4:] < CFG.special_offset))
    assert seq.local_pos[:6].tolist() == [0, 1, 2, -1, -1, -1]
    assert seq.targets[:6].tolist() == [False] * 4 + [True] * 2
    # the vector slot: marked in its position row, its payload the normalized values
    assert len(seq.patches) == 4 * 3
    vec_rows = seq.patch_pos[:, 0] == vector.VECTOR_SLOT
    assert vec_rows.tolist() == [False, False, True] * 4
    assert seq.patch_pos[vec_rows].tolist() == [[vector.VECTOR_SLOT, 3, 0, 0]] * 4
    want = (obs["state"] - np.array(MEAN)) / np.array(STD)
    np.testing.assert_allclose(vector.payload_values(seq.patches[vec_rows], 3), want, rtol=1e-6)
    # the agent's observation tokens are the episode's, token for token
    o = observation_sequence(obs, fields, CFG)
    assert o.tokens.reshape(4, 4).tolist() == seq.tokens.reshape(4, 6)[:, :4].tolist()
    np.testing.assert_array_equal(o.patches, seq.patches)
    # Gato's layout by name: the same field without statistics is one token per value
    plain = episode_sequence(obs, acts, observation_fields(env.observation_space), action, CFG)
    assert len(plain) == 4 * (2 + 3 + 1 + 2)


def test_the_model_reads_the_vector_and_a_values_model_refuses_one() -> None:
    env = MatchEnv(continuous=False)
    fields = _vector_fields(env)
    model = loud_model(CFG)
    outs = []
    for state in ([0.9, -0.9, 0.5], [-0.9, 0.9, -0.5]):
        seq = observation_sequence({"image": np.zeros((1, 16, 32), np.uint8),
                                    "state": np.array([state], np.float32)}, fields, CFG)
        args = (torch.from_numpy(seq.tokens[None].astype(np.int64)),
                torch.from_numpy(seq.local_pos[None].astype(np.int64)), torch.from_numpy(seq.patches),
                torch.from_numpy(seq.patch_pos.astype(np.int64)))
        outs.append(model.logits(*args)[0, -1])
    assert (outs[0] - outs[1]).abs().max() > 1e-2  # the vector reaches the output
    values = loud_model(GatoConfig.from_dict({**CFG.to_dict(), "obs_layout": "values"}))
    assert values.vector_embed is None
    with pytest.raises(ValueError, match="without a vector embedding"):
        values.logits(*args)


def test_the_vector_gradient_scale_shrinks_only_the_vector_embeddings_gradient() -> None:
    """vector_grad_scale k: the same logits and the same gradient everywhere but in the vector embedding,
    whose gradient is k times what it is at 1 (the clip's norm then sees k of it; AdamW's step does not)."""
    env = MatchEnv(continuous=True)
    fields, action = _vector_fields(env), action_field(env.action_space)
    rng = np.random.default_rng(3)
    seq = episode_sequence({"image": rng.integers(0, 256, (3, 16, 32), dtype=np.uint8),
                            "state": rng.uniform(-1, 1, (3, 3)).astype(np.float32)},
                           rng.uniform(-1, 1, (3, 2)).astype(np.float32), fields, action, CFG)
    batch = collate([(0, seq)], CFG)
    grads, logits = {}, {}
    for k in (1.0, 0.25):
        torch.manual_seed(0)
        model = GatoModel(GatoConfig.from_dict({**CFG.to_dict(), "vector_grad_scale": k}))
        loss = model(**{key: batch[key] for key in MODEL_KEYS}, targets=batch["targets"],
                     loss_mask=batch["loss_mask"])
        loss.backward()
        grads[k] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        logits[k] = model.logits(**{key: batch[key] for key in MODEL_KEYS}).detach()
    torch.testing.assert_close(logits[1.0], logits[0.25])
    assert {"vector_embed.weight", "vector_size.weight"} <= set(grads[1.0])
    for name, g in grads[1.0].items():
        want = g * 0.25 if name.startswith("vector_") else g
        torch.testing.assert_close(grads[0.25][name], want, msg=name)
    assert GatoConfig().vector_grad_scale == 1.0
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="vector_grad_scale"):
            GatoConfig(vector_grad_scale=bad)


def _agent(n: int, continuous: bool, use_cache: bool) -> Agent:
    env = MatchEnv(continuous)
    return Agent(loud_model(CFG), _vector_fields(env), action_field(env.action_space), n,
                 options=AgentOptions(Sampling(temperature=0.0), use_cache=use_cache))


@pytest.mark.parametrize("continuous", [False, True])
def test_cached_decoding_equals_recomputation_with_vector_tokens(continuous: bool) -> None:
    runs = {}
    for use_cache in (True, False):
        with LogitLog.recording() as log:
            envs = [MatchEnv(continuous) for _ in range(2)]
            results = run_agent(_agent(2, continuous, use_cache), envs, 4, 3, keep_actions=True)
        runs[use_cache] = results, log
    (cached, log_c), (plain, log_p) = runs[True], runs[False]
    assert all(r.error is None for r in cached + plain), [r.error for r in cached + plain]
    assert max(r.length for r in cached) * 5 > CFG.block_size  # the context overflows and is refilled
    assert [r.actions for r in cached] == [r.actions for r in plain]
    assert_same_logits(log_c, log_p)
    distinct = {tuple(np.asarray(a, dtype=float).ravel().round(6)) for r in cached for a in r.actions}
    assert len(distinct) >= (20 if continuous else 3)  # the policy reads its observations


# --- prepare, train, export, eval -------------------------------------------------------------------
def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A few steps of `gato-mini train` on recorded pendulum episodes (the vector layout, the default)."""
    tmp = tmp_path_factory.mktemp("vector")
    run_episodes("control-pendulum", Recording("expert", 10, seed=0, max_steps=40), out=tmp / "eps",
                 progress=False)
    dataset = str(tmp / "eps/control-pendulum/expert-v0")
    config = {"model": MODEL,
              "data": {"root": str(tmp / "data"), "val_fraction": 0.2, "val_windows": 2,
                       "sources": {"control-pendulum": {"dataset": dataset}}},
              "train": {"out": str(tmp / "run"), "batch_size": 4, "warmup_steps": 1},
              "trainer": {"max_steps": 3}}
    (tmp / "c.yaml").write_text(yaml.safe_dump(config))
    r = _cli("train", "--config", str(tmp / "c.yaml"), "--no-progress", cwd=tmp)
    assert r.returncode == 0, r.stderr[-2000:]
    return tmp


def test_prepare_stores_the_training_splits_statistics_and_a_moved_model_acts_the_same(trained: Path) -> None:
    dataset = trained / "eps/control-pendulum/expert-v0"
    episodes = list(iter_episodes(dataset))
    held = val_keys([f"episode-{e.id}" for e in episodes], 0.2)
    (key,) = episodes[0].observations  # the task's one observation field
    rows = np.concatenate([e.observations[key][:-1] for e in episodes if f"episode-{e.id}" not in held])
    entry = json.loads((trained / "run/model/sources.json").read_text())["sources"]["control-pendulum"]
    field = entry["fields"]["observation"][key]
    assert field["layout"] == "vector"
    np.testing.assert_allclose(field["mean"], rows.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(field["std"], rows.std(0), rtol=1e-5)
    data = json.loads((trained / "data/data.json").read_text())
    assert data["sources"]["control-pendulum"]["fields"]["observation"][key] == field
    # the model folder alone (no data, no episodes) acts as it did where it was trained
    moved = trained / "elsewhere/model"
    shutil.copytree(trained / "run/model", moved)
    returns = []
    for folder in (trained / "run/model", moved):
        out = folder.parent / "eval.json"
        r = _cli("eval", "--model", str(folder), "--source", "control-pendulum", "--episodes", "2",
                 "--max-steps", "25", "--no-progress", "--out", str(out), cwd=folder.parent)
        assert r.returncode == 0, r.stderr[-2000:]
        report = json.loads(out.read_text())
        returns.append([e["ret"] for e in report["sources"][0]["per_episode"]])
        assert report["sources"][0]["observation_layout"] == {key: "vector"}
    assert returns[0] == returns[1]
    model, _, _ = load_model(moved)
    assert model.cfg.obs_layout == "vector" and model.vector_embed is not None


@pytest.mark.parametrize("bad", ["missing", "short", "nan", "zero"])
def test_bad_statistics_in_a_model_folder_are_one_line_and_exit_2(trained: Path, bad: str) -> None:
    folder = trained / f"bad-{bad}"
    shutil.copytree(trained / "run/model", folder)
    listing = json.loads((folder / "sources.json").read_text())
    (field,) = listing["sources"]["control-pendulum"]["fields"]["observation"].values()
    if bad == "missing":
        del field["std"]
    elif bad == "short":
        field["mean"] = field["mean"][:2]
    elif bad == "nan":
        field["mean"][0] = float("nan")
    else:
        field["std"][1] = 0.0
    (folder / "sources.json").write_text(json.dumps(listing))
    r = _cli("eval", "--model", str(folder), "--source", "control-pendulum", "--episodes", "1",
             "--max-steps", "5", "--no-progress", "--out", str(trained / f"bad-{bad}.json"), cwd=trained)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and ("mean" in lines[0] or "std" in lines[0]), r.stderr
    assert not (trained / f"bad-{bad}.json").exists()


def test_a_nan_observation_is_refused_naming_its_field() -> None:
    env = MatchEnv(continuous=False)
    fields = _vector_fields(env)
    state = np.array([[0.1, np.nan, 0.2]], np.float32)
    with pytest.raises(TokenizationError, match=r"'state': continuous value nan at index \[0, 1\]"):
        observation_sequence({"image": np.zeros((1, 16, 32), np.uint8), "state": state}, fields, CFG)
    with pytest.raises(GatoError, match="its std has none"):
        FieldSpec.from_dict({**fields["state"].to_dict(), "std": None})


def test_a_nan_in_a_recorded_episode_stops_prepare_in_one_line(tmp_path: Path) -> None:
    from gymnasium import spaces

    from gato_mini.data.minari_writer import DatasetWriter

    obs_space = spaces.Box(-5, 5, (3,), np.float32)
    with DatasetWriter(tmp_path / "eps", "mine/nan-v0", obs_space, spaces.Discrete(2)) as w:
        for ep in range(4):
            obs = np.ones((6, 3), np.float32) * ep
            if ep == 2:
                obs[3, 1] = np.nan
            w.add(obs, np.zeros(5, np.int64), [0.0] * 5, [False] * 4 + [True], [False] * 5)
        dataset = w.commit()
    config = {"model": MODEL, "data": {"root": str(tmp_path / "data"), "val_fraction": 0.0,
                       "sources": {"mine": {"kind": "episodes", "dataset": str(dataset)}}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    r = _cli("prepare", "--config", str(tmp_path / "c.yaml"), "--no-progress", cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not finite" in lines[0], r.stderr
    assert not list((tmp_path / "data").glob("shards/mine/*/meta.json"))


def test_an_old_model_folder_loads_and_acts_unchanged(tmp_path: Path, text_tokenizer) -> None:
    """A folder written before the vector layout existed: its config.json has no obs_layout or
    vector_width, its weights no vector embedding, its fields no layout. It loads as Gato's per-value
    layout and acts exactly as the model it was written from."""
    env = MatchEnv(continuous=True)
    fields, action = observation_fields(env.observation_space), action_field(env.action_space)
    old_cfg = GatoConfig.from_dict({**CFG.to_dict(), "obs_layout": "values"})
    model = loud_model(old_cfg)
    text_tokenizer.save(tmp_path / "tok.json")
    sources = {"sources": {"match": {"kind": "episodes", "fields": {
        "observation": {k: f.to_dict() for k, f in fields.items()}, "action": action.to_dict()}}}}
    export_model(tmp_path / "old", model, tmp_path / "tok.json", sources)
    config = json.loads((tmp_path / "old/config.json").read_text())
    for key in ("obs_layout", "vector_width"):
        del config[key]
    (tmp_path / "old/config.json").write_text(json.dumps(config))
    assert "layout" not in (tmp_path / "old/sources.json").read_text()
    loaded, _, trained = load_model(tmp_path / "old")
    assert loaded.cfg.obs_layout == "values" and loaded.vector_embed is None
    from gato_mini.agent.eval_control import source_fields
    assert source_fields(trained["sources"]["match"]) == (fields, action)
    results = []
    for m in (model, loaded):
        agent = Agent(m, fields, action, 2, options=AgentOptions(Sampling(temperature=0.0)))
        results.append(run_agent(agent, [MatchEnv(True) for _ in range(2)], 3, 5, keep_actions=True))
    assert [r.actions for r in results[0]] == [r.actions for r in results[1]]
