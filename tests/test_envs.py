"""The task suite: wrappers against fake envs, every task builds and steps, experts beat random."""

from __future__ import annotations

import cv2
import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from gato_mini.collect import rollout
from gato_mini.envs.policies import reflect
from gato_mini.envs.registry import TASKS, UnknownTaskError, get_task, load_references
from gato_mini.envs.wrappers import AtariFrame, DictObservation, Float32Observation, _max_pool, unit_actions
from gato_mini.errors import GatoError
from gato_mini.fields import FieldSpec, action_field, observation_fields
from tests._fakeenvs import SampledEnv

RGB = spaces.Box(0, 255, (210, 160, 3), np.uint8)


def test_atari_frame_resizes_to_gray():
    env = AtariFrame(SampledEnv(RGB), (80, 80), grayscale=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (80, 80, 1) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    raw = SampledEnv(RGB)
    raw.reset(seed=0)
    expect = cv2.resize(cv2.cvtColor(raw._obs(), cv2.COLOR_RGB2GRAY), (80, 80), interpolation=cv2.INTER_AREA)
    assert np.array_equal(obs[..., 0], expect)
    color = AtariFrame(SampledEnv(RGB), (64, 48), grayscale=False)
    assert color.reset(seed=0)[0].shape == (64, 48, 3)


@pytest.mark.parametrize("space", [spaces.Box(0, 1, (10, 10, 3), np.float32),
                                   spaces.Box(0, 255, (8, 8), np.uint8), spaces.Discrete(3)])
def test_atari_frame_refuses_non_rgb(space):
    with pytest.raises(TypeError, match="uint8 RGB"):
        AtariFrame(SampledEnv(space))


def test_atari_frame_refuses_bad_size():
    with pytest.raises(ValueError, match="size"):
        AtariFrame(SampledEnv(RGB), (0, 80))
    with pytest.raises(ValueError, match="crop must be rows"):
        AtariFrame(SampledEnv(RGB), (80, 80), crop=(100, 50))
    with pytest.raises(ValueError, match="whole multiple"):
        AtariFrame(SampledEnv(RGB), (80, 80), crop=(0, 150), pool="max")
    with pytest.raises(ValueError, match="pool must be"):
        AtariFrame(SampledEnv(RGB), (80, 80), pool="median")


def test_atari_frame_crop_and_max_pool_keep_a_one_pixel_ball():
    """A single bright pixel survives max-pooling at full value; area averaging dims it to a quarter."""
    class Ball(SampledEnv):
        def _obs(self):
            frame = np.zeros((210, 160, 3), np.uint8)
            frame[:34] = 200  # the score bar, cropped away
            frame[101, 63] = 236
            return frame

    env = AtariFrame(Ball(RGB), (80, 80), grayscale=True, crop=(34, 194), pool="max")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (80, 80, 1)
    assert obs[(101 - 34) // 2, 63 // 2, 0] == 236 and int(obs.astype(int).sum()) == 236  # nothing else
    area = AtariFrame(Ball(RGB), (80, 80), grayscale=True, crop=(34, 194), pool="area").reset(seed=0)[0]
    assert area.max() == 236 // 4
    # the wrapper records its arguments, so gymnasium can rebuild it from the env spec
    assert env._saved_kwargs == {"size": (80, 80), "grayscale": True, "crop": (34, 194), "pool": "max"}


@pytest.mark.parametrize(("shape", "size"), [((160, 160, 1), (80, 32)), ((160, 160, 1), (32, 80)),
                                           ((160, 160, 3), (80, 32)), ((12, 9, 2), (4, 3)),
                                           ((5, 7, 1), (5, 7))])
def test_max_pool_equals_numpy_block_maximum(shape, size):
    """The fast pool gives the very values of numpy's block maximum (logged frames must not change)."""
    frame = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    expect = frame.reshape(size[0], shape[0] // size[0], size[1], shape[1] // size[1], -1).max(axis=(1, 3))
    assert np.array_equal(_max_pool(frame, size), expect)


def test_pong_frames_equal_the_emulators_frames_cropped_gray_and_pooled():
    """Pong's observation against the raw ALE frame of the same seed, pooled by numpy's block maximum."""
    env = get_task("atari-pong").make(max_steps=50)
    raw = gym.make("ALE/Pong-v5", frameskip=4, repeat_action_probability=0.25, full_action_space=False)
    (obs, _), (frame, _) = env.reset(seed=7), raw.reset(seed=7)
    for t in range(30):
        gray = cv2.cvtColor(frame[34:194], cv2.COLOR_RGB2GRAY)
        expect = gray.reshape(80, 2, 32, 5, 1).max(axis=(1, 3))
        assert np.array_equal(obs["image"], expect), t
        obs, frame = env.step(t % 3)[0], raw.step(t % 3)[0]
    env.close()
    raw.close()


def test_dict_and_float32_observation():
    box = spaces.Box(-np.inf, np.inf, (3,), np.float64)
    env = DictObservation(Float32Observation(SampledEnv(box)), "state")
    obs, _ = env.reset(seed=0)
    assert list(obs) == ["state"] and obs["state"].dtype == np.float32
    assert env.observation_space.contains(obs)
    with pytest.raises(TypeError, match="non-dict"):
        DictObservation(env, "again")
    with pytest.raises(ValueError, match="non-empty"):
        DictObservation(SampledEnv(box), "")
    with pytest.raises(TypeError, match="float Box"):
        Float32Observation(SampledEnv(spaces.Discrete(4)))


def test_unit_actions_rescales_to_unit_box():
    box = spaces.Box(-3.0, 3.0, (1,), np.float32)
    inner = SampledEnv(spaces.Discrete(2), box)
    env = unit_actions(inner)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    env.reset(seed=0)
    env.step(np.array([0.5], dtype=np.float32))
    assert np.allclose(inner.last_action, 1.5)
    same = SampledEnv(spaces.Discrete(2), spaces.Box(-1, 1, (2,), np.float32))
    assert unit_actions(same) is same
    with pytest.raises(TypeError, match="Box action"):
        unit_actions(SampledEnv(spaces.Discrete(2)))
    with pytest.raises(ValueError, match="unbounded"):
        unit_actions(SampledEnv(spaces.Discrete(2), spaces.Box(-np.inf, np.inf, (1,), np.float32)))


def test_reflect_folds_between_walls():
    assert reflect(50, 34, 194) == 50
    assert reflect(200, 34, 194) == 188
    assert reflect(20, 34, 194) == 48
    assert reflect(194 + 160 + 10, 34, 194) == 44


def test_fields_of_spaces():
    obs = observation_fields(spaces.Dict({
        "state": spaces.Box(-5, 5, (4,), np.float32), "frame": spaces.Box(0, 255, (16, 16, 3), np.uint8),
        "torque": spaces.Box(-1, 1, (2,), np.float32), "mode": spaces.Discrete(3, start=1),
        "keys": spaces.MultiBinary(4), "note": spaces.Text(10)}))
    assert list(obs) == ["frame", "keys", "mode", "note", "state", "torque"]  # sorted keys
    assert obs["frame"] == FieldSpec("image", (16, 16, 3))
    assert obs["state"].modality == "continuous" and obs["state"].mu_law
    assert obs["torque"].modality == "continuous" and not obs["torque"].mu_law
    assert obs["mode"] == FieldSpec("discrete", (), offset=1, n=3)
    assert obs["keys"] == FieldSpec("discrete", (4,), n=2)
    assert obs["note"].modality == "text"
    assert observation_fields(spaces.Box(0, 1, (3,)))["observation"].modality == "continuous"
    assert FieldSpec.from_dict(obs["mode"].to_dict()) == obs["mode"]


@pytest.mark.parametrize(("space", "match"), [
    (spaces.Discrete(2000), "2000 values"),
    (spaces.Tuple([spaces.Discrete(2)]), "not supported"),
    (spaces.Dict({"a": spaces.Dict({"b": spaces.Discrete(2)})}), "nested"),
    (spaces.MultiDiscrete([3, 5000]), "more than 1024"),
])
def test_unsupported_spaces_are_named(space, match):
    with pytest.raises(TypeError, match=match):
        observation_fields(space)


def test_text_is_not_an_action():
    with pytest.raises(TypeError, match="action space"):
        action_field(spaces.Text(5))


def test_unknown_task_lists_known_ones():
    with pytest.raises(UnknownTaskError, match="did you mean 'atari-pong'.*known: atari-pong"):
        get_task("atari-pon")


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_builds_resets_and_steps(name):
    task = get_task(name)
    env = task.make()
    try:
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        obs_fields, act = task.fields()
        assert obs_fields == observation_fields(env.observation_space)
        if task.family == "caption":
            assert act.modality == "text"  # a caption is the action
        else:
            assert act == action_field(env.action_space) and act.modality in ("discrete", "continuous")
        if act.modality == "continuous":  # actions are always rescaled to [-1, 1]: binned directly
            assert not act.mu_law
        policy = task.policy("expert")
        policy.reset(env, seed=0)
        for _ in range(3):
            action = policy(obs, env)
            assert env.action_space.contains(action), action
            obs, reward, terminated, truncated, _ = env.step(action)
            assert np.isfinite(reward)
            if terminated or truncated:
                break
    finally:
        env.close()


@pytest.mark.parametrize("name", [n for n, t in TASKS.items() if t.family != "caption"])
def test_gymnasium_check_env_passes_and_the_spec_recreates_the_env(name):
    """Every wrapper records its constructor arguments, so ``env.spec`` (what a Minari dataset stores)
    rebuilds the very same env: the same spaces and, for the same seed, the same first observation."""
    import warnings

    from gymnasium.utils.env_checker import check_env

    env = get_task(name).make(50)
    again = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the checker's notes on wrapped envs and infinite bounds
            check_env(env, skip_render_check=True)
        spec = env.spec
        assert [w.name for w in spec.additional_wrappers][-1] == "DictObservation"
        again = gym.make(spec)
        assert again.observation_space == env.observation_space and again.action_space == env.action_space
        a, _ = env.reset(seed=5)
        b, _ = again.reset(seed=5)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    finally:
        env.close()
        if again is not None:
            again.close()


# Short runs: (task, step cap, episodes, minimum gap between expert and random mean return).
# Long reference runs are `gato-mini scores`.
SHORT = [("atari-pong", 1500, 1, 3.0), ("atari-breakout", 1000, 1, 5.0), ("atari-freeway", 1000, 1, 3.0),
         ("control-pendulum", None, 3, 300.0), ("mujoco-reacher", None, 5, 10.0),
         ("mujoco-invertedpendulum", None, 2, 100.0), ("mujoco-halfcheetah", 300, 1, 200.0)]


@pytest.mark.parametrize(("name", "cap", "episodes", "gap"), SHORT)
def test_expert_beats_random(name, cap, episodes, gap):
    task = get_task(name)
    env = task.make(max_steps=cap)
    try:
        score = {kind: np.mean([rollout(task, env, kind, seed).episode_return for seed in range(episodes)])
                 for kind in ("random", "expert")}
    finally:
        env.close()
    assert score["expert"] > score["random"] + gap, score


def test_every_task_has_measured_references():
    refs = load_references()
    for name in TASKS:
        task = get_task(name)
        policies = {"random", "expert"} | ({"constant"} if task.family != "caption" else set())
        assert set(refs.get(name, {})) == policies, name
        r = refs[name]
        assert r["expert"].mean > r["random"].mean
        base = max(r["random"].mean, r["constant"].mean) if "constant" in r else r["random"].mean
        if r["expert"].mean > base:
            assert task.normalize(r["expert"].mean) == pytest.approx(100.0)
            assert task.normalize(base) == pytest.approx(0.0)
            # doing nothing, and acting at random, score at most 0
            assert task.normalize(r["random"].mean) <= 1e-9
            if "constant" in r:
                assert task.normalize(r["constant"].mean) <= 1e-9
                assert r["constant"].policy.startswith("constant")
        else:  # the expert no better than a constant action (Freeway's, once always UP): no margin
            assert task.normalize(r["expert"].mean) is None


def test_constant_policies_and_the_baseline():
    from gato_mini.envs.registry import normalized

    pong = get_task("atari-pong")
    env = pong.make(max_steps=5)
    try:
        for kind, action in (("constant", 0), ("constant:3", 3)):
            p = pong.policy(kind)
            p.reset(env, 0)
            assert p({}, env) == action
        with pytest.raises(ValueError, match="outside the 6 actions"):
            pong.policy("constant:6").reset(env, 0)
    finally:
        env.close()
    reacher = get_task("mujoco-reacher")
    env = reacher.make(max_steps=5)
    try:
        p = reacher.policy("constant")
        p.reset(env, 0)
        assert np.array_equal(p({}, env), np.zeros(2, np.float32))
    finally:
        env.close()
    with pytest.raises(GatoError, match="unknown policy"):
        get_task("caption-shapes").policy("constant")
    assert normalized(5.0, random=0.0, expert=10.0) == 50.0
    assert normalized(5.0, random=0.0, expert=10.0, constant=5.0) == 0.0  # doing nothing is the bar
    assert normalized(5.0, random=6.0, expert=10.0, constant=2.0) == -25.0
    assert normalized(5.0, random=0.0, expert=10.0, constant=10.0) is None


def test_pong_and_breakout_frames_show_the_ball_where_the_ram_says():
    for name, shape, ball in (("atari-pong", (80, 32, 1), 236), ("atari-breakout", (32, 80, 1), 110)):
        task = get_task(name)
        env = task.make(max_steps=200)
        try:
            obs, _ = env.reset(seed=0)
            assert obs["image"].shape == shape and env.observation_space["image"].shape == shape
            expert = task.policy("expert")
            expert.reset(env, 0)
            seen = 0
            for _ in range(150):
                obs, *_ = env.step(expert(obs, env))
                ram = env.unwrapped.ale.getRAM()
                in_view = 40 < ram[54] - 13.0 < 180 and 10 < ram[49] - 48.5 < 150
                if name == "atari-pong" and ram[54] and in_view:
                    r, c = int((ram[54] - 13.0 - 34) // 2), int((ram[49] - 48.5) // 5)
                    seen += int(obs["image"][max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].max() == ball)
                y, x = ram[101] + 10.5, ram[99] - 48.5
                if name == "atari-breakout" and ram[101] and 100 < y < 180 and 10 < x < 150:  # below bricks
                    r, c = int((y - 34) // 5), int(x // 2)
                    seen += int(obs["image"][max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].max() == ball)
            assert seen > 10, (name, seen)
        finally:
            env.close()


def test_an_environment_process_starts_without_torch():
    """What an env's own process imports (the server, the registry, each family's wrappers) must not pull
    in torch: it costs seconds per process, and eval starts one per env (issue 21)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "import gato_mini.agent.procenv, gato_mini.procs\n"
            "from gato_mini.envs.registry import get_task\n"
            "for name in ('atari-pong', 'control-pendulum', 'mujoco-reacher', 'caption-shapes'):\n"
            "    env = get_task(name).make(5)\n"
            "    env.reset(seed=0)\n"
            "    env.step(env.action_space.sample())\n"
            "    env.close()\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_breakout_serves_by_itself_after_a_reset_and_each_lost_life():
    """`FireOnNewLife`: the ball is in play right after a reset and after every lost life, so a policy that
    never presses FIRE (NOOP held) still gets every serve."""
    from gato_mini.envs.atari import FireOnNewLife

    env = get_task("atari-breakout").make(max_steps=2000)
    try:
        _, info = env.reset(seed=0)
        lives, lost, waiting, done = info["lives"], 0, 0, False
        assert lives == 5
        while not done:
            _, _, terminated, truncated, info = env.step(0)  # NOOP only
            done = terminated or truncated
            lost += int(info["lives"] < lives)
            lives = info["lives"]
            waiting += int(env.unwrapped.ale.getRAM()[101] == 0 and not done)
        assert terminated and lives == 0 and lost == 5, (lives, lost)
        assert waiting < 25, waiting  # no ball only in the few frames between a miss and its serve
    finally:
        env.close()

    class NoFire(SampledEnv):
        def get_action_meanings(self):
            return ["NOOP", "UP", "DOWN"]

    with pytest.raises(ValueError, match="FIRE"):
        FireOnNewLife(NoFire(spaces.Box(0, 255, (4, 4, 3), np.uint8)))


def test_an_evaluation_below_the_step_cap_uses_references_stored_at_that_cap(tmp_path, monkeypatch) -> None:
    """References measured at a lower cap (`gato-mini scores --max-steps N --seed S --update`) are what
    an evaluation at that cap, those seeds and that many episodes compares with, not measured again; at
    any other cap, seeds or count they are measured at eval, as before."""
    from gato_mini.envs import registry
    from gato_mini.references import eval_references

    path = tmp_path / "references.yaml"
    path.write_text(registry.references_path().read_text())
    for policy, mean in (("random", -1000.0), ("constant", -900.0), ("expert", -10.0)):
        registry.save_reference("control-pendulum", policy, registry.Reference(mean, 1.0, 2, 7, 5), path)
    monkeypatch.setattr(registry, "references_path", lambda: path)
    task = get_task("control-pendulum")
    assert task.references() == load_references()["control-pendulum"]  # whole episodes: unchanged
    refs, origin = eval_references(task, {}, 2, 7, 5, None, registered=True)
    assert refs["expert"].mean == -10.0 and origin["random"] == "references.yaml (cap=5 seed=7 episodes=2)"
    calls = []
    monkeypatch.setattr("gato_mini.references.measure_reference",
                        lambda *a, **k: calls.append(a) or registry.Reference(0.0, 0.0, 2, 8, 5))
    refs, origin = eval_references(task, {}, 2, 8, 5, None, registered=True)  # other seeds: measured
    assert len(calls) == 3 and origin["random"].startswith("measured at eval")


def test_the_stored_capped_references_are_what_measuring_gives_now() -> None:
    """The packaged references at the quickstart's Atari cap (1,000 steps, seeds 1000..1015) are
    reproducible: one of them (Breakout's random policy, 3 s) measured again equals the stored one."""
    from gato_mini.references import measure_reference

    stored = get_task("atari-breakout").capped_references(1000, 1000, 16)
    assert set(stored) == {"random", "constant", "expert"}
    again = measure_reference("atari-breakout", "random", 16, 1000, 1000, progress=False)
    assert again.to_dict() == stored["random"].to_dict()
