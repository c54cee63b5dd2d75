"""DAgger collection: a model acts, the expert labels every state it reaches, the dataset says so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gato_mini.agent.policy import ModelPolicy
from gato_mini.collect import Acting, Recording, rollout, run_episodes
from gato_mini.config import GatoConfig
from gato_mini.data.minari_io import iter_episodes, read_collection
from gato_mini.envs.registry import get_task
from gato_mini.errors import GatoError
from gato_mini.model import GatoModel
from gato_mini.model.export import export_model
from gato_mini.tokenizers import TextTokenizer
from tests._fakeenvs import Executed

EXE = shutil.which("gato-mini") or str(Path(sys.executable).parent / "gato-mini")
CFG = GatoConfig.from_name("tiny", n_layer=2, n_embd=64, n_head=4, block_size=128, text_vocab_size=300)


class _Pushes:
    """A stand-in for a model: always the same torque, counting the states it saw."""

    def __init__(self, torque: float) -> None:
        self.torque, self.seen, self.resets = torque, 0, []

    def reset(self, env, seed=None):
        self.resets.append(seed)

    def __call__(self, obs, env):
        self.seen += 1
        return np.array([self.torque], np.float32)


def _relabel(task, env, observations, seed):
    expert = task.policy("expert")
    expert.reset(env, seed)
    return np.stack([expert({"state": o}, env) for o in observations])


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_the_model_acts_and_the_expert_is_logged(share) -> None:
    task = get_task("control-pendulum")
    env = Executed(task.make(max_steps=60))
    model = _Pushes(1.5)
    rec = rollout(task, env, "expert", 7, record=True, acting=Acting(model, "a fake model", share))
    logged, executed = np.stack(rec.actions), np.stack(env.executed)
    assert len(logged) == len(executed) == 60 and model.seen == 60 and model.resets == [7]
    # the logged action is the expert's in the very state logged, whoever acted
    np.testing.assert_allclose(_relabel(task, env, rec.observations["state"][:60], 7), logged, atol=1e-6)
    by_model = np.isclose(executed[:, 0], 1.5)
    if share == 0:
        assert by_model.all()
    else:  # the expert's own action on about half the steps
        assert 0.25 < 1 - by_model.mean() < 0.75
        np.testing.assert_allclose(executed[~by_model], logged[~by_model], atol=1e-6)
    # the states are the model's: a different trajectory from the expert's own, from the same seed
    clean = rollout(task, task.make(max_steps=60), "expert", 7, record=True)
    assert not np.allclose(np.stack(clean.observations["state"]), np.stack(rec.observations["state"]))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("daggermodel")
    torch.manual_seed(0)
    fields, action = get_task("control-pendulum").fields()
    sources = {"sources": {"control-pendulum": {
        "kind": "episodes", "fields": {"observation": {k: f.to_dict() for k, f in fields.items()},
                                       "action": action.to_dict()},
        "options": {"dataset": str(tmp / "eps" / "control-pendulum" / "expert-v0")}, "val_fraction": 0.5}}}
    TextTokenizer.train(["a few words"], 300).save(tmp / "tok.json")
    export_model(tmp / "model", GatoModel(CFG), tmp / "tok.json", sources)
    return tmp / "model"


def _collect(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([EXE, "collect", "--no-progress", "--out", str(cwd / "eps"), *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def test_collect_with_a_model_folder_writes_a_dagger_dataset(model_dir: Path, tmp_path: Path) -> None:
    r = _collect(tmp_path, "--task", "control-pendulum", "--model", str(model_dir), "--episodes", "2",
                 "--max-steps", "25", "--seed", "3", "--policy-share", "0.25")
    assert r.returncode == 0, r.stderr
    said = "control-pendulum labelled by expert, acted by the model (0.25 by the policy): 2 episodes"
    assert said in r.stdout
    path = tmp_path / "eps" / "control-pendulum" / "expert-dagger-v0"
    meta = read_collection(path)
    assert meta["policy"] == "expert" and meta["acting"]["policy_share"] == 0.25
    assert meta["acting"]["by"].startswith(f"model {model_dir.resolve()} (source control-pendulum, greedy")
    assert meta["acting"]["logged"] == "the expert policy's action at every state"
    task = get_task("control-pendulum")
    env = task.make(max_steps=25)
    for k, ep in enumerate(iter_episodes(path)):
        assert len(ep.actions) == 25
        np.testing.assert_allclose(_relabel(task, env, ep.observations["state"][:-1], 3 + k), ep.actions,
                                   atol=1e-6)
    # the same episodes from Python, the model acting as ModelPolicy does: the same states
    policy = ModelPolicy(model_dir, task)
    again = run_episodes(task, Recording("expert", 2, seed=3, max_steps=25, share=0.25), progress=False,
                         acting=lambda t: Acting(policy, "the same model"))
    assert again.returns == pytest.approx([e.episode_return for e in iter_episodes(path)], rel=1e-5)


def test_a_model_policy_plays_what_the_agent_plays(model_dir: Path) -> None:
    from gato_mini.agent.agent import Agent
    from gato_mini.model.export import load_model

    task = get_task("control-pendulum")
    env = task.make(max_steps=10)
    policy = ModelPolicy(model_dir, task)
    model, tok, _ = load_model(model_dir)
    fields, action = task.fields()
    agent = Agent(model, fields, action, 1, tok)
    obs, _ = env.reset(seed=1)
    policy.reset(env, 1)
    agent.reset(0)
    for _ in range(10):
        a, b = policy(obs, env), agent.act({0: obs})[0]
        np.testing.assert_array_equal(a, b)
        obs, *_ = env.step(a)


class _BatchedPushes:
    """A stand-in for a batched model: per slot, push the cart the way its pole leans unless the slot's
    seed is odd (then always left), so episodes end at different steps."""

    def __init__(self, num_envs: int) -> None:
        self.num_envs, self.seeds, self.calls = num_envs, {}, 0

    def reset_slot(self, slot, seed=None):
        self.seeds[slot] = seed

    def act_slots(self, observations, env):
        self.calls += 1
        lean = {i: np.ravel(next(iter(o.values())))[2] for i, o in observations.items()}
        return {i: 0 if self.seeds[i] % 2 else int(lean[i] > 0) for i in observations}

    def reset(self, env, seed=None):  # the one-env protocol, for the reference run
        self.reset_slot(0, seed)

    def __call__(self, obs, env):
        return self.act_slots({0: obs}, env)[0]


def test_a_batched_model_records_each_episode_as_one_env_would(tmp_path: Path) -> None:
    from gato_mini.envs.user import user_task

    task = user_task("CartPole-v1", 200)
    batched = _BatchedPushes(3)
    r = run_episodes(task, Recording("tests._data:cartpole_balance", 7, seed=10, share=0.3), out=tmp_path,
                     progress=False, acting=lambda t: Acting(batched, "a fake batched model"))
    one = run_episodes(task, Recording("tests._data:cartpole_balance", 7, seed=10, share=0.3), progress=False,
                       acting=lambda t: Acting(_BatchedPushes(1), "the same, one env"))
    lengths = [len(ep.actions) for ep in iter_episodes(r.path)]
    assert len(set(lengths)) > 1  # episodes of different lengths, ending out of order
    assert r.returns == one.returns and r.steps == one.steps == sum(lengths)
    assert [ep.id for ep in iter_episodes(r.path)] == list(range(7))  # written in seed order
    assert batched.calls < one.steps / 2  # one model call acts in several envs


USER = "def push(obs):\n    return 0\n"


@pytest.mark.parametrize("args, message", [
    (["--task", "control-pendulum", "--model", "nowhere"], "--model nowhere: no such model folder"),
    (["--task", "control-pendulum", "--model", "."], "lacks config.json"),
    (["--task", "mujoco-reacher", "--model", "MODEL"],
     "the model MODEL was not trained on the fields of mujoco-reacher"),
    (["--task", "control-pendulum", "--model", "MODEL", "--policy", "random"],
     "a model acting needs a labeller that knows the task: --policy random labels nothing"),
    (["--env", "CartPole-v1", "--model", "MODEL", "--policy", "expert"],
     "CartPole-v1 has no scripted expert"),
    (["--env", "CartPole-v1", "--model", "MODEL", "--policy", "user:push"],
     "the model MODEL was not trained on the fields of cartpole-v1"),
    (["--task", "control-pendulum", "--policy-share", "0.5"], "--policy-share is the share of steps"),
    (["--task", "control-pendulum", "--model", "MODEL", "--policy-share", "2"],
     "--policy-share must be between 0 and 1"),
    (["--task", "control-pendulum", "--temperature", "1"], "--temperature is the sampling of a model acting"),
    (["--task", "control-pendulum", "--model", "MODEL", "--num-envs", "0"], "--num-envs must be at least 1"),
    (["--task", "control-pendulum", "--num-envs", "4"], "--num-envs is how many envs a model acts"),
])
def test_dagger_bad_input_is_one_line_exit_2_and_writes_nothing(model_dir, tmp_path, args, message) -> None:
    (tmp_path / "user.py").write_text(USER)
    args = [str(model_dir) if a == "MODEL" else a for a in args]
    r = _collect(tmp_path, *args, "--episodes", "2", "--max-steps", "10")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message.replace("MODEL", str(model_dir)) in lines[0], r.stderr
    assert not (tmp_path / "eps").exists() or not any((tmp_path / "eps").rglob("*.hdf5"))


def test_acting_source_picks_by_name_then_by_fields(model_dir: Path) -> None:
    from gato_mini.agent.policy import acting_source
    from gato_mini.envs.user import user_task

    trained = json.loads((model_dir / "sources.json").read_text())
    fields, action = get_task("control-pendulum").fields()
    assert acting_source(trained, "control-pendulum", fields, action, "m") == "control-pendulum"
    assert acting_source(trained, "my-pendulum", fields, action, "m") == "control-pendulum"  # by its fields
    trained["sources"]["copy"] = trained["sources"]["control-pendulum"]
    with pytest.raises(GatoError, match="several sources with the fields of my-pendulum"):
        acting_source(trained, "my-pendulum", fields, action, "m")
    # one env's datasets (demonstrations and a DAgger round) as two sources: the first one recorded there
    for name in ("control-pendulum", "copy"):
        trained["sources"][name] = {**trained["sources"][name], "env_spec": json.dumps({"id": "Pendulum-v1"})}
    assert acting_source(trained, "my-pendulum", fields, action, "m", "Pendulum-v1") == "control-pendulum"
    with pytest.raises(GatoError, match="several sources"):
        acting_source(trained, "my-pendulum", fields, action, "m", "OtherPendulum-v0")
    reacher = user_task("Reacher-v5").fields()
    with pytest.raises(GatoError, match="control-pendulum: the env has observation"):
        acting_source(trained, "control-pendulum", *reacher, "m")


def test_a_model_acting_is_unprompted_unless_given_demonstrations(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    task = get_task("control-pendulum")
    fields, action = task.fields()
    run_episodes(task, Recording("expert", 2, seed=0, max_steps=30), out=tmp_path / "eps", progress=False)
    dataset = tmp_path / "eps" / "control-pendulum" / "expert-v0"
    sources = {"sources": {"control-pendulum": {
        "kind": "episodes", "fields": {"observation": {k: f.to_dict() for k, f in fields.items()},
                                       "action": action.to_dict()},
        "options": {"dataset": str(dataset)}, "val_fraction": 0.5}}}
    TextTokenizer.train(["a few words"], 300).save(tmp_path / "tok.json")
    export_model(tmp_path / "model", GatoModel(CFG), tmp_path / "tok.json", sources)
    assert ModelPolicy(tmp_path / "model", task).agent.prompt is None  # its own data is here: still none
    policy = ModelPolicy(tmp_path / "model", task, prompt_dataset=str(dataset))
    assert policy.prompt_name.startswith(f"{dataset} (") and policy.agent.prompt is not None
