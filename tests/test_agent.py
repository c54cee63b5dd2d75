"""The agent loop: batched equals single, cached equals uncached, legal actions only, failing envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from gato_mini.agent import Agent
from gato_mini.agent.rollout import run_agent
from gato_mini.config import GatoConfig
from gato_mini.data.fields import action_field, observation_fields
from gato_mini.model import GatoModel

CFG = GatoConfig.from_name("tiny", n_layer=2, n_embd=64, n_head=4, block_size=96, text_vocab_size=300)


class FakeEnv(gym.Env):
    """A small image + vector task; reward for matching the brightest quadrant; random episode length."""

    def __init__(self, continuous: bool = False, fail_at: int | None = None) -> None:
        self.observation_space = spaces.Dict({"image": spaces.Box(0, 255, (16, 32), np.uint8),
                                              "state": spaces.Box(-1, 1, (3,), np.float32)})
        self.action_space = spaces.Box(-1, 1, (2,), np.float32) if continuous else spaces.Discrete(3)
        self.fail_at = fail_at

    def _obs(self):
        img = (self.np_random.random((16, 32)) * 255).astype(np.uint8)
        return {"image": img, "state": self.np_random.uniform(-1, 1, 3).astype(np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.length = 0, int(self.np_random.integers(8, 25))
        self.last = self._obs()
        return self.last, {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action, dtype=self.action_space.dtype)
                                           if self.action_space.shape else action), action
        self.t += 1
        if self.fail_at is not None and self.t == self.fail_at:
            raise RuntimeError("the emulator crashed")
        target = float(self.last["state"][0])
        reward = -abs(float(np.asarray(action).ravel()[0]) - target) if self.action_space.shape else \
            float(int(action) == int(self.last["state"][1] > 0))
        self.last = self._obs()
        return self.last, reward, self.t >= self.length, False, {}


def _agent(n: int, continuous: bool = False, **kw) -> Agent:
    torch.manual_seed(0)
    env = FakeEnv(continuous)
    model = GatoModel(CFG)
    return Agent(model, observation_fields(env.observation_space), action_field(env.action_space), n, **kw)


@pytest.mark.parametrize("continuous", [False, True])
def test_batched_equals_single(continuous: bool) -> None:
    batched = run_agent(_agent(3, continuous), [FakeEnv(continuous) for _ in range(3)], episodes=5, seed=7,
                        keep_actions=True)
    single = []
    for ep in range(5):
        single += run_agent(_agent(1, continuous), [FakeEnv(continuous)], episodes=1, seed=7 + ep,
                            keep_actions=True)
    assert [r.length for r in batched] == [r.length for r in single]
    assert [r.actions for r in batched] == [r.actions for r in single]
    assert [r.ret for r in batched] == pytest.approx([r.ret for r in single])


@pytest.mark.parametrize("continuous", [False, True])
def test_cached_equals_uncached_across_context_overflow(continuous: bool) -> None:
    # 2 patches + 3 values + | + 1-2 action tokens per step: block 96 overflows within an episode
    cached = run_agent(_agent(2, continuous, use_cache=True), [FakeEnv(continuous) for _ in range(2)], 4, 3,
                       keep_actions=True)
    plain = run_agent(_agent(2, continuous, use_cache=False), [FakeEnv(continuous) for _ in range(2)], 4, 3,
                      keep_actions=True)
    assert max(r.length for r in cached) * 7 > CFG.block_size  # the test really overflows
    assert [r.actions for r in cached] == [r.actions for r in plain]


@pytest.mark.parametrize("continuous", [False, True])
def test_actions_are_always_legal(continuous: bool) -> None:
    agent = _agent(2, continuous, temperature=1.0)
    real = agent.model.forward

    def biased(*args, **kwargs):
        logits, loss = real(*args, **kwargs)
        logits = logits.clone()
        logits[..., 0] += 1e4  # the raw argmax is a text id, never a legal action
        logits[..., CFG.special_id("<|eos|>")] += 1e4
        return logits, loss

    agent.model.forward = biased
    envs = [FakeEnv(continuous) for _ in range(2)]
    results = run_agent(agent, envs, episodes=3, seed=0, keep_actions=True)  # FakeEnv.step asserts legality
    acts = np.array([a for r in results for a in r.actions], dtype=float)
    assert len(acts) > 20
    if continuous:
        assert acts.min() >= -1 and acts.max() <= 1
    else:
        assert set(np.unique(acts)) <= {0, 1, 2}


def test_a_failing_env_ends_its_episode_only() -> None:
    envs = [FakeEnv(fail_at=3), FakeEnv()]
    results = run_agent(_agent(2), envs, episodes=4, seed=0)
    assert len(results) == 4
    failed = [r for r in results if r.error]
    assert failed and all("RuntimeError: the emulator crashed" in r.error for r in failed)
    assert any(r.error is None and r.length >= 8 for r in results)
