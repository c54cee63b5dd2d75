"""Offline action metrics: teacher-forced accuracy / bin error on hand-built episodes with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gato_mini.agent.offline import action_metrics, episode_windows, offline_metrics
from gato_mini.config import GatoConfig
from gato_mini.data.sequence import episode_sequence
from gato_mini.data.timestep import legal_range
from gato_mini.fields import FieldSpec

CFG = GatoConfig(n_layer=1, n_embd=32, n_head=2, block_size=64, text_vocab_size=256)
STATE = {"state": FieldSpec("continuous", (3,))}


class Oracle(nn.Module):
    """Puts its largest logit on the true next token (an id it reads off the input), or on ``constant``."""

    def __init__(self, cfg: GatoConfig, constant: int | None = None, peek: dict | None = None) -> None:
        super().__init__()
        self.cfg, self.constant, self.peek = cfg, constant, peek
        self.w = nn.Parameter(torch.zeros(1))

    def logits(self, tokens, local_pos=None, patches=None, patch_pos=None, **_):
        B, T = tokens.shape
        logits = torch.zeros(B, T, self.cfg.padded_vocab_size)
        if self.constant is not None:
            logits[..., self.constant] = 50.0  # confident: its mode and its median are this id
        else:  # the next token, which the oracle knows from the full sequence it was given
            nxt = torch.roll(tokens, -1, dims=1)
            for b in range(B):
                key = tuple(tokens[b, :8].tolist())
                full = self.peek[key]
                n = min(T, len(full) - 1)
                nxt[b, :n] = torch.as_tensor(full[1:n + 1])
            logits.scatter_(2, nxt[..., None], 50.0)
        return logits


def _episode(actions: np.ndarray, action: FieldSpec, steps: int = 40):
    rng = np.random.default_rng(0)
    obs = {"state": rng.uniform(-1, 1, (steps, 3)).astype(np.float32)}
    return episode_sequence(obs, actions, STATE, action, CFG)


def test_windows_cover_every_action_once_and_start_on_timesteps():
    action = FieldSpec("discrete", (), n=3)
    seq = _episode(np.arange(40) % 3, action)  # 5 tokens a timestep
    windows = episode_windows(seq, 23, CFG)  # 4 whole timesteps fit in 23 tokens
    assert [len(w) for w in windows] == [20] * 10
    assert sum(int(w.targets.sum()) for w in windows) == 40
    assert np.array_equal(np.concatenate([w.tokens for w in windows]), seq.tokens)


def test_discrete_accuracy_and_majority_baseline_are_exact():
    action = FieldSpec("discrete", (), n=3)
    acts = np.array([0] * 25 + [1] * 10 + [2] * 5)
    seq = _episode(acts, action)
    windows = episode_windows(seq, CFG.block_size, CFG)
    peek = {tuple(w.tokens[:8].tolist()): w.tokens for w in windows}
    perfect = offline_metrics(Oracle(CFG, peek=peek), [seq], action)
    assert perfect["metric"] == "accuracy" and perfect["value"] == 1.0
    assert perfect["baseline"] == 25 / 40 and perfect["majority_action"] == CFG.discrete_offset
    assert perfect["actions"] == 40
    lo, _ = legal_range(action, CFG)
    constant = offline_metrics(Oracle(CFG, constant=lo + 1), [seq], action)
    assert constant["value"] == 10 / 40  # always action 1: right on the 10 steps that pressed it
    # an id outside the legal range is never chosen: a model preferring text still picks a legal action
    outside = offline_metrics(Oracle(CFG, constant=5), [seq], action)
    assert outside["value"] == 25 / 40  # argmax of equal logits in the legal range: action 0


def test_continuous_bin_error_and_constant_baseline():
    action = FieldSpec("continuous", (2,))
    truth = np.array([[10, 100], [20, 100], [30, 700]] * 4).reshape(-1)
    exact = action_metrics(truth.copy(), truth, action)
    assert exact["value"] == 0.0 and exact["per_dimension"] == [0.0, 0.0]
    # the best constant is the median bin per dimension: 20 and 100
    assert exact["baseline"] == pytest.approx((np.abs([10, 20, 30] - np.array(20)).sum() * 4
                                               + np.abs([100, 100, 700] - np.array(100)).sum() * 4) / 24)
    off_by_three = action_metrics(truth + 3, truth, action)
    assert off_by_three["value"] == 3.0
    with pytest.raises(Exception, match="not a multiple"):
        action_metrics(truth[:5], truth[:5], action)


def test_continuous_on_a_real_episode_with_a_perfect_and_a_constant_model():
    action = FieldSpec("continuous", (2,))
    rng = np.random.default_rng(1)
    seq = _episode(rng.uniform(-1, 1, (40, 2)).astype(np.float32), action)
    windows = episode_windows(seq, CFG.block_size, CFG)
    peek = {tuple(w.tokens[:8].tolist()): w.tokens for w in windows}
    assert offline_metrics(Oracle(CFG, peek=peek), [seq], action)["value"] == 0.0
    mid = CFG.continuous_offset + 512
    const = offline_metrics(Oracle(CFG, constant=mid), [seq], action)
    ids = seq.tokens[np.flatnonzero(seq.targets)].astype(np.int64)
    assert const["value"] == pytest.approx(np.abs(ids - mid).mean())
    assert const["value"] >= const["baseline"]  # the median beats any other constant
