"""Test data made on the spot: a Minari dataset whose pixels name (episode, step), documents, chats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from gymnasium import spaces

from gato_mini.data.minari_writer import DatasetWriter

EPISODES, STEPS = 8, 20
DOCS = {"a.txt": "The quick brown fox jumps over the lazy dog. " * 8,
        "b.txt": "Gato is a generalist agent that plays Atari and chats. " * 8,
        "c.md": "# Title\n\nA third document with *markdown* in it. " * 8,
        "d.txt": "Short one.", "empty.txt": "   \n"}
CHATS = [[{"role": "user", "content": f"what is {k} plus {k}?"},
          {"role": "assistant", "content": f"{k} plus {k} is {2 * k}."}] for k in range(30)]


def _episode(ep: int) -> dict:
    t = np.arange(STEPS + 1)
    image = np.zeros((STEPS + 1, 32, 32), np.uint8)
    image[:] = (ep * 25 + t)[:, None, None]  # every pixel names (episode, step)
    image[:, 16:, 16:] = 255 - image[:, 16:, 16:]
    state = np.stack([np.sin(t + ep), np.cos(t * 0.5)], axis=1).astype(np.float32)
    return {"obs": {"image": image, "state": state}, "actions": (t[:-1] + ep) % 3}


def _write_dataset(root: Path) -> Path:
    obs_space = spaces.Dict({"image": spaces.Box(0, 255, (32, 32), np.uint8),
                             "state": spaces.Box(-1, 1, (2,), np.float32)})
    with DatasetWriter(root, "fake/demo-v0", obs_space, spaces.Discrete(3)) as w:
        for ep in range(EPISODES):
            e = _episode(ep)
            w.add(e["obs"], e["actions"], [0.0] * STEPS, [False] * (STEPS - 1) + [True], [False] * STEPS)
        return w.commit()


def _write_config(tmp: Path, dataset: Path, **extra) -> Path:
    (tmp / "docs").mkdir(exist_ok=True)
    for name, text in DOCS.items():
        (tmp / "docs" / name).write_text(text)
    (tmp / "chats.jsonl").write_text("".join(json.dumps({"messages": m}) + "\n" for m in CHATS))
    cfg = {"model": {"name": "tiny", "block_size": 128, "text_vocab_size": 512},
           "data": {"root": str(tmp / "out"), "val_fraction": 0.2, "val_windows": 4, "workers": 1,
                    "sources": {"demo": {"kind": "episodes", "dataset": str(dataset)},
                                "caption-shapes": {"count": 300, "val_count": 40, "weight": 1.0},
                                "docs": {"kind": "text", "path": str(tmp / "docs"), "weight": 0.5},
                                "chats": {"kind": "chat-jsonl", "path": str(tmp / "chats.jsonl")}},
                    **extra}}
    path = tmp / "data.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def cartpole_balance(obs):
    """A user policy for CartPole-v1 (``tests._data:cartpole_balance``): push toward the pole's fall."""
    return int(obs[2] + 0.5 * obs[3] > 0)
