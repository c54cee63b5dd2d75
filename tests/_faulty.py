"""Environments that fail on purpose, for the evaluation fault tests.

They live in an importable module (not inside a test) because `ProcessEnv` builds its env in a fresh
(spawned) process from a pickled factory. Which fault happens depends on the episode's reset seed:

* seed % 10 == 1: step 3 never returns (hangs);
* seed % 10 == 2: step 2 kills its own process (as a segfault in native code would);
* seed % 10 == 3: step 2 raises RuntimeError("physics exploded");
* seed % 10 == 4: reset hangs;
* any other seed: the real environment.
"""

from __future__ import annotations

import os
import signal
import time

import gymnasium as gym


class Faulty(gym.Wrapper):
    def reset(self, *, seed=None, options=None):
        self.fault, self.t = (seed or 0) % 10, 0
        if self.fault == 4:
            time.sleep(3600)
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        self.t += 1
        if self.fault == 1 and self.t == 3:
            time.sleep(3600)
        if self.fault == 2 and self.t == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.fault == 3 and self.t == 2:
            raise RuntimeError("physics exploded")
        return self.env.step(action)


def make_faulty(env_id: str, max_steps: int, render_mode: str | None = None) -> gym.Env:
    """The registry's control env with :class:`Faulty` on top (same signature as ``make_control``)."""
    from gato_mini.envs.control import make_control

    return Faulty(make_control(env_id, max_steps, render_mode))


def make_broken(env_id: str, max_steps: int, render_mode: str | None = None) -> gym.Env:
    raise ValueError(f"cannot build {env_id}")
