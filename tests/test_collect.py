"""Collection: datasets load back bit-exact, reproducible from the seed, never half-written."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

from gato_mini.collect import Recording, rollout, run_episodes
from gato_mini.data.minari_io import iter_episodes, open_dataset
from gato_mini.data.minari_writer import DatasetWriter
from gato_mini.envs.registry import get_task
from gato_mini.errors import FileFormatError, GatoError
from gato_mini.fields import UnsupportedSpaceError
from tests._fakeenvs import Executed

EXE = shutil.which("gato-mini") or str(Path(sys.executable).parent / "gato-mini")


def collect(tmp_path, task="atari-pong", episodes=2, seed=3, cap=40, **kw):
    return run_episodes(task, Recording("expert", episodes, seed=seed, max_steps=cap, **kw), out=tmp_path,
                        progress=False)


@pytest.mark.parametrize(("task", "policy"), [("atari-breakout", "expert"), ("mujoco-reacher", "random")])
def test_dataset_equals_what_the_env_produced(tmp_path, task, policy):
    result = run_episodes(task, Recording(policy, 2, seed=5, max_steps=30), out=tmp_path, progress=False)
    assert result.path == tmp_path / task / f"{policy}-v0"
    t = get_task(task)
    env = t.make(max_steps=30)
    episodes = list(iter_episodes(result.path))
    assert len(episodes) == 2
    for i, ep in enumerate(episodes):
        rec = rollout(t, env, policy, 5 + i, record=True)  # replay the same seed, by hand
        for key, rows in rec.observations.items():
            logged = ep.observations[key]
            assert logged.dtype == np.asarray(rows[0]).dtype
            assert np.array_equal(logged, np.stack(rows))  # bit-exact frames / states
        assert np.array_equal(ep.actions, np.stack(rec.actions))
        assert np.array_equal(ep.rewards, np.asarray(rec.rewards))
        assert ep.steps == rec.steps and ep.episode_return == pytest.approx(rec.episode_return)
        assert ep.terminations[-1] or ep.truncations[-1]
    env.close()
    # Minari itself opens it too.
    import minari

    ds = minari.MinariDataset(str(result.path / "data"))
    assert ds.total_episodes == 2 and ds.total_steps == sum(e.steps for e in episodes)
    assert ds.storage.metadata["jpeg_encoding"] is False


def test_same_seed_gives_identical_episodes(tmp_path):
    a = collect(tmp_path / "a")
    b = collect(tmp_path / "b")
    for ea, eb in zip(iter_episodes(a.path), iter_episodes(b.path), strict=True):
        assert np.array_equal(ea.observations["image"], eb.observations["image"])
        assert np.array_equal(ea.actions, eb.actions) and np.array_equal(ea.rewards, eb.rewards)
    c = collect(tmp_path / "c", seed=4)
    first_a, first_c = next(iter_episodes(a.path)), next(iter_episodes(c.path))
    assert not np.array_equal(first_a.observations["image"][:30], first_c.observations["image"][:30])


def test_existing_dataset_needs_overwrite(tmp_path):
    collect(tmp_path, episodes=1)
    with pytest.raises(GatoError, match="already holds a dataset.*--overwrite"):
        collect(tmp_path, episodes=1)
    collect(tmp_path, episodes=3, overwrite=True)
    assert len(list(iter_episodes(tmp_path / "atari-pong" / "expert-v0"))) == 3
    assert not list(tmp_path.glob(".staging-*"))


def test_a_crash_mid_run_leaves_no_dataset_and_the_rerun_keeps_the_finished_episodes(tmp_path, monkeypatch):
    task = get_task("control-pendulum")
    calls = {"n": 0}
    real = type(task).policy

    class Exploding:
        def reset(self, env, seed=None):
            pass

        def __call__(self, obs, env):
            calls["n"] += 1
            if calls["n"] > 250:  # in the second episode: the first is already written
                raise RuntimeError("boom")
            return env.action_space.sample()

    monkeypatch.setattr(type(task), "policy", lambda self, kind: Exploding())
    with pytest.raises(RuntimeError, match="boom"):
        run_episodes("control-pendulum", Recording("expert", 3), out=tmp_path, progress=False)
    assert not (tmp_path / "control-pendulum" / "expert-v0").exists()  # never half visible
    assert [p.name for p in tmp_path.glob(".partial-*/chunk-*")] == ["chunk-0000000"]  # episode 0, sealed
    monkeypatch.setattr(type(task), "policy", real)
    result = run_episodes("control-pendulum", Recording("expert", 3), out=tmp_path,
                          progress=False)  # the same call
    assert result.resumed_steps == 200 and len(result.returns) == 3  # episode 0 was not redone
    assert len(list(iter_episodes(result.path))) == 3 and not list(tmp_path.glob(".partial-*"))
    monkeypatch.setattr(type(task), "policy", lambda self, kind: Exploding())
    calls["n"] = 0
    with pytest.raises(RuntimeError, match="boom"):
        run_episodes("control-pendulum", Recording("expert", 3), out=tmp_path / "b", progress=False)
    monkeypatch.setattr(type(task), "policy", real)
    with pytest.raises(GatoError, match=r"interrupted collection made with other settings \(seed\); rerun"):
        run_episodes("control-pendulum", Recording("expert", 3, seed=5), out=tmp_path / "b",
                     progress=False)
    fresh = run_episodes("control-pendulum", Recording("expert", 3, seed=5, overwrite=True),
                         out=tmp_path / "b", progress=False)
    assert _seeds(fresh.path) == [{"seed": s} for s in (5, 6, 7)]


def _seeds(path):
    storage = open_dataset(path).storage
    return [{"seed": int(m["seed"])} for m in storage.get_episode_metadata(range(storage.total_episodes))]


def _pong(out, episodes, *extra):
    return [EXE, "collect", "--task", "atari-pong", "--episodes", str(episodes), "--max-steps", "40",
            "--seed", "7", "--chunk-steps", "100", "--out", str(out), "--no-progress", *extra]


def test_a_collection_killed_mid_recording_resumes_to_the_uninterrupted_dataset(tmp_path):
    """SIGKILL once chunks are sealed: nothing is visible as a dataset; the same command again records
    only the missing episodes, and the result equals an uninterrupted run's, episode for episode (frames,
    actions, rewards, ends, seeds) and in its record of how it was made."""
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = subprocess.Popen(_pong(killed, 30), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(killed.glob(".partial-*/chunk-*/chunk.json"))) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    sealed = len(list(killed.glob(".partial-*/chunk-*/chunk.json")))
    assert sealed >= 2, "the kill should have hit mid-recording"
    assert not (killed / "atari-pong" / "expert-v0").exists()
    rerun = subprocess.run(_pong(killed, 30)[:-1], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming after" in rerun.stderr and "episodes an interrupted run recorded" in rerun.stderr
    assert not list(killed.glob(".partial-*")) and not list(killed.glob(".staging-*"))
    subprocess.run(_pong(whole, 30), check=True, capture_output=True, timeout=300)
    a, b = killed / "atari-pong" / "expert-v0", whole / "atari-pong" / "expert-v0"
    for ea, eb in zip(iter_episodes(a), iter_episodes(b), strict=True):
        assert ea.id == eb.id and np.array_equal(ea.observations["image"], eb.observations["image"])
        for field in ("actions", "rewards", "terminations", "truncations"):
            assert np.array_equal(getattr(ea, field), getattr(eb, field)), field
    assert _seeds(a) == _seeds(b) == [{"seed": 7 + i} for i in range(30)]
    assert (a / "collection.json").read_text() == (b / "collection.json").read_text()
    assert open_dataset(a).total_steps == open_dataset(b).total_steps == 30 * 40


def test_generic_minari_dataset_with_plain_spaces(tmp_path):
    obs_space = spaces.Box(-2.0, 2.0, (3,), np.float32)
    act_space = spaces.MultiDiscrete([3, 4])
    with DatasetWriter(tmp_path, "plain/demo-v0", obs_space, act_space) as w:
        w.add(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, np.array([[0, 1], [2, 3], [1, 0]]),
              [0.0, 1.0, 0.5], [False, False, True], [False] * 3)
        path = w.commit()
    (ep,) = list(iter_episodes(path))
    assert list(ep.observations) == ["observation"]
    assert ep.observations["observation"].shape == (4, 3)
    assert ep.actions.tolist() == [[0, 1], [2, 3], [1, 0]] and ep.episode_return == 1.5


def test_unsupported_space_is_named(tmp_path):
    with DatasetWriter(tmp_path, "odd/tuple-v0", spaces.Box(0, 1, (2,)), spaces.Discrete(2000)) as w:
        w.add(np.zeros((3, 2), np.float32), np.array([5, 1999]), [0.0, 0.0], [False, True], [False, False])
        path = w.commit()
    with pytest.raises(UnsupportedSpaceError, match="Discrete\\(2000\\)"):
        next(iter_episodes(path))


def test_zero_length_episode_is_refused(tmp_path):
    with DatasetWriter(tmp_path, "x/empty-v0", spaces.Box(0, 1, (2,)), spaces.Discrete(2)) as w:
        with pytest.raises(GatoError, match="length zero"):
            w.add(np.zeros((1, 2), np.float32), np.zeros(0, np.int64), [], [], [])


def test_missing_corrupt_and_truncated_datasets(tmp_path):
    with pytest.raises(FileFormatError, match="not found"):
        open_dataset(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileFormatError, match="not a Minari dataset"):
        open_dataset(tmp_path / "empty")
    path = collect(tmp_path / "ds", episodes=2, cap=100).path
    h5 = path / "data" / "main_data.hdf5"
    data = h5.read_bytes()
    h5.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(FileFormatError, match="corrupt|cannot open"):
        list(iter_episodes(path))
    h5.write_bytes(b"\x00" * 1000)  # garbage
    with pytest.raises(FileFormatError):
        list(iter_episodes(path))
    h5.unlink()
    with pytest.raises(FileFormatError, match="no main_data.hdf5"):
        list(iter_episodes(path))


def test_bad_arguments(tmp_path):
    with pytest.raises(GatoError, match="unknown policy"):
        run_episodes("atari-pong", Recording("human", 1), out=tmp_path, progress=False)
    with pytest.raises(GatoError, match="--episodes"):
        run_episodes("atari-pong", Recording("expert", 0), out=tmp_path, progress=False)
    with pytest.raises(GatoError, match="--max-steps"):
        run_episodes("atari-pong", Recording("expert", 1, max_steps=-5), out=tmp_path, progress=False)
    with pytest.raises(GatoError, match="--chunk-steps must be positive, got 0"):  # not the default
        run_episodes("atari-pong", Recording("expert", 1, chunk_steps=0), out=tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


def test_relative_out_folder(tmp_path, monkeypatch):
    """`--out eps` relative to the working directory (Minari itself mangles relative paths)."""
    monkeypatch.chdir(tmp_path)
    result = run_episodes("control-pendulum", Recording("expert", 1, seed=0, max_steps=10), out="eps",
                          progress=False)
    assert result.path == tmp_path / "eps" / "control-pendulum" / "expert-v0"
    assert len(list(iter_episodes(Path("eps") / "control-pendulum" / "expert-v0"))) == 1


def test_writer_commits_when_the_block_ends_and_discards_on_an_exception(tmp_path):
    obs_space, act_space = spaces.Box(0, 1, (2,), np.float32), spaces.Discrete(2)
    episode = (np.zeros((3, 2), np.float32), np.array([0, 1]), [1.0, 1.0], [False, True], [False, False])
    with DatasetWriter(tmp_path, "mine/kept-v0", obs_space, act_space) as w:
        w.add(*episode, seed=0)  # no explicit commit: the end of the block commits
    assert len(list(iter_episodes(tmp_path / "mine" / "kept-v0"))) == 1
    with pytest.raises(RuntimeError, match="policy crashed"):
        with DatasetWriter(tmp_path, "mine/lost-v0", obs_space, act_space) as w:
            w.add(*episode, seed=0)
            raise RuntimeError("policy crashed")
    assert not (tmp_path / "mine" / "lost-v0").exists() and not list(tmp_path.glob(".staging-*"))


@pytest.mark.parametrize("task", ["control-pendulum", "atari-pong"])
def test_dart_noise_executes_the_noisy_action_and_logs_the_clean_one(task):
    t = get_task(task)
    env = Executed(t.make(max_steps=60))
    rec = rollout(t, env, "expert", 7, record=True, noise=0.5)
    logged, executed = np.stack(rec.actions), np.stack(env.executed)
    assert len(logged) == len(executed) == 60
    differs = np.mean([not np.array_equal(a, b) for a, b in zip(logged, executed, strict=True)])
    if task == "control-pendulum":
        assert differs > 0.8  # Gaussian noise moves every torque that is not clipped back to a bound
        # the logged action is what the expert says in the state that was logged
        expert = t.policy("expert")
        expert.reset(env, 7)
        obs = rec.observations["state"]
        again = np.stack([expert({"state": obs[k]}, env) for k in range(60)])
        np.testing.assert_allclose(again, logged, rtol=0, atol=1e-6)
        space = env.action_space
        assert np.all(executed >= space.low) and np.all(executed <= space.high)
    else:
        # a random action with probability 0.5, which is the expert's own one time in six
        assert 0.2 < differs < 0.65
    # the noisy run visits other states than the clean one, from the same seed
    clean = rollout(t, t.make(max_steps=60), "expert", 7, record=True)
    key = next(iter(rec.observations))
    assert not np.array_equal(np.stack(clean.observations[key]), np.stack(rec.observations[key]))


def test_collection_metadata_round_trips(tmp_path):
    from gato_mini.data.minari_io import read_collection

    noisy = collect(tmp_path / "a", task="control-pendulum", episodes=2, seed=4, cap=20, noise=0.2)
    meta = read_collection(noisy.path)
    assert meta == {"task": "control-pendulum", "env_id": "Pendulum-v1", "policy": "expert", "seed": 4,
                    "episodes": 2, "step_cap": 20,
                    "noise": {"kind": "dart", "scale": 0.2, "logged": "the policy's clean action",
                              "executed": "Gaussian noise of sd 0.2 x half the action range, clipped"}}
    assert "DART" in open_dataset(noisy.path).storage.metadata["description"]
    clean = collect(tmp_path / "b", task="atari-pong", episodes=1, cap=10)
    assert read_collection(clean.path)["noise"] is None
    assert read_collection(clean.path / "data")["task"] == "atari-pong"  # the data folder works too
    (clean.path / "collection.json").write_text("{not json")
    with pytest.raises(FileFormatError, match="collection.json is corrupt"):
        read_collection(clean.path)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(GatoError, match="--noise must be between 0 and 1"):
            collect(tmp_path / "c", noise=bad)
    assert not (tmp_path / "c").exists()


def test_a_tasks_other_demonstrator_records_its_own_dataset(tmp_path):
    from gato_mini.data.minari_io import read_collection

    result = run_episodes("atari-pong", Recording("tracker", 1, seed=2, max_steps=60), out=tmp_path,
                          progress=False)
    assert result.path == tmp_path / "atari-pong" / "tracker-v0"
    assert read_collection(result.path)["policy"] == "tracker"
    actions = next(iter_episodes(result.path)).actions
    assert set(np.unique(actions)) <= {0, 2, 3}  # NOOP, up, down: it only steers
    with pytest.raises(GatoError, match="unknown policy 'trackr' for atari-pong; use one of .*'tracker'"):
        run_episodes("atari-pong", Recording("trackr", 1), out=tmp_path, progress=False)
    with pytest.raises(GatoError, match="unknown policy 'tracker' for mujoco-reacher"):
        run_episodes("mujoco-reacher", Recording("tracker", 1), out=tmp_path, progress=False)


def test_a_constant_button_outside_the_action_set_and_a_constant_for_captions_are_one_line(tmp_path):
    from gato_mini.reports.tables import print_scores

    with pytest.raises(GatoError, match="constant action 9 is outside the 6 actions"):
        run_episodes("atari-pong", Recording("constant:9", 1), out=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(GatoError, match="caption-shapes is a captioning task: it has no constant action"):
        print_scores(["caption-shapes"], 1, 0, None, False, False, policies=("constant",))


@pytest.mark.parametrize("name", ["atari-pong", "control-pendulum"])
def test_a_collected_dataset_stores_the_env_spec_and_minari_recreates_the_env(tmp_path, name) -> None:
    """Issue 18: the dataset records its env (every wrapper with its arguments), so the env can be
    rebuilt later with Minari's ``recover_environment``, without the command line that made it."""
    from gato_mini.data.minari_io import open_dataset
    from gato_mini.envs.registry import get_task

    run_episodes(name, Recording("random", 1, seed=0, max_steps=6), out=tmp_path, progress=False)
    ds = open_dataset(tmp_path / name / "random-v0")
    env, ref = ds.recover_environment(), get_task(name).make(6)
    try:
        assert env.spec.id == get_task(name).env_id and env.spec.max_episode_steps == 6
        assert env.observation_space == ds.observation_space and env.action_space == ds.action_space
        a, _ = env.reset(seed=11)
        b, _ = ref.reset(seed=11)
        assert all(np.array_equal(a[k], b[k]) for k in b)
    finally:
        env.close()
        ref.close()


USER_MODULE = '''
import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Corridor(gym.Env):
    """Walk right to the end of a corridor: the observation is the position in [0, 1] (float64)."""

    def __init__(self, length=10):
        self.length = length
        self.observation_space = spaces.Box(0.0, 1.0, (1,), np.float64)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = int(self.np_random.integers(0, 3))
        return np.array([self.pos / self.length]), {}

    def step(self, action):
        self.pos = max(0, self.pos + (1 if action == 1 else -1))
        done = self.pos >= self.length
        return np.array([self.pos / self.length]), float(done), done, False, {}


gym.register("MyCorridor-v0", entry_point="corridor:Corridor", max_episode_steps=40)
gym.register("MyCallableCorridor-v0", entry_point=Corridor, max_episode_steps=40)  # no serializable spec


def walk_right(obs):
    return 1


def out_of_space(obs):
    return 5
'''


def _collect(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([EXE, "collect", "--no-progress", "--out", str(tmp_path / "eps"), *args],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)


def test_collect_any_gymnasium_env_with_a_user_policy(tmp_path) -> None:
    from gato_mini.data.minari_io import iter_episodes, open_dataset, read_collection
    from gato_mini.fields import observation_fields

    (tmp_path / "corridor.py").write_text(USER_MODULE)
    r = _collect(tmp_path, "--env", "MyCorridor-v0", "--import", "corridor", "--policy",
                 "corridor:walk_right", "--episodes", "3")
    assert r.returncode == 0, r.stderr
    path = tmp_path / "eps" / "mycorridor-v0" / "corridor-walk-right-v0"
    eps = list(iter_episodes(path))
    assert [e.episode_return for e in eps] == [1.0, 1.0, 1.0] and all((e.actions == 1).all() for e in eps)
    ds = open_dataset(path)
    assert observation_fields(ds.observation_space)["observation"].modality == "continuous"
    assert eps[0].observations["observation"].dtype == np.float32  # float64 is stored as float32
    assert ds.spec.env_spec.id == "MyCorridor-v0"  # recoverable once the module is imported
    r = _collect(tmp_path, "--env", "corridor:MyCorridor-v0", "--episodes", "2")  # gymnasium's module:id form
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "eps" / "corridor-mycorridor-v0" / "random-v0").is_dir()
    # an env registered with a class has no serializable spec: recorded anyway, and collection.json says so
    r = _collect(tmp_path, "--env", "MyCallableCorridor-v0", "--import", "corridor", "--episodes", "1")
    assert r.returncode == 0, r.stderr
    path = tmp_path / "eps" / "mycallablecorridor-v0" / "random-v0"
    assert open_dataset(path).spec.env_spec is None
    assert read_collection(path)["env_spec"].startswith("not stored: Callable found")


@pytest.mark.parametrize("args, message", [
    (["--env", "CartPol-v1"], "unknown gymnasium env 'CartPol-v1' (did you mean 'CartPole-v1'?)"),
    (["--env", "CartPole-v1", "--policy", "corridor:out_of_space", "--import", "corridor"],
     "policy corridor:out_of_space returned 5, outside the action space Discrete(2)"),
    (["--env", "CartPole-v1", "--policy", "nomodule:fn"], "cannot import 'nomodule': ModuleNotFoundError"),
    (["--env", "CartPole-v1", "--policy", "corridor:nothing", "--import", "corridor"],
     "policy 'corridor:nothing': corridor has no callable 'nothing'"),
    (["--env", "CartPole-v1", "--policy", "expert"], "CartPole-v1 has no scripted expert"),
    (["--env", "Blackjack-v1"],
     "field 'observation': space Tuple(Discrete(32), Discrete(11), Discrete(2)) is not supported"),
    (["--env", "CartPole-v1", "--import", "no_such_module"], "cannot import 'no_such_module'"),
])
def test_collect_env_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message) -> None:
    (tmp_path / "corridor.py").write_text(USER_MODULE)
    r = _collect(tmp_path, *args, "--episodes", "2")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not (tmp_path / "eps").exists() or not any((tmp_path / "eps").rglob("*.hdf5"))


def test_datasets_by_minari_id_and_with_a_tilde(tmp_path, monkeypatch) -> None:
    """Issue 18: a Minari dataset id resolves in Minari's root (MINARI_DATASETS_PATH, else
    ~/.minari/datasets), and ``~`` in a path is expanded."""
    from gato_mini.data.minari_io import dataset_folder, open_dataset

    home = tmp_path / "home"
    root = home / ".minari" / "datasets"
    run_episodes("control-pendulum", Recording("random", 1, seed=0, max_steps=5), out=root, progress=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    expected = root / "control-pendulum" / "random-v0" / "data"
    assert dataset_folder("control-pendulum/random-v0") == expected  # the default root
    assert dataset_folder("~/.minari/datasets/control-pendulum/random-v0") == expected
    assert open_dataset("control-pendulum/random-v0").total_steps == 5
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "elsewhere"))
    with pytest.raises(FileFormatError, match="dataset not found: control-pendulum/random-v0"):
        dataset_folder("control-pendulum/random-v0")  # MINARI_DATASETS_PATH wins


def test_a_resumed_collection_may_ask_for_more_episodes_but_not_fewer(tmp_path, monkeypatch):
    """Only ``--episodes`` may change between the interrupted run and its rerun: more goes on after
    the sealed episodes (same seeds), fewer than were sealed is refused in one line."""
    task = get_task("control-pendulum")
    real, calls = type(task).policy, {"n": 0}

    class Exploding:
        def reset(self, env, seed=None):
            pass

        def __call__(self, obs, env):
            calls["n"] += 1
            if calls["n"] > 450:  # in the third episode: two are sealed
                raise RuntimeError("boom")
            return env.action_space.sample()

    monkeypatch.setattr(type(task), "policy", lambda self, kind: Exploding())
    with pytest.raises(RuntimeError, match="boom"):
        run_episodes("control-pendulum", Recording("expert", 3), out=tmp_path, progress=False)
    monkeypatch.setattr(type(task), "policy", real)
    with pytest.raises(GatoError, match="holds 2 episodes of an interrupted collection, more than the 1 "):
        run_episodes("control-pendulum", Recording("expert", 1), out=tmp_path, progress=False)
    more = run_episodes("control-pendulum", Recording("expert", 4), out=tmp_path, progress=False)
    assert more.resumed_steps == 400 and len(more.returns) == 4
    assert _seeds(more.path) == [{"seed": s} for s in range(4)]
