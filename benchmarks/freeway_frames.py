"""Freeway: is the expert's wait readable from one frame? A diagnosis outside the model (docs/learning.md,
"Freeway: is the expert's wait in one logged frame?").

Records expert episodes of ``atari-freeway`` (DART noise executed, the clean action logged, as `collect`
does), then trains a small CNN per frame representation on all episodes but the last ``--test`` and scores
it on those: held-out accuracy against always pressing UP, and the recall of the wait (NOOP, DOWN). The
representations: the logged frame as stored (80x80 gray, 0-255), the same centred on its background (its
most common value, signed: what the model's patch centring gives), and the screen's rows 2-194 as the
absolute difference to the road's grey, max-pooled to 48x80.

    python benchmarks/freeway_frames.py [--episodes 8] [--test 2] [--steps 1500]

About 2 minutes on the 2-core machine of docs/speed.md at the defaults (2026-12-07). Writes
``benchmarks/results/freeway_frames.json`` (or ``--json``). It runs outside the test suites.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

import argparse  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from _common import write  # noqa: E402

from gato_mini.envs.registry import get_task  # noqa: E402

UP = 1
ROAD = 142  # the road's grey (cv2's RGB -> gray of its colour)


def record(episodes: int, max_steps: int, noise: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per episode: (logged frames (T, 80, 80), the screen's gray rows 2-194 (T, 192, 160), clean actions)."""
    task, rng = get_task("atari-freeway"), np.random.default_rng(0)
    out = []
    for ep in range(episodes):
        env, expert = task.make(max_steps), task.policy("expert")
        obs, _ = env.reset(seed=1000 + ep)
        expert.reset(env, 1000 + ep)
        frames, screens, actions, done = [], [], [], False
        while not done:
            a = expert(obs, env)
            frames.append(obs["image"][:, :, 0].copy())
            screens.append(cv2.cvtColor(env.unwrapped.ale.getScreenRGB(), cv2.COLOR_RGB2GRAY)[2:194])
            actions.append(a)
            executed = a if rng.random() >= noise else int(rng.integers(env.action_space.n))
            obs, _, terminated, truncated, _ = env.step(executed)
            done = terminated or truncated
        env.close()
        out.append((np.array(frames), np.array(screens), np.array(actions)))
    return out


def representations(frames: np.ndarray, screens: np.ndarray) -> dict[str, np.ndarray]:
    """(N, C, H, W) arrays, one per representation."""
    signed = frames.astype(np.int16)
    background = np.array([np.bincount(f.ravel()).argmax() for f in frames], np.int16)[:, None, None]
    contrast = np.abs(screens.astype(np.int16) - ROAD)
    n, h, w = contrast.shape
    pooled = contrast.reshape(n, h // 4, 4, w // 2, 2).max(axis=(2, 4))
    return {"logged 80x80 gray": signed[:, None],
            "logged 80x80 minus its background": (signed - background)[:, None],
            "rows 2-194 |gray - road|, max-pooled to 48x80": pooled[:, None]}


def cnn(channels: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, 16, 5, 2, 2), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, 2, 1), nn.ReLU(), nn.AdaptiveMaxPool2d((6, 10)), nn.Flatten(),
                         nn.Linear(32 * 60, 64), nn.ReLU(), nn.Linear(64, 3))


def probe(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
          steps: int) -> dict[str, float]:
    torch.manual_seed(0)
    net = cnn(x_train.shape[1])
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    t0 = time.perf_counter()
    for _ in range(steps):
        i = torch.randint(len(x_train), (64,))
        loss = nn.functional.cross_entropy(net(x_train[i]), y_train[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = torch.cat([net(x_test[j:j + 512]).argmax(-1) for j in range(0, len(x_test), 512)])
    wait = y_test != UP
    return {"accuracy": (pred == y_test).float().mean().item(), "up_always": (~wait).float().mean().item(),
            "wait_recall": (pred[wait] == y_test[wait]).float().mean().item() if wait.any() else float("nan"),
            "predicted_waits": (pred != UP).float().mean().item(), "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=8, help="expert episodes recorded (default: 8)")
    ap.add_argument("--test", type=int, default=2, help="of them, held out (default: 2)")
    ap.add_argument("--max-steps", type=int, default=1000, help="an episode's step cap (default: 1000)")
    ap.add_argument("--steps", type=int, default=1500, help="CNN steps of 64 frames (default: 1500)")
    ap.add_argument("--json", default=None,
                    help="result file (default: benchmarks/results/freeway_frames.json)")
    args = ap.parse_args()
    if not 0 < args.test < args.episodes or args.steps <= 0 or args.max_steps <= 0:
        sys.exit("freeway_frames: need 0 < --test < --episodes, and --steps, --max-steps > 0")
    episodes = record(args.episodes, args.max_steps, noise=0.2)
    labels = np.concatenate([a for _, _, a in episodes])
    reps = [representations(f, s) for f, s, _ in episodes]
    y_train = torch.tensor(np.concatenate([a for _, _, a in episodes[:-args.test]]))
    y_test = torch.tensor(np.concatenate([a for _, _, a in episodes[-args.test:]]))
    results = {}
    for name in reps[0]:
        x = [torch.tensor(r[name], dtype=torch.float32) / 255 for r in reps]
        results[name] = probe(torch.cat(x[:-args.test]), y_train, torch.cat(x[-args.test:]), y_test,
                              args.steps)
        r = results[name]
        print(f"{name}: held-out accuracy {r['accuracy']:.3f} (UP always {r['up_always']:.3f}), "
              f"wait recall {r['wait_recall']:.2f}", flush=True)
    write("freeway_frames", {"episodes": args.episodes, "test": args.test, "max_steps": args.max_steps,
                             "steps": args.steps, "actions": np.bincount(labels, minlength=3).tolist(),
                             "results": results}, args.json)


if __name__ == "__main__":
    main()
