"""The fake environments of the tests, in one module.

* :class:`SampledEnv`: any observation and action space, deterministic samples, five steps (wrappers,
  field specs);
* :class:`MatchEnv`: an image and a vector, reward for matching them, random episode lengths, and an
  optional crash at a chosen step (the agent, batched rollouts, failures);
* :class:`Executed`: any env, recording the actions it is asked to execute (DART noise, DAgger).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class SampledEnv(gym.Env):
    """A deterministic env with a chosen observation and action space."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space | None = None):
        self.observation_space = observation_space
        self.action_space = action_space or spaces.Discrete(2)
        self.t = 0

    def _obs(self):
        self.observation_space.seed(self.t)
        return self.observation_space.sample()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.last_action = action
        self.t += 1
        return self._obs(), 1.0, self.t >= 5, False, {}


class MatchEnv(gym.Env):
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


class Executed:
    """Wraps an env and records the actions it is asked to execute."""

    def __init__(self, env):
        self.env, self.executed = env, []

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, **kw):
        return self.env.reset(**kw)

    def step(self, action):
        self.executed.append(np.array(action, copy=True))
        return self.env.step(action)
