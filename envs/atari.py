"""Atari tasks: one wrapper stack for all games, and RAM-reading scripted experts.

The stack (the same for collection and evaluation):

* ALE v5: frameskip 4, sticky actions with probability 0.25, the game's minimal
  action set (as Gymnasium's defaults);
* episodes capped at the task's step cap (agent steps, 5000 by default);
* frames converted to gray and shrunk: by default to 80x80 with area interpolation (25 patches
  of 16x16 per timestep; Gato embeds frames as 16x16 patches). Pong and Breakout crop the
  playfield (rows 34..194, dropping the score bar) and max-pool it, which keeps a one-pixel ball
  at full contrast, to 10 patches: 80 rows x 32 columns for Pong, whose paddle moves up and down,
  32 x 80 for Breakout, whose paddle moves sideways. 12 tokens a timestep instead of 27 puts 2.25x
  more action targets in a training window (docs/learning.md);
* Breakout serves by itself: the env presses FIRE when a life begins (after a reset and after each
  lost life), as DQN-era Atari preprocessing does (``FireOnNewLife``). Without it a policy must learn
  a button pressed once per life, 0.7% of the demonstrations' actions; the model never predicted it,
  and an agent that tracks the ball but never serves scores 0 (docs/learning.md);
* the frame is the observation key ``image``.

Experts act on the emulator RAM (``ale.getRAM()``) while the env logs pixels.
RAM addresses are the AtariARI annotations (Anand et al. 2019, "Unsupervised
State Representation Learning in Atari"); the controllers were tuned by hand for
this project and what they score is in ``envs/references.yaml``.
"""

from __future__ import annotations

from typing import Any

import ale_py
import gymnasium as gym
import numpy as np

from gato_mini.envs.policies import Stateless, reflect
from gato_mini.envs.wrappers import AtariFrame, DictObservation

gym.register_envs(ale_py)
ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # no banner per env (one per eval process)

FRAME_SIZE = (80, 80)
NOOP, FIRE = 0, 1


class FireOnNewLife(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Press FIRE whenever a life begins: after ``reset`` and after a step that lost a life.

    The FIRE step's reward is added to the step that led to it, and its frame is the one returned, so
    the agent never sees a frame waiting for a serve. The time limit counts the extra step too.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        if len(meanings) <= FIRE or meanings[FIRE] != "FIRE":
            raise ValueError(f"FireOnNewLife needs FIRE as action {FIRE}, got {meanings}")
        self._lives = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(FIRE)
        if terminated or truncated:  # not seen in practice; start again without serving
            obs, info = self.env.reset(**kwargs)
        self._lives = int(info.get("lives", 0))
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = int(info.get("lives", 0))
        if lives < self._lives and not (terminated or truncated):
            obs, more, terminated, truncated, info = self.env.step(FIRE)
            reward = float(reward) + float(more)
            lives = int(info.get("lives", 0))
        self._lives = lives
        return obs, reward, terminated, truncated, info


def make_atari(env_id: str, max_steps: int, render_mode: str | None = None,
               size: tuple[int, int] = FRAME_SIZE, crop: tuple[int, int] | None = None,
               pool: str = "area", fire_on_new_life: bool = False) -> gym.Env:
    """The gato-mini Atari stack for one game (see the module docstring)."""
    env = gym.make(env_id, frameskip=4, repeat_action_probability=0.25, full_action_space=False,
                   max_episode_steps=max_steps, render_mode=render_mode)
    if fire_on_new_life:
        env = FireOnNewLife(env)
    return DictObservation(AtariFrame(env, size, grayscale=True, crop=crop, pool=pool), "image")


def _ram(env: gym.Env) -> Any:
    return env.unwrapped.ale.getRAM()


class _PaddleExpert(Stateless):
    """Shared state of the paddle games: last ball position and paddle velocity."""

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        super().reset(env, seed)
        self.prev_ball: tuple[float, float] | None = None
        self.prev_pad: float | None = None

    def _paddle(self, pad: float) -> tuple[float, float]:
        """(position, velocity per step) of our paddle."""
        pad_v = 0.0 if self.prev_pad is None else pad - self.prev_pad
        self.prev_pad = pad
        return pad, pad_v

    def _ball_velocity(self, bx: float, by: float) -> tuple[float, float] | None:
        """Ball velocity since the last step (None on the first step of a ball)."""
        prev, self.prev_ball = self.prev_ball, (bx, by)
        return None if prev is None else (bx - prev[0], by - prev[1])


class PongExpert(_PaddleExpert):
    """Intercept the ball where its (wall-reflected) line meets the paddle column."""

    UP, DOWN = 2, 3  # named RIGHT/LEFT in the action set; they move our (right) paddle
    PADDLE_X = 143.0  # pixel column where the ball meets our paddle (swept: 136 loses, 149 too)
    WALLS = (34.0, 194.0)
    AIM = 3.0  # hit this far off the paddle centre, in the ball's vertical direction
    DEAD = 8.0  # dead zone (px)
    KV = 0.33  # the paddle coasts after release: steer on position + KV * velocity

    def __call__(self, obs: dict[str, Any], env: gym.Env) -> int:
        ram = _ram(env)
        pad, pad_v = self._paddle(float(ram[51]) - 6.5)
        if ram[54] == 0:  # ball not in play
            self.prev_ball = None
            target = 114.0
        else:
            bx, by = float(ram[49]) - 48.5, float(ram[54]) - 13.0
            target = by
            velocity = self._ball_velocity(bx, by)
            if velocity is not None:
                vx, vy = velocity
                if vx > 0:  # coming toward us: extrapolate to our column
                    y_hit = reflect(by + vy * (self.PADDLE_X - bx) / vx, *self.WALLS)
                    # hit 3 px off centre in the ball's vertical direction: sharper returns
                    target = y_hit - self.AIM * (1 if vy > 0 else -1 if vy < 0 else 0)
        steer = pad + self.KV * pad_v
        if target < steer - self.DEAD:
            return self.UP
        if target > steer + self.DEAD:
            return self.DOWN
        return NOOP


class PongTracker(_PaddleExpert):
    """A reactive demonstrator: move the paddle toward the ball's current height (dead zone 8 px).

    Its action is a function of the current frame alone (no ball velocity, no paddle coasting
    correction), so it can be imitated from pixels far sooner than the intercepting expert, whose
    actions a frame-reading rule predicts no better than the majority action does. It scores a
    little below that expert (about -1 against +1.6 in 1,000 steps); scores stay normalized
    against the expert.
    """

    DEAD = 8.0

    def __call__(self, obs: dict[str, Any], env: gym.Env) -> int:
        ram = _ram(env)
        pad = float(ram[51]) - 6.5
        target = 114.0 if ram[54] == 0 else float(ram[54]) - 13.0  # centre while no ball is in play
        if target < pad - self.DEAD:
            return PongExpert.UP
        if target > pad + self.DEAD:
            return PongExpert.DOWN
        return NOOP


class BreakoutTracker(Stateless):
    """A reactive demonstrator for Breakout: FIRE without a ball, else move under the ball's column."""

    DEAD = 3.0

    def __call__(self, obs: dict[str, Any], env: gym.Env) -> int:
        ram = _ram(env)
        if ram[101] == 0:
            return FIRE
        pad, bx = float(ram[72]) - 39.5, float(ram[99]) - 48.5
        if bx > pad + self.DEAD:
            return BreakoutExpert.RIGHT
        if bx < pad - self.DEAD:
            return BreakoutExpert.LEFT
        return NOOP


class BreakoutExpert(_PaddleExpert):
    """Fire when no ball is in play; move under the ball's predicted landing point."""

    RIGHT, LEFT = 2, 3
    PADDLE_Y = 189.0
    WALLS = (8.0, 152.0)

    def __call__(self, obs: dict[str, Any], env: gym.Env) -> int:
        ram = _ram(env)
        pad, pad_v = self._paddle(float(ram[72]) - 39.5)
        if ram[101] == 0:  # no ball in play
            self.prev_ball = None
            return FIRE
        bx, by = float(ram[99]) - 48.5, float(ram[101]) + 10.5
        target = bx
        velocity = self._ball_velocity(bx, by)
        if velocity is not None and velocity[1] > 0:  # falling: extrapolate to the paddle row
            vx, vy = velocity
            target = reflect(bx + vx * (self.PADDLE_Y - by) / vy, *self.WALLS)
        steer = pad + 0.5 * pad_v
        if target > steer + 3:
            return self.RIGHT
        if target < steer - 3:
            return self.LEFT
        return NOOP


class FreewayExpert(Stateless):
    """Cross the road, waiting for the cars: UP unless the car of the lane ahead reaches the chicken's
    column within ``HORIZON`` steps; then wait, or step back when the current lane is about to be hit.

    Lanes are 16 units of the chicken's height (RAM 14: 6 at the bottom kerb), lane k from 8 + 16 k;
    cars' columns are RAM 108..117 (lanes 0-4 drive right, 5-9 left), their speeds the last step's
    change. Holding UP scores 21 in a game (2,048 steps); this scores 31 (3 seeds; a margin of 6 and
    a horizon of 4, from a sweep of 4-12 and 3-8).
    """

    UP, DOWN = 1, 2
    COLUMN = 44.0  # the chicken's column, where cars hit it
    MARGIN, HORIZON = 6.0, 4
    prev_cars: Any = None  # the cars' columns one step ago (None at an episode's start)

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        super().reset(env, seed)
        self.prev_cars = None

    @staticmethod
    def _lane(y: float) -> int:
        return int((y - 8.0) // 16.0)

    def _danger(self, cars: Any, speed: Any, lane: int, steps: int) -> bool:
        if not 0 <= lane < len(cars):
            return False
        return any(abs(cars[lane] + speed[lane] * k - self.COLUMN) < self.MARGIN for k in range(steps + 1))

    def __call__(self, obs: dict[str, Any], env: gym.Env) -> int:
        ram = _ram(env)
        y, cars = float(ram[14]), ram[108:118].astype(np.float64)
        speed = np.zeros(len(cars)) if self.prev_cars is None else cars - self.prev_cars
        speed[np.abs(speed) > 20] = 0.0  # a car that wrapped around the screen
        self.prev_cars = cars
        if self._danger(cars, speed, self._lane(y + 8.0), self.HORIZON):  # the lane an UP step enters
            return self.DOWN if self._danger(cars, speed, self._lane(y), 2) else NOOP
        return self.UP
