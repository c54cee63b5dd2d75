"""Continuous-control tasks (joint torques) and their scripted experts.

The stack: the Gymnasium env with its default step cap, Box actions rescaled to
[-1, 1] (so actions are binned directly, docs/design.md), float32 observations under
the key ``state``. Experts see that same observation and answer in the
rescaled action space. Their controllers and gains were tuned by hand for this
project; what they score is in ``envs/references.yaml`` (``gato-mini scores``
measures it again).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from gato_mini.envs.policies import Stateless
from gato_mini.envs.wrappers import (
    DictObservation,
    Float32Observation,
    mujoco_warnings_as_python_warnings,
    unit_actions,
)


def make_control(env_id: str, max_steps: int, render_mode: str | None = None) -> gym.Env:
    """The gato-mini continuous-control stack for one env (see the module docstring)."""
    mujoco_warnings_as_python_warnings()
    env = gym.make(env_id, max_episode_steps=max_steps, render_mode=render_mode)
    return DictObservation(Float32Observation(unit_actions(env)), "state")


def _to_unit(u: np.ndarray, env: gym.Env) -> np.ndarray:
    """A raw torque in the base env's action units -> the rescaled [-1, 1] action."""
    space = env.unwrapped.action_space
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    u = np.clip(np.asarray(u, dtype=np.float64), low, high)
    return (2.0 * (u - low) / (high - low) - 1.0).astype(np.float32)


class PendulumExpert(Stateless):
    """Energy pumping to swing up, then PD to balance (torque clipped to ±2)."""

    def __call__(self, obs: dict[str, Any], env: gym.Env) -> np.ndarray:
        cos_t, sin_t, w = (float(v) for v in obs["state"])
        theta = math.atan2(sin_t, cos_t)
        if cos_t > math.cos(0.6):
            u = -10.0 * theta - 2.0 * w
        else:
            energy = w * w / 2.0 - 15.0 * (1.0 - cos_t)  # 0 at the upright rest point
            u = 1.0 if abs(w) < 1e-3 else 0.5 * w * (0.0 - energy)
        return _to_unit(np.array([u]), env)


class ReacherExpert(Stateless):
    """Analytic 2-link IK for the target's joint angles, then a gentle PD toward them.

    The facts file's damped-least-squares controller (``a = 2 dq - 0.1 qdot``)
    scored -17 here over 20 episodes: with the target behind the arm its step
    saturates the torques and wanders. Solving the IK exactly (the elbow
    solution nearest the current pose) and steering with kp = 0.5, kd = 0.05
    scored -4.9 +- 2.1 on the same seeds.
    """

    L1, L2 = 0.1, 0.11
    KP, KD = 0.5, 0.05

    def __call__(self, obs: dict[str, Any], env: gym.Env) -> np.ndarray:
        s = np.asarray(obs["state"], dtype=np.float64)
        q, qdot, (tx, ty) = np.arctan2(s[2:4], s[0:2]), s[6:8], s[4:6]
        cos_q2 = np.clip((tx * tx + ty * ty - self.L1**2 - self.L2**2) / (2 * self.L1 * self.L2), -1.0, 1.0)
        best = None
        for elbow in (1.0, -1.0):
            q2 = elbow * math.acos(cos_q2)
            q1 = math.atan2(ty, tx) - math.atan2(self.L2 * math.sin(q2), self.L1 + self.L2 * math.cos(q2))
            delta = (np.array([q1, q2]) - q + math.pi) % (2 * math.pi) - math.pi
            if best is None or np.abs(delta).sum() < np.abs(best).sum():
                best = delta
        return _to_unit(np.clip(self.KP * best - self.KD * qdot, -1.0, 1.0), env)


class InvertedPendulumExpert(Stateless):
    """LQR (Q = I, R = 0.1) on a model linearized by central differences of the sim step."""

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        super().reset(env, seed)
        if not hasattr(self, "gain"):
            self.gain = self._lqr_gain(env.unwrapped)

    @staticmethod
    def _lqr_gain(base: Any) -> np.ndarray:
        import mujoco

        model = base.model
        data = mujoco.MjData(model)
        nq, nv, nu = model.nq, model.nv, model.nu

        def step(x: np.ndarray, u: np.ndarray) -> np.ndarray:
            mujoco.mj_resetData(model, data)
            data.qpos[:], data.qvel[:], data.ctrl[:] = x[:nq], x[nq:], u
            for _ in range(base.frame_skip):
                mujoco.mj_step(model, data)
            return np.concatenate([data.qpos, data.qvel])

        n, eps = nq + nv, 1e-5
        x0, u0 = np.zeros(n), np.zeros(nu)
        a = np.stack([(step(x0 + eps * e, u0) - step(x0 - eps * e, u0)) / (2 * eps) for e in np.eye(n)], 1)
        b = np.stack([(step(x0, u0 + eps * e) - step(x0, u0 - eps * e)) / (2 * eps) for e in np.eye(nu)], 1)
        q, r = np.eye(n), 0.1 * np.eye(nu)
        p = q.copy()
        for _ in range(2000):  # discrete Riccati iteration to its fixed point
            k = np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)
            p_next = q + a.T @ p @ (a - b @ k)
            if np.max(np.abs(p_next - p)) < 1e-10:
                break
            p = p_next
        return np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)

    def __call__(self, obs: dict[str, Any], env: gym.Env) -> np.ndarray:
        return _to_unit(-self.gain @ np.asarray(obs["state"], dtype=np.float64), env)


class HalfCheetahExpert(Stateless):
    """An open-loop sine gait per joint, found by search on this machine (facts file)."""

    FREQ = 3.45
    AMP = np.array([0.29, 0.01, 0.77, 0.70, 1.03, 0.87])
    PHASE = np.array([0.20, -0.14, 1.03, 1.26, 1.07, 2.46])

    def reset(self, env: gym.Env, seed: int | None = None) -> None:
        super().reset(env, seed)
        self.t = 0

    def __call__(self, obs: dict[str, Any], env: gym.Env) -> np.ndarray:
        time = self.t * env.unwrapped.dt
        self.t += 1
        a = np.clip(self.AMP * np.sin(2 * math.pi * self.FREQ * time + self.PHASE), -1.0, 1.0)
        return _to_unit(a, env)
