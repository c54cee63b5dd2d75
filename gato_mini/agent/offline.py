"""Offline action metrics: what the model predicts, teacher-forced, on held-out logged episodes.

Closed-loop scores mix two failures: a model that never learned the mapping from
observation to action, and one that learned it but drifts off the expert's path
where its errors compound. These metrics tell them apart. Each held-out episode
(the source's ``val`` split, as training held it out) is cut into windows of
whole timesteps of at most ``block_size`` tokens, as training cuts them; at every
action token the model's choice is read from that dimension's legal range as the
agent reads it (the most likely id; for a continuous action the median bin by
default), with the true earlier tokens as context (teacher forcing).

* discrete actions: ``accuracy``, beside ``baseline``, the accuracy of always
  pressing the held-out data's most common action (the best constant policy);
* continuous actions: ``bin_error``, the mean absolute distance in bins (of
  1024) between the predicted and the logged bin, beside ``baseline``, that of
  the best constant (each dimension's median bin).

A model that uses its input beats the baseline; one that outputs the action
marginal matches it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from gato_mini.config import GatoConfig
from gato_mini.data.sequence import TokenSequence
from gato_mini.data.timestep import legal_range
from gato_mini.data.windows import collate
from gato_mini.errors import GatoError
from gato_mini.fields import FieldSpec
from gato_mini.model.generate import action_point, pick
from gato_mini.model.model import GatoModel


def episode_windows(seq: TokenSequence, block: int, cfg: GatoConfig) -> list[TokenSequence]:
    """Consecutive windows of whole timesteps of at most ``block`` tokens (longer timesteps are skipped)."""
    bounds = np.append(seq.starts, len(seq))
    out, j, n = [], 0, len(seq.starts)
    while j < n:
        k = int(np.searchsorted(bounds, bounds[j] + block, side="right")) - 1  # last bound within reach
        if k <= j:  # one timestep longer than the block
            j += 1
            continue
        out.append(seq.timesteps(j, min(k, n), cfg))
        j = k
    return out


def predict_actions(model: GatoModel, windows: list[TokenSequence], action: FieldSpec,
                    batch_size: int = 8, point: str = "median") -> tuple[np.ndarray, np.ndarray]:
    """(predicted ids, logged ids) at every action token of ``windows``, teacher-forced, in order; a
    continuous action's id is read at ``point`` as the agent reads it (:func:`pick`)."""
    point = action_point(action.modality, point)
    cfg = model.cfg
    lo, hi = legal_range(action, cfg)
    device = next(model.parameters()).device
    preds, truth = [], []
    was_training = model.training
    model.eval()
    try:
        for k in range(0, len(windows), batch_size):
            batch = collate(list(enumerate(windows[k:k + batch_size])), cfg)
            mask, targets = batch.pop("loss_mask"), batch.pop("targets")
            batch.pop("source")
            batch = {key: v.to(device) for key, v in batch.items()}
            with torch.no_grad():
                logits = model.logits(**batch)
            picked = pick(logits[mask.to(device)][:, lo:hi], point=point).cpu() + lo
            preds.append(picked.numpy())
            truth.append(targets[mask].numpy())
    finally:
        model.train(was_training)
    if not preds:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(preds), np.concatenate(truth)


def action_metrics(pred: np.ndarray, truth: np.ndarray, action: FieldSpec) -> dict[str, Any]:
    """Accuracy (discrete) or mean bin error (continuous) beside the best constant's."""
    if len(truth) == 0:
        raise GatoError("no action tokens to score")
    if action.modality == "discrete":
        values, counts = np.unique(truth, return_counts=True)
        return {"metric": "accuracy", "value": float(np.mean(pred == truth)),
                "baseline": float(counts.max() / len(truth)), "majority_action": int(values[counts.argmax()]),
                "actions": int(len(truth))}
    n_act = int(np.prod(action.shape, dtype=np.int64)) if action.shape else 1
    if len(truth) % n_act:
        raise GatoError(f"{len(truth)} action tokens is not a multiple of the action's {n_act} dimensions")
    t = truth.reshape(-1, n_act).astype(np.int64)
    p = pred.reshape(-1, n_act).astype(np.int64)
    median = np.round(np.median(t, axis=0)).astype(np.int64)
    return {"metric": "bin_error", "value": float(np.abs(p - t).mean()),
            "baseline": float(np.abs(t - median).mean()),
            "per_dimension": [round(float(v), 2) for v in np.abs(p - t).mean(axis=0)],
            "actions": int(len(t))}


def offline_metrics(model: GatoModel, episodes: Iterable[TokenSequence], action: FieldSpec,
                    max_windows: int = 64, point: str = "median") -> dict[str, Any]:
    """:func:`action_metrics` over the windows of ``episodes`` (at most ``max_windows``, spread evenly)."""
    windows = [w for seq in episodes for w in episode_windows(seq, model.cfg.block_size, model.cfg)]
    if not windows:
        raise GatoError("no held-out episode to score")
    if len(windows) > max_windows:
        keep = np.linspace(0, len(windows) - 1, max_windows).round().astype(int)
        windows = [windows[i] for i in keep]
    pred, truth = predict_actions(model, windows, action, point=point)
    out = {**action_metrics(pred, truth, action), "windows": len(windows)}
    return {**out, "point": point} if action.modality == "continuous" else out
