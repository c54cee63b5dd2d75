"""Every number a command takes is checked in one place (its options object, gato_mini/options.py):
NaN, a negative number and zero give one line and exit 2 before any work, unless the value means
something (listed in ACCEPTED, with what it means)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from gato_mini.agent.agent import AgentOptions
from gato_mini.agent.eval_common import EvalOptions
from gato_mini.cli import main
from gato_mini.collect import Recording
from gato_mini.errors import ConfigError, GatoError
from gato_mini.model.generate import Sampling
from gato_mini.options import MAX_COUNT, check_options, numeric_fields
from gato_mini.train.config import TRAINER_NUMBERS, TrainOptions, load_run_config

VALUES = (math.nan, -1, 0)

#: (options class, field, value) that are accepted, and why.
ACCEPTED = {
    (EvalOptions, "episodes", 0): "every held-out image of a caption source",
    (EvalOptions, "seed", 0): "a seed",
    (EvalOptions, "temperature", 0): "greedy",
    (EvalOptions, "step_timeout", 0): "envs in this process, no limit",
    (Recording, "seed", 0): "a seed",
    (Recording, "noise", 0): "no noise",
    (Recording, "share", 0): "a model acting on every step (DAgger), or no model acting",
    (Sampling, "temperature", 0): "greedy",
    (Sampling, "seed", 0): "a seed",
    (Sampling, "no_repeat", 0): "no repetition rule",
    (TrainOptions, "num_workers", 0): "data loaded in the training process",
    (TrainOptions, "min_lr", 0): "decay to zero",
    (TrainOptions, "warmup_steps", 0): "no warm-up",
    (TrainOptions, "weight_decay", 0): "no decay",
    (TrainOptions, "decay_share", 0): "a run sized in time keeps its peak rate to the end",
    (TrainOptions, "seed", 0): "a seed",
    (TrainOptions, "value_sigma", 0): "hard targets (HL-Gauss off)",
}
OPTIONS = {EvalOptions: EvalOptions(), Recording: Recording("expert", 1), Sampling: Sampling(),
           TrainOptions: TrainOptions()}


def _cases():
    for cls, valid in OPTIONS.items():
        for name, _ in numeric_fields(cls):
            for value in VALUES:
                yield pytest.param(valid, name, value, id=f"{cls.__name__}.{name}={value}")


@pytest.mark.parametrize("valid, name, value", list(_cases()))
def test_every_numeric_option_refuses_nan_negatives_and_a_meaningless_zero(valid, name, value) -> None:
    rule = dict(numeric_fields(valid))[name]
    changed = dataclasses.replace(valid, **{name: value})
    if (type(valid), name, value) in ACCEPTED:
        assert check_options(changed) is changed
        return
    with pytest.raises(GatoError) as err:
        check_options(changed)
    message = str(err.value)
    assert message.startswith(f"{rule.flag} must be ") and "\n" not in message, message


def test_every_options_class_has_rules_and_the_defaults_pass() -> None:
    for cls, valid in OPTIONS.items():
        assert numeric_fields(cls), cls
        check_options(valid)
    assert AgentOptions().sampling == Sampling()  # the agent's numbers are its Sampling's
    with pytest.raises(GatoError, match="--num-envs must be at least 1"):
        EvalOptions(num_envs=MAX_COUNT + 1).checked()
    with pytest.raises(GatoError, match="--temperature"):
        Sampling(temperature=math.inf).checked()
    with pytest.raises(GatoError, match="--top-p"):
        Sampling(top_p=1.5).checked()
    with pytest.raises(GatoError, match="--episodes"):
        EvalOptions(episodes=2.5).checked()  # a whole number
    with pytest.raises(GatoError, match="--seed"):
        EvalOptions(seed=True).checked()  # a bool is not a number here


# What each command's numeric flags are, with the arguments that make an accepted value fail later on
# something else (a model folder or task that does not exist), so no real work starts.
COMMANDS = {
    "eval": (["--model", "{tmp}/none", "--source", "x"],
             ["--episodes", "--num-envs", "--seed", "--prompt-tokens", "--temperature", "--max-steps",
              "--step-timeout"]),
    "caption": (["--model", "{tmp}/none", "{tmp}/a.png"],
                ["--samples", "--image-size", "--max-tokens", "--temperature", "--top-k", "--top-p",
                 "--seed"]),
    "chat": (["--model", "{tmp}/none"], ["--max-tokens", "--temperature", "--top-k", "--top-p", "--seed"]),
    "collect": (["--task", "nope", "--episodes", "1", "--out", "{tmp}/eps"],
                ["--episodes", "--seed", "--max-steps", "--noise", "--chunk-steps", "--policy-share",
                 "--temperature"]),
    "scores": (["--task", "nope"], ["--episodes", "--seed", "--max-steps"]),
    "prepare": (["--config", "{tmp}/none.yaml"], ["--workers"]),
    "quickstart": (["--out", "{tmp}/qs"], ["--minutes"]),
}
CLI_ACCEPTED = {("eval", "--seed", "0"), ("eval", "--temperature", "0"), ("eval", "--step-timeout", "0"),
                ("eval", "--episodes", "0"), ("caption", "--temperature", "0"), ("caption", "--seed", "0"),
                ("chat", "--temperature", "0"), ("chat", "--seed", "0"), ("collect", "--seed", "0"),
                ("collect", "--noise", "0"), ("collect", "--policy-share", "0"),
                ("collect", "--temperature", "0"), ("scores", "--seed", "0")}


def _cli_cases():
    for command, (_, flags) in COMMANDS.items():
        for flag in flags:
            for value in ("nan", "-1", "0"):
                yield pytest.param(command, flag, value, id=f"{command} {flag} {value}")


@pytest.mark.parametrize("command, flag, value", list(_cli_cases()))
def test_each_commands_numbers_are_one_line_and_exit_2(command, flag, value, tmp_path, capsys) -> None:
    base, _ = COMMANDS[command]
    argv = [command, *[a.replace("{tmp}", str(tmp_path)) for a in base], flag, value]
    with pytest.raises(SystemExit) as stop:  # argparse refuses what is not a number of its type
        code = main(argv)
        raise SystemExit(code)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert stop.value.code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"gato-mini {command}: error: "), lines
    named = flag in lines[0]
    assert named != ((command, flag, value) in CLI_ACCEPTED), lines[0]
    assert not (tmp_path / "eps").exists() and not (tmp_path / "qs").exists()  # nothing half-written


@pytest.mark.parametrize("key", [f"train.{name}" for name, _ in numeric_fields(TrainOptions)] +
                         [f"trainer.{name}" for name in TRAINER_NUMBERS] +
                         ["trainer.val_check_interval", "trainer.limit_val_batches"])
@pytest.mark.parametrize("value", ["nan", "-1", "0", "1e30"])
def test_training_config_numbers(key: str, value: str, tmp_path) -> None:
    name = key.split(".")[1]
    zero_means_something = ("trainer.gradient_clip_val", "trainer.limit_val_batches",
                            "trainer.num_sanity_val_steps")
    accepted = value == "0" and ((TrainOptions, name, 0) in ACCEPTED or key in zero_means_something)
    overrides = [f"--{key}", value, "--train.out", str(tmp_path / "run"), "--trainer.bogus", "1"]
    with pytest.raises(ConfigError) as err:
        load_run_config("tiny", overrides)
    message = str(err.value)
    assert ("bogus" in message) == accepted and (key in message) != accepted, message


@pytest.mark.parametrize("key, value", [("dropout", "nan"), ("norm_eps", "0"), ("rope_base", "inf"),
                                        ("intermediate_size", "x")])
def test_model_config_floats_are_finite(key: str, value: str, tmp_path) -> None:
    with pytest.raises(ConfigError, match=f"'model.{key}'"):
        load_run_config("tiny", [f"--model.{key}", value, "--train.out", str(tmp_path / "run")])


def test_a_yaml_alias_bomb_is_refused_before_it_is_built(tmp_path, capsys) -> None:
    import time

    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    lines.append("data: {sources: {caption-shapes: {count: *i}}}")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    t0 = time.perf_counter()
    assert main(["prepare", "--config", str(path)]) == 2
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "aliases expand to more than 100,000 values" in err[0], err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("key", ["eval.episodes", "eval.num_envs", "eval.caption_images", "reserve_minutes",
                                 "eval.max_steps.atari-pong", "collect.atari-pong.episodes",
                                 "collect.atari-pong.max_steps", "collect.atari-pong.noise"])
@pytest.mark.parametrize("value", ["nan", -1, 0])
def test_the_quickstart_configs_numbers(key: str, value, tmp_path) -> None:
    """The quickstart's own section: the same rules, each value named by its key in the config."""
    import yaml

    from gato_mini.quickstart_plan import default_config, load_config

    raw = yaml.safe_load(default_config().read_text())
    node = raw["quickstart"]
    *path, last = key.split(".")
    for part in path:
        node = node.setdefault(part, {})
    node[last] = value
    config = tmp_path / "qs.yaml"
    config.write_text(yaml.safe_dump(raw))
    accepted = value == 0 and key in ("eval.caption_images", "reserve_minutes", "collect.atari-pong.noise")
    if accepted:
        plan, _ = load_config(config, tmp_path / "out")
        assert plan.checked() is plan
        return
    with pytest.raises(ConfigError) as err:
        load_config(config, tmp_path / "out")
    assert f"quickstart.{key} must be " in str(err.value), str(err.value)
