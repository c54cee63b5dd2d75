"""Any gymnasium env end to end (issue 18): record an env outside the registry, train on it, evaluate
it from a model folder in another working directory, with references measured and cached."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from gato_mini.collect import Recording, run_episodes
from gato_mini.envs.user import user_task

EXE = shutil.which("gato-mini") or str(Path(sys.executable).parent / "gato-mini")
SMALL = {"name": "tiny", "n_layer": 2, "n_embd": 64, "n_head": 4, "block_size": 128, "text_vocab_size": 300}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


def _train(tmp: Path, name: str, dataset: str, val_fraction: float, steps: int) -> Path:
    """Train SMALL on one episodes source for ``steps`` steps through the command, from ``tmp`` (relative
    paths); the exported model folder."""
    cfg = {
        "model": SMALL,
        "data": {
            "root": "data",
            "val_fraction": val_fraction,
            "sources": {name: {"kind": "episodes", "dataset": dataset}},
        },
        "train": {"out": "run", "batch_size": 4, "warmup_steps": 1},
        "trainer": {"max_steps": steps, "val_check_interval": steps, "limit_val_batches": 1},
    }
    (tmp / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = _cli("train", "--config", "c.yaml", "--no-progress", cwd=tmp)
    assert r.returncode == 0, r.stderr
    return tmp / "run" / "model"


@pytest.fixture(scope="module")
def cartpole_model(tmp_path_factory) -> Path:
    """CartPole-v1 (not a registered task) recorded at a 30-step cap and trained for 4 steps."""
    tmp = tmp_path_factory.mktemp("userenv")
    run_episodes(user_task("CartPole-v1", 30), Recording("tests._data:cartpole_balance", 6, seed=0),
                 out=tmp / "eps", progress=False)
    return _train(tmp, "cartpole", "eps/cartpole-v1/tests-data-cartpole-balance-v0", 0.2, 4)


def test_record_train_and_evaluate_an_env_outside_the_registry(cartpole_model, tmp_path) -> None:
    entry = json.loads((cartpole_model / "sources.json").read_text())["sources"]["cartpole"]
    assert json.loads(entry["env_spec"])["id"] == "CartPole-v1" and entry["step_cap"] == 30
    returns = entry["dataset_return"]
    assert returns == {
        "mean": 30.0,
        "window": 6,
        "overall_mean": 30.0,
        "std": 0.0,
        "episodes": 6,
    }  # the balancing policy lasts to the cap
    assert Path(entry["options"]["dataset"]).is_absolute()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = _cli(
        "eval",
        "--model",
        str(cartpole_model),
        "--task",
        "cartpole",
        "--episodes",
        "3",
        "--num-envs",
        "2",
        "--out",
        "e.json",
        "--no-progress",
        cwd=elsewhere,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads((elsewhere / "e.json").read_text())["sources"][0]
    assert res["episodes"] == 3 and res["failed"] == 0 and res["expert"] == returns["mean"]
    assert res["references_from"]["random"].startswith(
        "measured at eval (CartPole-v1 cap=30 seed=1000 episodes=3)"
    )
    assert (
        "the training dataset's return, the best mean over 6 consecutive" in res["references_from"]["expert"]
    )
    base = max(res["random"], res["constant"])
    assert res["normalized_mean"] == pytest.approx(
        np.mean([100 * (e["ret"] - base) / (res["expert"] - base) for e in res["per_episode"]])
    )
    assert "offline accuracy" in r.stdout and res["offline"]["actions"] > 0
    assert "cartpole references: random measured at eval (CartPole-v1 cap=30" in r.stdout  # the table says
    cache = json.loads((cartpole_model / "references.json").read_text())
    assert list(cache) == ["CartPole-v1 cap=30 seed=1000 episodes=3"]
    assert set(cache["CartPole-v1 cap=30 seed=1000 episodes=3"]) == {"random", "constant"}
    before = (cartpole_model / "references.json").stat().st_mtime_ns
    r = _cli(
        "eval",
        "--model",
        str(cartpole_model),
        "--task",
        "cartpole",
        "--episodes",
        "3",
        "--out",
        "f.json",
        "--no-progress",
        "--no-offline",
        cwd=elsewhere,
    )
    assert r.returncode == 0, r.stderr
    assert (cartpole_model / "references.json").stat().st_mtime_ns == before  # cached: not measured again
    again = json.loads((elsewhere / "f.json").read_text())["sources"][0]
    assert (again["random"], again["constant"]) == (res["random"], res["constant"])


def test_an_env_whose_spaces_differ_or_that_cannot_be_recreated_is_one_line(cartpole_model, tmp_path) -> None:
    r = _cli(
        "eval",
        "--model",
        str(cartpole_model),
        "--task",
        "cartpole",
        "--env",
        "Pendulum-v1",
        "--episodes",
        "1",
        "--no-progress",
        cwd=tmp_path,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert (
        "cartpole: the env Pendulum-v1 has observation {observation: continuous (3,)}, action continuous "
        "(1,), but the model was trained on observation {observation: continuous (4,)}, action discrete () "
        "n=2" in r.stderr
    )
    model = tmp_path / "nospec"
    shutil.copytree(cartpole_model, model)
    trained = json.loads((model / "sources.json").read_text())
    trained["sources"]["cartpole"]["env_spec"] = None  # a dataset that stored no spec
    (model / "sources.json").write_text(json.dumps(trained))
    r = _cli(
        "eval", "--model", str(model), "--task", "cartpole", "--episodes", "1", "--no-progress", cwd=tmp_path
    )
    assert (
        r.returncode == 2
        and "its dataset stores no env spec, so its env cannot be recreated; pass --env ENV_ID" in r.stderr
    ), r.stderr
    r = _cli(
        "eval",
        "--model",
        str(model),
        "--task",
        "cartpole",
        "--env",
        "CartPole-v1",
        "--episodes",
        "1",
        "--no-progress",
        "--no-offline",
        "--out",
        "g.json",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr


def test_a_dataset_made_by_minaris_own_datacollector_trains_and_evaluates(tmp_path) -> None:
    """tests/fixtures/datacollector-cartpole was recorded by ``minari.DataCollector`` (raw CartPole
    observations, no gato-mini wrapper; tests/fixtures/make_datacollector_fixture.py). It trains as an
    episodes source, and eval rebuilds its env from the spec Minari stored."""
    from gato_mini.data.minari_io import dataset_fields, iter_episodes, open_dataset

    fixture = Path(__file__).resolve().parent / "fixtures" / "datacollector-cartpole"
    fields, action = dataset_fields(open_dataset(fixture))
    assert {k: f.shape for k, f in fields.items()} == {"observation": (4,)} and action.n == 2
    assert [len(e.actions) for e in iter_episodes(fixture)] == [40, 40, 40, 40]
    _train(tmp_path, "dc", str(fixture), 0.25, 2)
    r = _cli(
        "eval",
        "--model",
        "run/model",
        "--task",
        "dc",
        "--episodes",
        "2",
        "--out",
        "e.json",
        "--no-progress",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "e.json").read_text())["sources"][0]
    assert res["failed"] == 0 and res["expert"] == 40.0 and all(e["length"] <= 40 for e in res["per_episode"])
    assert res["offline"]["actions"] == 40  # one held-out episode of the four


def test_the_dataset_expert_is_its_best_windowed_mean() -> None:
    from gato_mini.references import best_windowed_mean

    assert best_windowed_mean([1.0, 2.0, 3.0]) == (2.0, 3)  # fewer than the window: the plain mean
    rising = [float(k) for k in range(150)]  # an improving agent: the last 100 episodes count
    assert best_windowed_mean(rising) == (float(np.mean(range(50, 150))), 100)
    assert best_windowed_mean([0.0, 10.0, 0.0, 0.0], window=2) == (5.0, 2)
