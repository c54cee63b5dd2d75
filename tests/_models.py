"""Models for parity tests whose outputs depend on their inputs, and a recorder of decoding logits.

An untrained model (weights of std 0.02) emits nearly the same logits whatever it reads, so a
parity test run on it compares one repeated token with itself and passes for broken code too.
:func:`loud_model` scales every weight up, so that changing an observation, a position or the
cache changes the argmax; :class:`LogitLog` records the logits each decoding step chose from.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from gato_mini.config import GatoConfig
from gato_mini.model import GatoModel


def loud_model(cfg: GatoConfig, seed: int = 0, std: float = 0.3) -> GatoModel:
    """A GatoModel whose weights (matrices and embeddings) have std ``std`` instead of 0.02."""
    torch.manual_seed(seed)
    model = GatoModel(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, std)
    return model.eval()


class LogitLog:
    """Records the legal logits of every ``pick`` call the agent and generation make."""

    def __init__(self) -> None:
        self.calls: list[torch.Tensor] = []

    @classmethod
    @contextlib.contextmanager
    def recording(cls) -> Iterator[LogitLog]:
        """``with LogitLog.recording() as log:`` records the calls made inside the block."""
        import pytest

        from gato_mini.agent import agent as agent_module
        from gato_mini.model import generate as generate_module

        self = cls()
        real_pick = generate_module.pick

        def pick(logits, allowed=None, *args, **kwargs):
            kept = logits.detach().float()
            if isinstance(allowed, tuple):
                kept = kept[..., allowed[0]:allowed[1]]
            elif allowed is not None:
                kept = kept[..., allowed[: kept.shape[-1]]]
            self.calls.append(kept.clone())
            return real_pick(logits, allowed, *args, **kwargs)

        with pytest.MonkeyPatch.context() as mp:
            for module in (agent_module, generate_module):
                mp.setattr(module, "pick", pick)
            yield self


def assert_same_logits(a: LogitLog, b: LogitLog, atol: float = 1e-4) -> None:
    """Two recordings made the same decoding calls with logits equal within ``atol``."""
    assert len(a.calls) == len(b.calls) > 0, (len(a.calls), len(b.calls))
    for k, (x, y) in enumerate(zip(a.calls, b.calls, strict=True)):
        assert x.shape == y.shape, (k, x.shape, y.shape)
        assert torch.allclose(x, y, atol=atol), (k, (x - y).abs().max().item())
