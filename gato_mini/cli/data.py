"""``gato-mini collect``, ``scores`` and ``prepare``: episodes recorded, references measured, sources
tokenized into shards. Each command's code is imported when it runs, so ``gato-mini --help`` stays fast."""

from __future__ import annotations

import argparse
from pathlib import Path

from gato_mini.errors import GatoError


def add_collect(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--task", action="append", help="task name (see `gato-mini tasks`); repeat for "
                       "several, "
                       "or 'all' for every control task")
    which.add_argument("--env", metavar="ENV_ID", help="any gymnasium env id instead of a task, also one "
                       "your package registers (`module:EnvId`, or with --import); writes OUT/<env id, lower "
                       "case>/<policy>-v0 and records the env spec")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it registers your envs); repeat for several")
    p.add_argument("--policy", default=None, help="expert, random, a task's other demonstrator "
                   "(atari-pong and atari-breakout: tracker), constant, constant:K, or MODULE:CALLABLE, your "
                   "function from observation to action (default: expert for a task, random for --env)")
    p.add_argument("--episodes", type=int, required=True, help="number of episodes")
    p.add_argument("--out", required=True, help="folder of Minari datasets; writes OUT/<task>/<policy>-v0")
    p.add_argument("--seed", type=int, default=0, help="episode i uses seed SEED + i (default: 0)")
    p.add_argument("--max-steps", type=int, help="episode step cap (default: the task's)")
    p.add_argument("--noise", type=float, default=0.0,
                   help="DART-style noise on the executed actions, logging the clean ones: the probability "
                        "of a random action (discrete), or the sd as a share of the half range (Box); "
                        "default 0")
    p.add_argument("--model", metavar="DIR", help="DAgger: a trained model folder acts and --policy (an "
                   "expert, a task's other demonstrator or MODULE:CALLABLE) labels every state it reaches; "
                   "the dataset, OUT/<task>/<policy>-dagger-v0, logs the labels (docs/own-data.md)")
    p.add_argument("--policy-share", type=float, default=0.0, metavar="P",
                   help="with --model: the share of steps on which the --policy's own action is executed "
                        "(DAgger's beta; default 0, the model acts on every step)")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="with --model: its sampling temperature (default 0, greedy)")
    p.add_argument("--num-envs", type=int, default=None, metavar="N",
                   help="with --model: envs run at once, one model call acting in all of them (default 16)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset (and discard an "
                   "interrupted collection of it)")
    p.add_argument("--chunk-steps", type=int, default=None, metavar="N",
                   help="seal finished episodes every N steps, so a kill loses at most about N; the same "
                        "command again records only the missing episodes (default 10,000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_collect(args: argparse.Namespace) -> None:
    from gato_mini.collect import Recording, run_episodes
    from gato_mini.envs.policies import import_modules
    from gato_mini.envs.registry import get_task
    from gato_mini.envs.user import user_task

    policy = args.policy or ("expert" if args.env is None else "random")
    recording = Recording(policy, args.episodes, seed=args.seed, max_steps=args.max_steps, noise=args.noise,
                          share=args.policy_share, chunk_steps=args.chunk_steps,
                          overwrite=args.overwrite).checked()  # before any work
    acting = None
    if args.model is not None:
        acting = model_acting(args.model, args.temperature, 16 if args.num_envs is None else args.num_envs)
    elif args.temperature:
        raise GatoError("--temperature is the sampling of a model acting: it needs --model")
    elif args.num_envs is not None:
        raise GatoError("--num-envs is how many envs a model acts in at once: it needs --model")
    import_modules(args.imports)
    if args.env is not None:
        names: list = [user_task(args.env, args.max_steps, args.imports)]
    else:
        names = control_task_names() if args.task == ["all"] else args.task
        for name in names:
            get_task(name)  # an unknown name fails before any episode is recorded
    for task in names:
        result = run_episodes(task, recording, out=args.out, progress=not args.no_progress, acting=acting)
        name = args.env or task
        policy_says = policy
        if acting is not None:  # whose return it is: the model's (and the policy's share)
            policy_says = f"labelled by {policy}, acted by the model ({args.policy_share:g} by the policy)"
        print(f"{name} {policy_says}: {args.episodes} episodes, {result.steps} steps, "
              f"mean return {result.mean:.2f} ± {result.std:.2f} "
              f"({result.rate:.0f} steps/s) -> {result.path}")


def model_acting(folder: str, temperature: float, num_envs: int = 1):  # noqa: ANN201 (Task -> Acting)
    """What ``collect --model DIR`` runs: a callable making the model folder's policy for a task (loaded
    once the task is known, so a bad folder or a model of other fields fails before any episode)."""
    from gato_mini.agent.policy import ModelPolicy
    from gato_mini.collect import Acting
    from gato_mini.options import checked, count, number

    checked(temperature, number("--temperature", 0, hi=100, optional=False))
    checked(num_envs, count("--num-envs", hi=4096))
    if not Path(folder).is_dir():
        raise GatoError(f"--model {folder}: no such model folder")

    def make(task) -> Acting:  # noqa: ANN001
        policy = ModelPolicy(folder, task, temperature, num_envs=num_envs)
        label = f"model {Path(folder).resolve()} (source {policy.name}"
        return Acting(policy, label + (f", temperature {temperature})" if temperature else ", greedy)"))
    return make


def control_task_names() -> list[str]:
    """Every registered task with episodes to record (all but the caption tasks)."""
    from gato_mini.envs.registry import TASKS

    return [name for name, t in TASKS.items() if t.family != "caption"]


def add_scores(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", action="append", required=True, help="task name; repeat for several, or 'all'")
    p.add_argument("--episodes", type=int, default=5, help="episodes per policy (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="episode i uses seed SEED + i (default: 0)")
    p.add_argument("--max-steps", type=int, help="episode step cap (default: the task's)")
    p.add_argument("--policy", action="append", choices=("random", "expert", "constant"),
                   help="which references to measure; repeat for several (default: all three; constant is "
                        "the best constant action: zero torque, or the best button held)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", metavar="FILE", help="store the measured scores in this references file of "
                       "yours (YAML; other entries in it are kept)")
    where.add_argument("--update", action="store_true", help="store them as the packaged references "
                       "(envs/references.yaml): from a source checkout only, never an installed package")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_scores(args: argparse.Namespace) -> None:
    from gato_mini.envs.registry import packaged_references_writable
    from gato_mini.options import checked, count, seed
    from gato_mini.reports.tables import print_scores

    checked(args.episodes, count("--episodes"))
    checked(args.seed, seed())
    checked(args.max_steps, count("--max-steps"))
    policies = tuple(args.policy) if args.policy else ("random", "expert", "constant")
    out = packaged_references_writable() if args.update else (Path(args.out) if args.out else None)
    print_scores(args.task, args.episodes, args.seed, args.max_steps, out, not args.no_progress,
                 policies=policies)


def recipes_epilog() -> str:
    from gato_mini.config_files import recipes

    lines = [f"  {name:<12} {about}" for name, about in recipes().items()]
    return ("--config takes a YAML path or the name of a packaged recipe:\n" + "\n".join(lines) +
            "\nEvery relative path, in a config or on the command line, starts from the current directory.")


def add_prepare(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True,
                   help="data config: a YAML path or a recipe name (or a training config with a data "
                        "section)")
    p.add_argument("--force", action="store_true", help="rebuild every shard even when up to date")
    p.add_argument("--workers", type=int,
                   help="processes tokenizing sources in parallel (default: the config's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ("Any --data.KEY VALUE or --model.KEY VALUE overrides the config, e.g. "
                "--data.sources.caption-shapes.count 500.\n\n" + recipes_epilog())


def run_prepare(args: argparse.Namespace) -> None:
    from gato_mini.config import model_config
    from gato_mini.config_files import read_config_file
    from gato_mini.data.datacfg import data_config_from
    from gato_mini.data.prepare import prepare
    from gato_mini.errors import ConfigError
    from gato_mini.options import checked, count
    from gato_mini.reports.tables import print_prepare
    from gato_mini.train.config import apply_overrides

    workers = checked(args.workers, count("--workers", hi=256))  # before any file is read
    raw = read_config_file(args.config)
    try:
        data, cfg = data_config_from(raw)
    except ConfigError as exc:
        raise ConfigError(f"{args.config}: {exc}") from None
    if args.overrides:  # --data.KEY / --model.KEY, as train takes them
        try:
            if "data" in raw:
                data, cfg = data_config_from(apply_overrides(raw, args.overrides))
            else:  # a data config alone: its keys are --data.KEY
                new = apply_overrides({"data": raw}, args.overrides)
                data, cfg = data_config_from(new["data"])[0], model_config(new.get("model"))
        except ConfigError as exc:
            raise ConfigError(f"on the command line: {exc}") from None
    if workers is not None:
        data.workers = workers
    print_prepare(prepare(data, cfg, progress=not args.no_progress, force=args.force))
