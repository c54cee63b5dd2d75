"""The agent loop: batched equals single, cached equals uncached, legal actions only, failing envs.

Parity runs a "loud" model (tests/_models.py) whose actions depend on what it reads, and checks that
it really chooses several actions, so a constant policy or an ignored input cannot pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gato_mini.agent import Agent
from gato_mini.agent.agent import AgentOptions
from gato_mini.agent.rollout import run_agent
from gato_mini.config import GatoConfig
from gato_mini.data.sequence import episode_sequence
from gato_mini.data.timestep import decode_values, legal_range
from gato_mini.errors import GatoError
from gato_mini.fields import action_field, observation_fields
from gato_mini.model import GatoModel
from gato_mini.model.generate import Sampling
from tests._fakeenvs import MatchEnv
from tests._models import LogitLog, assert_same_logits, loud_model

CFG = GatoConfig.from_name("tiny", n_layer=2, n_embd=64, n_head=4, block_size=96, text_vocab_size=300)


def _agent(n: int, continuous: bool = False, loud: bool = True, **kw) -> Agent:
    env = MatchEnv(continuous)
    if loud:
        model = loud_model(CFG)
    else:
        torch.manual_seed(0)
        model = GatoModel(CFG)
    prompt = kw.pop("prompt", None)
    options = AgentOptions(Sampling(temperature=kw.pop("temperature", 0.0)), **kw)
    return Agent(model, observation_fields(env.observation_space), action_field(env.action_space), n,
                 prompt=prompt, options=options)


def _prompt(continuous: bool, steps: int = 3):
    """A demonstration of ``steps`` MatchEnv timesteps (7-8 tokens each), tokenized as training does."""
    env = MatchEnv(continuous)
    obs, _ = env.reset(seed=99)
    env.action_space.seed(99)
    rows = {"image": [], "state": []}
    for _ in range(steps):
        for k in rows:
            rows[k].append(obs[k])
        obs, *_ = env.step(env.action_space.sample())
    actions = np.stack([env.action_space.sample() for _ in range(steps)])
    fields, action = observation_fields(env.observation_space), action_field(env.action_space)
    return episode_sequence({k: np.stack(v) for k, v in rows.items()}, actions, fields, action, CFG)


def _distinct(results) -> int:
    return len({tuple(np.asarray(a, dtype=float).ravel().round(6)) for r in results for a in r.actions})


@pytest.mark.parametrize("continuous", [False, True])
def test_batched_equals_single(continuous: bool) -> None:
    batched = run_agent(_agent(3, continuous), [MatchEnv(continuous) for _ in range(3)], episodes=5, seed=7,
                        keep_actions=True)
    single = []
    for ep in range(5):
        single += run_agent(_agent(1, continuous), [MatchEnv(continuous)], episodes=1, seed=7 + ep,
                            keep_actions=True)
    assert [r.length for r in batched] == [r.length for r in single]
    assert [r.actions for r in batched] == [r.actions for r in single]
    assert [r.ret for r in batched] == pytest.approx([r.ret for r in single])
    assert _distinct(batched) >= (20 if continuous else 3)  # the policy reads its observations


@pytest.mark.parametrize("keep_prompt", [None, True, False])
@pytest.mark.parametrize("continuous", [False, True])
def test_cached_equals_uncached_across_context_overflow(continuous: bool, keep_prompt) -> None:
    # 2 patches + 3 values + | + 1-2 action tokens per step: block 96 overflows within an episode, so the
    # cache is refilled (with or without the prompt) several times
    kw = {} if keep_prompt is None else {"prompt": _prompt(continuous), "keep_prompt": keep_prompt}
    runs = {}
    for use_cache in (True, False):
        with LogitLog.recording() as log:
            results = run_agent(_agent(2, continuous, use_cache=use_cache, **kw),
                                [MatchEnv(continuous) for _ in range(2)], 4, 3, keep_actions=True)
        runs[use_cache] = results, log
    (cached, log_c), (plain, log_p) = runs[True], runs[False]
    assert all(r.error is None for r in cached + plain), [r.error for r in cached + plain]
    assert max(r.length for r in cached) * 7 > CFG.block_size  # the test really overflows
    assert [r.actions for r in cached] == [r.actions for r in plain]
    assert_same_logits(log_c, log_p)
    assert _distinct(cached) >= (20 if continuous else 3)


@pytest.mark.parametrize("continuous", [False, True])
def test_slots_that_overflow_together_are_refilled_in_one_call_and_equal_uncached(continuous: bool) -> None:
    """Envs whose episodes begin together overflow together: their caches are refilled as one batch, and
    the actions still equal recomputing every context."""
    runs, refills = {}, []
    for use_cache in (True, False):
        agent = _agent(3, continuous, use_cache=use_cache)
        real = agent._refill

        def refill(rows, real=real, use_cache=use_cache):
            if use_cache:
                refills.append(list(rows))
            return real(rows)
        agent._refill = refill
        with LogitLog.recording() as log:
            runs[use_cache] = run_agent(agent, [MatchEnv(continuous) for _ in range(3)], 3, 11,
                                        keep_actions=True), log
    assert max(len(rows) for rows in refills) > 1, refills  # a batch of slots refilled in one call
    (cached, log_c), (plain, log_p) = runs[True], runs[False]
    assert [r.actions for r in cached] == [r.actions for r in plain]
    assert_same_logits(log_c, log_p)


def test_the_prompt_changes_the_actions_and_keep_prompt_decides_the_refills() -> None:
    def logits(**kw):
        with LogitLog.recording() as log:
            run_agent(_agent(1, **kw), [MatchEnv()], 1, 5)
        return log.calls

    bare, kept, dropped = logits(), logits(prompt=_prompt(False), keep_prompt=True), \
        logits(prompt=_prompt(False), keep_prompt=False)
    assert not torch.allclose(bare[0], kept[0], atol=1e-3)  # the prompt is read at the first step
    assert torch.allclose(kept[0], dropped[0], atol=1e-5)  # both open the episode with it
    later = [k for k in range(len(kept)) if not torch.allclose(kept[k], dropped[k], atol=1e-3)]
    assert later and later[0] > 5  # they part at the first refill, where only one drops the prompt


@pytest.mark.parametrize("continuous", [False, True])
def test_actions_are_always_legal(continuous: bool) -> None:
    agent = _agent(2, continuous, temperature=1.0)
    real = agent.model.logits
    calls = []

    def biased(*args, ids=None, **kwargs):
        calls.append(ids)
        logits = real(*args, **kwargs)  # all ids: then cut to the range the agent asked for
        logits = logits.clone()
        logits[..., 0] += 1e4  # the raw argmax is a text id, never a legal action
        logits[..., CFG.special_id("<|eos|>")] += 1e4
        return logits if ids is None else logits[..., ids[0]:ids[1]]

    agent.model.logits = biased
    envs = [MatchEnv(continuous) for _ in range(2)]
    results = run_agent(agent, envs, episodes=3, seed=0, keep_actions=True)  # MatchEnv.step asserts legality
    acts = np.array([a for r in results for a in r.actions], dtype=float)
    assert len(acts) > 20 and calls  # the agent decodes through the biased logits
    if continuous:
        assert acts.min() >= -1 and acts.max() <= 1
    else:
        assert set(np.unique(acts)) <= {0, 1, 2}


def test_a_failing_env_ends_its_episode_only() -> None:
    envs = [MatchEnv(fail_at=3), MatchEnv()]
    results = run_agent(_agent(2), envs, episodes=4, seed=0)
    assert len(results) == 4
    failed = [r for r in results if r.error]
    assert failed and all("RuntimeError: the emulator crashed" in r.error for r in failed)
    assert any(r.error is None and r.length >= 8 for r in results)


def test_the_envs_observations_are_tokenized_together_as_each_alone() -> None:
    """One call of the observation builder for all envs gives each env the tokens of its own call."""
    agent = _agent(3)
    env = MatchEnv()
    obs = []
    for s in range(3):
        o, _ = env.reset(seed=s)
        obs.append(o)
    together = agent._observe_all(obs)
    for seq, o in zip(together, obs, strict=True):
        alone = agent.observe(o)
        for name in ("tokens", "targets", "local_pos", "patches", "patch_pos", "starts"):
            assert np.array_equal(getattr(seq, name), getattr(alone, name)), name


@pytest.mark.parametrize("point", ["median", "mode"])
def test_a_greedy_continuous_action_is_read_at_the_value_point(point: str) -> None:
    """The median (the default) or the mode of the predicted bins becomes the action, and the token fed
    back is the one whose value the env got; a discrete action is always its argmax."""
    kw = {} if point == "median" else {"value_point": point}
    agent = _agent(1, continuous=True, **kw)
    lo, hi = legal_range(agent.action, CFG)
    real = agent.model.logits

    def bimodal(*args, ids=None, **kwargs):
        logits = torch.full_like(real(*args, **kwargs), -30.0)
        logits[..., lo + 100], logits[..., lo + 600], logits[..., lo + 900] = np.log([0.45, 0.2, 0.35])
        return logits if ids is None else logits[..., ids[0]:ids[1]]

    agent.model.logits = bimodal
    obs, _ = MatchEnv(True).reset(seed=0)
    act = agent.act({0: obs})[0]
    want = lo + (600 if point == "median" else 100)
    assert np.allclose(act, decode_values(np.full((1, agent.n_act), want), agent.action, CFG)[0])
    assert int(agent.slots[0].pending.tokens[0]) == want
    assert _agent(1, value_point="median").point == "mode"  # discrete actions: no order to take a median of
    with pytest.raises(GatoError, match="value_point must be one of"):
        _agent(1, continuous=True, value_point="mean")
