"""Small wrappers, one transformation each; each checks its input space.

The same stack serves collection and evaluation, so the model sees exactly the
observations it was trained on.
"""

from __future__ import annotations

from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces


def mujoco_warnings_as_python_warnings() -> None:
    """MuJoCo prints its warnings (e.g. Gymnasium's half-cheetah model using the deprecated
    ``settotalmass``) straight to the terminal; send them through Python's ``warnings`` instead, so the
    command line hides them like any library's and ``--verbose`` shows them."""
    import warnings

    try:
        import mujoco
    except ImportError:
        return
    mujoco.set_mju_user_warning(lambda message: warnings.warn(f"MuJoCo: {message}", RuntimeWarning,
                                                              stacklevel=2))


class AtariFrame(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Crop an RGB frame (H, W, 3) to rows ``crop`` (top, bottom), optionally gray, shrink it to ``size``.

    ``pool="area"`` averages (OpenCV's area interpolation); ``pool="max"`` keeps the brightest pixel
    of each block, so a one-pixel ball stays at full contrast instead of fading into the background
    (it needs the cropped frame to be a whole multiple of ``size``).
    Output: uint8 ``(h, w, 1)`` when ``grayscale`` else ``(h, w, 3)``.
    """

    def __init__(self, env: gym.Env, size: tuple[int, int] = (80, 80), grayscale: bool = True,
                 crop: tuple[int, int] | None = None, pool: str = "area") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, size=size, grayscale=grayscale, crop=crop, pool=pool)
        super().__init__(env)
        space = env.observation_space
        if not (isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3
                and space.shape[2] == 3):
            raise TypeError(f"AtariFrame needs uint8 RGB frames (H, W, 3), got {space}")
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"AtariFrame size must be (height, width) > 0, got {size}")
        h, w = space.shape[:2]
        top, bottom = (0, h) if crop is None else (int(crop[0]), int(crop[1]))
        if not 0 <= top < bottom <= h:
            raise ValueError(f"AtariFrame crop must be rows (top, bottom) inside 0..{h}, got {crop}")
        if pool not in ("area", "max"):
            raise ValueError(f"AtariFrame pool must be 'area' or 'max', got {pool!r}")
        self.size = (int(size[0]), int(size[1]))
        if pool == "max" and ((bottom - top) % self.size[0] or w % self.size[1]):
            raise ValueError(f"AtariFrame pool='max' needs the cropped frame ({bottom - top}x{w}) to be a "
                             f"whole multiple of size {self.size}")
        self.grayscale, self.rows, self.pool = grayscale, (top, bottom), pool
        channels = 1 if grayscale else 3
        self.observation_space = spaces.Box(0, 255, (*self.size, channels), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        frame = observation[self.rows[0]:self.rows[1]]
        frame = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if self.grayscale else frame
        if self.pool == "max":
            frame = _max_pool(frame, self.size)
        else:
            frame = cv2.resize(frame, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        return frame.reshape(self.observation_space.shape)


def _max_pool(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The brightest pixel of each block of ``frame`` (H, W[, C]) -> ``size``: the same values as
    ``reshape(sh, H // sh, sw, W // sw, -1).max(axis=(1, 3))``, in a fifth of its time (numpy reduces
    over strided axes slowly; a running ``np.maximum`` over the block's rows, then its columns, does not)."""
    (h, w), (sh, sw) = frame.shape[:2], size
    kh, kw = h // sh, w // sw
    rows = frame.reshape(sh, kh, w, -1)
    out = rows[:, 0].copy()
    for j in range(1, kh):
        np.maximum(out, rows[:, j], out=out)
    cols = out.reshape(sh, sw, kw, -1)
    pooled = cols[:, :, 0].copy()
    for j in range(1, kw):
        np.maximum(pooled, cols[:, :, j], out=pooled)
    return pooled


class DictObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Put a single observation under one named key: ``{"image": frame}``, ``{"state": x}``."""

    def __init__(self, env: gym.Env, key: str) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, key=key)
        super().__init__(env)
        if isinstance(env.observation_space, spaces.Dict):
            raise TypeError(f"DictObservation needs a non-dict space, got {env.observation_space}")
        if not key:
            raise ValueError("DictObservation key must be a non-empty string")
        self.key = key
        self.observation_space = spaces.Dict({key: env.observation_space})

    def observation(self, observation: Any) -> dict[str, Any]:
        return {self.key: observation}


class Float32Observation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Cast a float Box observation to float32 (MuJoCo returns float64): smaller datasets."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        space = env.observation_space
        if not (isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating)):
            raise TypeError(f"Float32Observation needs a float Box, got {space}")
        self.observation_space = spaces.Box(space.low.astype(np.float32), space.high.astype(np.float32),
                                            space.shape, np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(observation, dtype=np.float32)


def unit_actions(env: gym.Env) -> gym.Env:
    """Rescale a Box action space to [-1, 1] so actions are binned directly (no mu-law)."""
    space = env.action_space
    if not isinstance(space, spaces.Box):
        raise TypeError(f"unit_actions needs a Box action space, got {space}")
    if np.all(space.low == -1.0) and np.all(space.high == 1.0):
        return env
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ValueError(f"cannot rescale an unbounded action space {space}")
    return UnitActions(env)


class UnitActions(gym.wrappers.RescaleAction):
    """Gymnasium's ``RescaleAction`` to [-1, 1], recorded without its bound arrays: an ndarray in the
    recorded arguments would make the env's spec unserializable, so no dataset could store it."""

    def __init__(self, env: gym.Env) -> None:
        ones = np.ones(env.action_space.shape, dtype=env.action_space.dtype)  # no precision-cast warning
        super().__init__(env, -ones, ones)
        self._saved_kwargs = {}  # what RecordConstructorArgs recorded: nothing is needed to rebuild it
