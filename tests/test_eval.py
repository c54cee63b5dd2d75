"""`gato-mini eval` as a user runs it: a smoke run, bad input, failing environments, prompts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from gato_mini.agent.eval_control import demonstration_prompt
from gato_mini.agent.eval_text import real_word_share, reply_turns, reply_words, unigram_f1
from gato_mini.cli import main
from gato_mini.collect import Recording, run_episodes
from gato_mini.config import GatoConfig
from gato_mini.envs.control import make_control
from gato_mini.envs.registry import Task, get_task
from gato_mini.errors import GatoError
from gato_mini.model import GatoModel
from gato_mini.model.export import export_model, load_model
from gato_mini.tokenizers import TextTokenizer

EXE = shutil.which("gato-mini") or str(Path(sys.executable).parent / "gato-mini")
CFG = GatoConfig.from_name("tiny", n_layer=2, n_embd=64, n_head=4, block_size=128, text_vocab_size=300)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("evalmodel")
    torch.manual_seed(0)
    fields, action = get_task("control-pendulum").fields()
    run_episodes("control-pendulum", Recording("expert", 2, seed=0, max_steps=30), out=tmp / "eps",
                 progress=False)
    tasks = {"sources": {"control-pendulum": {
        "kind": "episodes", "fields": {"observation": {k: f.to_dict() for k, f in fields.items()},
                                       "action": action.to_dict()},
        "options": {"dataset": str(tmp / "eps" / "control-pendulum" / "expert-v0")}, "val_fraction": 0.5}}}
    TextTokenizer.train(["a few words"], 300).save(tmp / "tok.json")
    export_model(tmp / "model", GatoModel(CFG), tmp / "tok.json", tasks)
    run_episodes("mujoco-reacher", Recording("expert", 1, seed=0, max_steps=10), out=tmp / "eps",
                 progress=False)
    return tmp


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300)


def test_eval_smoke_table_and_json(model_dir: Path) -> None:
    out = model_dir / "res.json"
    r = _cli("eval", "--model", str(model_dir / "model"), "--source", "control-pendulum", "--episodes", "3",
             "--num-envs", "2", "--max-steps", "20", "--out", str(out), "--no-progress",
             "--prompt-dataset", str(model_dir / "eps" / "control-pendulum" / "expert-v0"))
    assert r.returncode == 0, r.stderr
    assert "control-pendulum" in r.stdout and "normalized" in r.stdout
    res = json.loads(out.read_text())["sources"][0]
    assert res["episodes"] == 3 and res["failed"] == 0
    assert [e["length"] for e in res["per_episode"]] == [20, 20, 20]
    # --max-steps 20 is under the task's 200-step cap: the references are measured at 20 steps, on the
    # same seeds, and cached beside the model; the registry's full-episode ones would flatter it
    from gato_mini.references import measure_reference

    ref = {k: measure_reference("control-pendulum", k, 3, 1000, 20, progress=False) for k in
           ("random", "constant", "expert")}
    assert {k: res[k] for k in ref} == pytest.approx({k: r.mean for k, r in ref.items()}, abs=0.01)
    assert res["random"] != pytest.approx(get_task("control-pendulum").references()["random"].mean)
    assert all("cap=20 seed=1000 episodes=3" in v for v in res["references_from"].values())
    cache = json.loads((model_dir / "model" / "references.json").read_text())
    assert set(cache["Pendulum-v1 cap=20 seed=1000 episodes=3"]) == {"random", "constant", "expert"}
    assert "references: random measured at eval" in r.stdout
    base = max(res["random"], res["constant"])
    assert res["baseline"] == base
    expected = 100 * (res["return_mean"] - base) / (res["expert"] - base)
    assert res["normalized_mean"] == pytest.approx(expected)
    fields, action = get_task("control-pendulum").fields()
    per_step = sum(int(np.prod(f.shape)) for f in fields.values()) + 1 + int(np.prod(action.shape))
    budget = CFG.block_size // 4  # eval's default prompt budget: whole timesteps within it
    assert res["prompt"].endswith(f"({budget // per_step * per_step} tokens)"), res["prompt"]
    assert budget // per_step >= 2
    # offline metrics on the held-out episode (30 steps each): an untrained model vs the median bin (read
    # at its near-uniform distribution's median, the untrained model's pick lies near the middle bin)
    off = res["offline"]
    assert off["metric"] == "bin_error" and off["actions"] in (30, 60)
    assert 0 <= off["baseline"] <= off["value"]
    assert off["point"] == res["value_point"] == "median"
    assert "offline bin error" in r.stdout
    # the aggregate over tasks: one task, its per-episode normalized scores
    from gato_mini.reports.aggregate import iqm

    agg = json.loads(out.read_text())["aggregate"]["normalized"]
    per_episode = [100 * (e["ret"] - base) / (res["expert"] - base) for e in res["per_episode"]]
    assert agg["tasks"] == ["control-pendulum"]
    assert agg["iqm"]["value"] == pytest.approx(iqm(per_episode))
    assert agg["iqm"]["ci_low"] <= agg["iqm"]["value"] <= agg["iqm"]["ci_high"]
    assert "IQM [95% CI]" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--source", "atari-pong"], "the model was not trained on atari-pong; it knows: control-pendulum"),
    (["--source", "control-pendulum", "--num-envs", "0"], "--num-envs must be at least 1"),
    (["--source", "control-pendulum", "--prompt-dataset", "{eps}/mujoco-reacher/expert-v0"],
     "is of another task \\(mujoco-reacher\\), not control-pendulum"),
    (["--source", "atari-pongg"], "unknown task 'atari-pongg'"),
    (["--source", "control-pendulum", "--step-timeout", "-1"], "--step-timeout must be 0 \\(no limit\\) or a "
     "positive number of seconds, got -1"),
])
def test_eval_bad_input(model_dir: Path, args: list[str], message: str) -> None:
    args = [a.replace("{eps}", str(model_dir / "eps")) for a in args]
    r = _cli("eval", "--model", str(model_dir / "model"), "--no-progress", "--max-steps", "5", *args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gato-mini eval: error:"), r.stderr
    import re

    assert re.search(message, lines[0]), lines[0]


def test_a_crashing_env_is_reported_and_the_exit_code_says_so(model_dir: Path, monkeypatch, capsys) -> None:
    real_make = Task.make
    calls = []

    def make(self, max_steps=None, render_mode=None):
        env = real_make(self, max_steps, render_mode)
        real_step = env.step

        def step(action):  # the 5th env step of the whole run crashes (once)
            calls.append(1)
            if len(calls) == 5:
                raise RuntimeError("physics exploded")
            return real_step(action)
        env.step = step
        return env

    from dataclasses import replace

    from gato_mini.envs.registry import TASKS

    monkeypatch.setattr(Task, "make", make)
    # a 10-step task of its own, not --max-steps 10: that would measure references on the crashing env
    monkeypatch.setitem(TASKS, "control-pendulum", replace(TASKS["control-pendulum"], max_steps=10))
    out = model_dir / "crash.json"
    code = main(["eval", "--model", str(model_dir / "model"), "--source", "control-pendulum",
                 "--episodes", "4", "--num-envs", "2", "--no-prompt", "--no-progress", "--out", str(out),
                 "--step-timeout", "0"])  # in this process, where the patched make applies
    assert code == 1
    res = json.loads(out.read_text())["sources"][0]
    assert res["failed"] == 1 and res["episodes"] == 4
    assert "RuntimeError: physics exploded" in [e["error"] for e in res["per_episode"] if e["error"]][0]
    assert "1 episode(s) failed" in capsys.readouterr().err


def test_demonstration_prompt_is_the_end_of_the_best_episode(model_dir: Path) -> None:
    fields, action = get_task("control-pendulum").fields()
    tok = TextTokenizer.load(model_dir / "model" / "tokenizer.json", CFG)
    prompt = demonstration_prompt(model_dir / "eps" / "control-pendulum" / "expert-v0", "control-pendulum",
                                  fields, action, CFG, tok, budget=23)
    assert len(prompt) == 20 and len(prompt.starts) == 4  # whole 5-token timesteps within 23 tokens
    assert np.all(prompt.tokens[3::5] == CFG.special_id("<|sep|>"))
    with pytest.raises(GatoError, match="another task"):
        demonstration_prompt(model_dir / "eps" / "mujoco-reacher" / "expert-v0", "control-pendulum", fields,
                             action, CFG, tok, budget=23)


def test_hanging_dying_and_raising_envs_fail_only_their_episode(model_dir: Path, monkeypatch, capsys) -> None:
    """Envs in their own processes (the default): a step that hangs past --step-timeout, a reset that
    hangs, a process killed mid-step and a step that raises each fail their own episode, with the reason
    in the JSON and the table; the healthy episodes complete and match an in-process run."""
    from dataclasses import replace

    from _faulty import make_faulty

    from gato_mini.envs.registry import TASKS

    # an 8-step task of its own, not --max-steps 8: that would measure references on the faulty envs
    pendulum = replace(TASKS["control-pendulum"], max_steps=8)
    monkeypatch.setitem(TASKS, "control-pendulum", replace(pendulum, maker=make_faulty))
    out = model_dir / "faults.json"
    args = ["eval", "--model", str(model_dir / "model"), "--task", "control-pendulum", "--episodes", "6",
            "--num-envs", "3", "--no-prompt", "--no-progress", "--seed", "1000"]
    t0 = time.perf_counter()
    code = main([*args, "--out", str(out), "--step-timeout", "3"])
    seconds = time.perf_counter() - t0
    assert code == 1
    res = json.loads(out.read_text())["sources"][0]
    errors = {e["seed"]: e["error"] for e in res["per_episode"]}
    assert errors[1000] is None and errors[1005] is None
    assert "no answer to step within 3 s; its process was killed" in errors[1001]
    assert "process died during step (exit code -9)" in errors[1002]
    assert "RuntimeError: physics exploded (at _faulty.py:" in errors[1003]
    assert "no answer to reset within" in errors[1004]
    assert res["failed"] == 4 and len(res["per_episode"]) == 6
    assert "4 episode(s) failed" in capsys.readouterr().err
    assert seconds < 60  # two timeouts, not a hang
    # the healthy episodes are the same as in this process (the env process changes nothing)
    monkeypatch.setitem(TASKS, "control-pendulum", replace(pendulum, maker=make_control))
    inproc = model_dir / "inproc.json"
    main([*args, "--episodes", "1", "--out", str(inproc), "--step-timeout", "0"])
    first = json.loads(inproc.read_text())["sources"][0]["per_episode"][0]
    assert first["ret"] == pytest.approx(res["per_episode"][0]["ret"]) and first["length"] == 8


def test_process_env_starts_steps_and_reports_a_broken_factory() -> None:
    from functools import partial

    from _faulty import make_broken

    from gato_mini.agent.procenv import EnvError, ProcessEnv

    env = ProcessEnv(partial(make_control, "Pendulum-v1", 5), timeout=30)
    local = make_control("Pendulum-v1", 5)
    assert env.observation_space == local.observation_space and env.action_space == local.action_space
    o1, _ = env.reset(seed=3)
    o2, _ = local.reset(seed=3)
    assert o1.keys() == o2.keys() and all(np.array_equal(o1[k], o2[k]) for k in o1)
    a = local.action_space.sample()
    o1, o2 = env.step(a)[0], local.step(a)[0]
    assert all(np.array_equal(o1[k], o2[k]) for k in o1)
    env.close()
    local.close()
    with pytest.raises(EnvError, match="ValueError: cannot build Pendulum-v1"):
        ProcessEnv(partial(make_broken, "Pendulum-v1", 5), timeout=30).reset(seed=0)
    # a closure (a task a user registers inside a function) travels by value
    limit = 4
    env = ProcessEnv(lambda: make_control("Pendulum-v1", limit), timeout=30)
    env.reset(seed=0)
    assert [env.step(a)[3] for _ in range(limit)] == [False, False, False, True]  # truncated at 4
    env.close()


def test_eval_fits_frames_to_the_image_size_the_source_trained_at(tmp_path: Path, monkeypatch) -> None:
    """An episodes source with ``image_size`` was resized in training; eval's agent and its prompt must
    see the frames at that size too (Pong's 80x32 frames are 10 patches; at 16x16 they are one)."""
    from gato_mini.agent import agent as agent_module
    from gato_mini.agent.evaluate import EvalOptions, evaluate_source

    torch.manual_seed(0)
    fields, action = get_task("atari-pong").fields()
    run_episodes("atari-pong", Recording("random", 1, seed=0, max_steps=12), out=tmp_path / "eps",
                 progress=False)
    dataset = tmp_path / "eps" / "atari-pong" / "random-v0"

    def evaluate(options):
        tasks = {"sources": {"atari-pong": {
            "kind": "episodes", "fields": {"observation": {k: f.to_dict() for k, f in fields.items()},
                                           "action": action.to_dict()},
            "options": {"dataset": str(dataset), **options}, "val_fraction": 0.5}}}
        patches = []
        real = agent_module.Agent.observe
        def observe(self, obs):
            seq = real(self, obs)
            patches.append(len(seq.patches))
            return seq

        monkeypatch.setattr(agent_module.Agent, "observe", observe)
        report = evaluate_source(GatoModel(CFG), TextTokenizer.train(["a few words"], 300), tasks,
                                 "atari-pong", EvalOptions(1, 1, seed=0, prompt_dataset=str(dataset),
                                                           prompt_tokens=60, max_steps=4, step_timeout=None,
                                                           offline=False))
        monkeypatch.undo()
        return set(patches), int(report.prompt.rsplit("(", 1)[1].split()[0])

    assert evaluate({}) == ({10}, 60)  # 5 timesteps of 10 patches + separator + action
    assert evaluate({"image_size": [16, 16]}) == ({1}, 36)  # all 12 logged timesteps, 3 tokens each


def test_a_model_folder_of_an_older_version_still_loads(tmp_path: Path) -> None:
    """Folders written before the rename list their sources in ``tasks.json``: they load the same,
    and a folder holding both reads ``sources.json``."""
    tok = tmp_path / "tok.json"
    TextTokenizer.train(["a few words"], 300).save(tok)
    listing = {"sources": {"pydoc": {"kind": "text-pydoc"}}}
    folder = export_model(tmp_path / "m", GatoModel(CFG), tok, listing)
    (folder / "sources.json").rename(folder / "tasks.json")
    assert load_model(folder)[2] == listing
    (folder / "sources.json").write_text(json.dumps({"sources": {}}))
    assert load_model(folder)[2] == {"sources": {}}



def test_acting_seconds_times_a_few_batched_steps_and_scales_them_to_the_evaluation(model_dir: Path,
                                                                                     monkeypatch) -> None:
    """The quickstart's evaluation reserve: a handful of batched steps of the eval's own agent and envs
    are timed (here on a clock that ticks once a call, so the arithmetic is exact), and scaled to every
    batch of episodes at the step cap. The probe stops after the steps asked, not at an episode's end."""
    import gato_mini.agent.eval_control as ec
    from gato_mini.agent.eval_common import EvalOptions

    model, tok, trained = load_model(model_dir / "model")
    calls = []

    class Clock:
        @staticmethod
        def perf_counter() -> float:
            calls.append(len(calls))
            return float(len(calls) - 1)

    monkeypatch.setattr(ec, "time", Clock)
    options = EvalOptions(episodes=5, num_envs=2, max_steps=40, step_timeout=None,
                          prompt_dataset=str(model_dir / "eps" / "control-pendulum" / "expert-v0"))
    seconds = ec.acting_seconds(model, tok, trained, "control-pendulum", options, steps=6)
    # t0 = 0, then the acts at 1..8 (steps + 1 acted, the first with the prefill; the eighth call stops
    # the run): a start of 2 (t[1] - t0), a step of 1; three batches of two envs (5 episodes), each
    # started once and stepped to the cap
    assert len(calls) == 9
    assert seconds == pytest.approx(3 * (2 + 40 * 1))
    calls.clear()
    short = ec.acting_seconds(model, tok, trained, "control-pendulum", replace(options, max_steps=3), steps=6)
    assert len(calls) == 6 and short == pytest.approx(3 * (2 + 3 * 1))  # a cap below the probe: cap + 1 acts


def test_chat_replies_are_read_as_convai2_reads_them() -> None:
    """Unigram F1 on hand-written replies (lower case, punctuation and articles dropped, words counted
    with multiplicity), the real-word share and the turns a dialogue asks to be answered."""
    assert reply_words("The cat, a DOG!") == ["cat", "dog"]
    assert unigram_f1("the cat sat", "A cat sat down.") == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert unigram_f1("dog dog", "dog") == pytest.approx(2 * 0.5 * 1 / 1.5)  # one "dog" in common
    assert unigram_f1("", "anything") == 0.0 and unigram_f1("xyz", "abc") == 0.0
    assert unigram_f1("Hello there.", "hello, THERE") == 1.0
    assert real_word_share(["cat zorg", "the dog"], {"cat", "dog"}) == pytest.approx(2 / 3)
    assert real_word_share(["", "!!"], {"cat"}) is None
    msgs = [{"role": "system", "content": "s"}, {"role": "assistant", "content": "unasked"},
            {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]
    turns = reply_turns([("d", msgs)])
    assert [(k, len(conv), ref) for k, conv, ref in turns] == [("d#3", 3, "a1"), ("d#5", 5, "a2")]
    assert turns[1][1][-1] == {"role": "user", "content": "q2"}
