"""The ``gato-mini`` command: a map of subcommands, each parsing arguments and
calling one function (litgpt's style).

User errors (:class:`~gato_mini.errors.GatoError`) print one line and exit 2;
``--debug`` (or ``GATO_MINI_DEBUG=1``) shows their traceback too. Any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from gato_mini import __version__
from gato_mini.errors import GatoError

if TYPE_CHECKING:  # imported where used, so that --help stays fast
    from gato_mini.agent.eval_common import EvalOptions

# name -> (help line, function adding arguments, function running the command)
Command = tuple[
    str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int | None]
]


def _add_tokens(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", default="tiny", help="named model size to show (default: tiny)")
    p.add_argument("--tokenizer", help="a tokenizer.json whose text tokens to count")


def _run_tokens(args: argparse.Namespace) -> None:
    from gato_mini.reports.tables import print_token_space

    print_token_space(args.size, args.tokenizer)


def _add_sizes(p: argparse.ArgumentParser) -> None:
    pass


def _run_sizes(args: argparse.Namespace) -> None:
    from gato_mini.reports.tables import print_sizes

    print_sizes()


def _add_tasks(p: argparse.ArgumentParser) -> None:
    pass


def _run_tasks(args: argparse.Namespace) -> None:
    from gato_mini.reports.tables import print_tasks

    print_tasks()


def _add_collect(p: argparse.ArgumentParser) -> None:
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
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset (and discard an "
                   "interrupted collection of it)")
    p.add_argument("--chunk-steps", type=int, default=None, metavar="N",
                   help="seal finished episodes every N steps, so a kill loses at most about N; the same "
                        "command again records only the missing episodes (default 10,000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_collect(args: argparse.Namespace) -> None:
    from gato_mini.collect import Recording, run_episodes
    from gato_mini.envs.policies import import_modules
    from gato_mini.envs.registry import get_task
    from gato_mini.envs.user import user_task

    policy = args.policy or ("expert" if args.env is None else "random")
    recording = Recording(policy, args.episodes, seed=args.seed, max_steps=args.max_steps, noise=args.noise,
                          chunk_steps=args.chunk_steps, overwrite=args.overwrite).checked()  # before any work
    import_modules(args.imports)
    if args.env is not None:
        names: list = [user_task(args.env, args.max_steps, args.imports)]
    else:
        names = control_task_names() if args.task == ["all"] else args.task
        for name in names:
            get_task(name)  # an unknown name fails before any episode is recorded
    for task in names:
        result = run_episodes(task, recording, out=args.out, progress=not args.no_progress)
        name = args.env or task
        print(f"{name} {policy}: {args.episodes} episodes, {result.steps} steps, "
              f"mean return {result.mean:.2f} ± {result.std:.2f} "
              f"({result.rate:.0f} steps/s) -> {result.path}")


def control_task_names() -> list[str]:
    """Every registered task with episodes to record (all but the caption tasks)."""
    from gato_mini.envs.registry import TASKS

    return [name for name, t in TASKS.items() if t.family != "caption"]


def _add_scores(p: argparse.ArgumentParser) -> None:
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


def _run_scores(args: argparse.Namespace) -> None:
    from gato_mini.envs.registry import packaged_references_writable
    from gato_mini.options import checked, count, seed
    from gato_mini.reports.tables import print_scores

    checked(args.episodes, count("--episodes"))
    checked(args.seed, seed())
    checked(args.max_steps, count("--max-steps"))
    kinds = tuple(args.policy) if args.policy else ("random", "expert", "constant")
    out = packaged_references_writable() if args.update else (Path(args.out) if args.out else None)
    print_scores(args.task, args.episodes, args.seed, args.max_steps, out, not args.no_progress, kinds=kinds)


def _recipes_epilog() -> str:
    from gato_mini.data.datacfg import recipes

    lines = [f"  {name:<12} {about}" for name, about in recipes().items()]
    return ("--config takes a YAML path or the name of a packaged recipe:\n" + "\n".join(lines) +
            "\nEvery relative path, in a config or on the command line, starts from the current directory.")


def _add_prepare(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True,
                   help="data config: a YAML path or a recipe name (or a training config with a data "
                        "section)")
    p.add_argument("--force", action="store_true", help="rebuild every shard even when up to date")
    p.add_argument("--workers", type=int,
                   help="processes tokenizing sources in parallel (default: the config's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ("Any --data.KEY VALUE or --model.KEY VALUE overrides the config, e.g. "
                "--data.sources.caption-shapes.count 500.\n\n" + _recipes_epilog())


def _run_prepare(args: argparse.Namespace) -> None:
    from gato_mini.data.datacfg import data_config_from, model_config, read_config_file
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


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True,
                   help="training config (model, data, train, trainer): a YAML path or a recipe name, "
                        "e.g. tiny")
    p.add_argument("--out", help="the run's folder: checkpoints, logs, the exported model (default: the "
                   "config's train.out)")
    p.add_argument("--ckpt-path", dest="ckpt_path",
                   help="resume from this checkpoint (opened with weights_only=True)")
    p.add_argument("--resume", action="store_true",
                   help="resume from the newest checkpoint in OUT/checkpoints (starts afresh if none)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ("Any --SECTION.KEY VALUE overrides the config, e.g. --trainer.max_steps 200 "
                "--train.lr 3e-4.\n\n"
                + _recipes_epilog())


def _run_train(args: argparse.Namespace) -> None:
    from gato_mini.model.model import count_params
    from gato_mini.train.config import load_run_config
    from gato_mini.train.run import latest_checkpoint, train, trainer_settings

    overrides = list(args.overrides) + (["--train.out", args.out] if args.out else [])
    run = load_run_config(args.config, overrides)
    ckpt_path = args.ckpt_path
    if args.resume:
        if ckpt_path:
            raise GatoError("give --resume or --ckpt-path, not both")
        found = latest_checkpoint(Path(run.train.out) / "checkpoints")
        print(f"resuming from {found}" if found else f"no checkpoint in {run.train.out}/checkpoints: "
              "starting afresh", file=sys.stderr)
        ckpt_path = str(found) if found else None
    m, steps = run.model, trainer_settings(run, False)["max_steps"]
    print(f"training {m.n_layer} layers x {m.n_embd} ({count_params(m) / 1e6:.1f}M parameters) for {steps} "
          f"steps of {run.train.batch_size} x {m.block_size} tokens into {run.train.out}")
    model_dir = train(run, ckpt_path, progress=not args.no_progress)
    print(f"exported the model to {model_dir}")


def _add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="an exported model folder (e.g. runs/tiny/model)")
    p.add_argument("--task", action="append", required=True,
                   help="task or source to evaluate: a control task (plays it), a caption source "
                        "(captions its held-out images), a text or chat source (held-out perplexity); "
                        "repeat for several")
    # The defaults are agent.eval_common.EVAL_DEFAULTS (not imported here: --help stays fast); a test
    # checks this text against them.
    p.add_argument("--episodes", type=int, help="episodes per control task (default: 10); images per "
                   "caption task (default: every held-out image)")
    p.add_argument("--num-envs", type=int, help="environments run at once (default: 4; 16 for captions)")
    p.add_argument("--seed", type=int, default=1000, help="episode i uses seed SEED + i (default: 1000)")
    p.add_argument("--prompt-dataset", help="Minari dataset to prompt with (one task only; default: "
                   "runs/episodes/<task>/expert-v0 when it exists)")
    p.add_argument("--prompt-tokens", type=int, help="prompt budget in tokens (default: block_size / 4)")
    p.add_argument("--no-prompt", action="store_true", help="no demonstration prompt")
    p.add_argument("--temperature", type=float, default=0.0, help="0 for greedy (default)")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context every step (slow)")
    p.add_argument("--max-steps", type=int, help="episode step cap (default: the task's)")
    p.add_argument("--step-timeout", type=float, default=60.0,
                   help="seconds an environment may take to answer a reset or step before its episode "
                        "fails (control envs run in their own processes); 0: in this process, no limit "
                        "(default: 60)")
    p.add_argument("--no-offline", action="store_true", help="skip the teacher-forced action metrics on "
                   "held-out logged episodes (control tasks)")
    p.add_argument("--env", metavar="ENV_ID", help="evaluate an episodes source on this gymnasium env "
                   "(default: the registered task of that name, else the env its dataset stored the spec of)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it registers your envs); repeat for several")
    p.add_argument("--video", help="record the first episode of the first task as a .gif (or .mp4)")
    p.add_argument("--out", help="JSON results (default: eval.json beside the model folder)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def eval_options(args: argparse.Namespace) -> EvalOptions:
    """``gato-mini eval``'s flags as one checked :class:`~gato_mini.agent.eval_common.EvalOptions`."""
    from gato_mini.agent.eval_common import EvalOptions

    if (args.prompt_dataset or args.env) and len(args.task) > 1:
        raise GatoError("--prompt-dataset and --env go with a single --task")
    return EvalOptions(episodes=args.episodes, num_envs=args.num_envs, seed=args.seed,
                       prompt_dataset=args.prompt_dataset, use_prompt=not args.no_prompt,
                       prompt_tokens=args.prompt_tokens, temperature=args.temperature,
                       use_cache=not args.no_cache, max_steps=args.max_steps, step_timeout=args.step_timeout,
                       offline=not args.no_offline, env_id=args.env, imports=tuple(args.imports),
                       reference_cache=Path(args.model) / "references.json").checked()


def _run_eval(args: argparse.Namespace) -> int:
    from gato_mini.agent.eval_common import write_json
    from gato_mini.agent.evaluate import evaluate_tasks
    from gato_mini.model.export import load_model
    from gato_mini.reports.tables import print_eval

    options = eval_options(args)  # every number checked before the model loads
    model, tokenizer, tasks = load_model(args.model)
    out = Path(args.out) if args.out else Path(args.model).resolve().parent / "eval.json"
    # the first task records the video; a caption source's grid of samples goes beside the JSON
    plan = [(task, replace(options, video=args.video if k == 0 else None,
                           samples=str(out.with_name(f"{out.stem}-{task}-samples.png"))))
            for k, task in enumerate(args.task)]
    reports = evaluate_tasks(model, tokenizer, tasks, plan, not args.no_progress)
    write_json(reports, out, args.model)
    print_eval(reports)
    print(f"wrote {out}")
    failed = sum(len(r.failed) for r in reports)
    if failed:
        print(f"gato-mini eval: {failed} episode(s) failed; see 'error' in {out}", file=sys.stderr)
        return 1
    return 0


def _add_sampling(p: argparse.ArgumentParser, max_tokens: int) -> None:
    p.add_argument("--max-tokens", type=int, default=max_tokens, help=f"token limit (default: {max_tokens})")
    p.add_argument("--temperature", type=float, default=0.0, help="0 for greedy (default)")
    p.add_argument("--top-k", type=int, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, help="sample among the most likely tokens up to this probability")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")


def _sampling(args: argparse.Namespace, temperature: float | None = None, seed: int | None = None):
    """The sampling flags of ``caption`` and ``chat`` as one checked ``Sampling``."""
    from gato_mini.model.generate import Sampling

    return Sampling(args.max_tokens, args.temperature if temperature is None else temperature, args.top_k,
                    args.top_p, args.seed if seed is None else seed).checked()


def _add_caption(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="an exported model folder")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    p.add_argument("--samples", type=int, default=1, help="captions per image (sampled when > 1)")
    p.add_argument("--image-size", type=int, default=None,
                   help="images are fitted into SIZE x SIZE (default: the size the model's caption sources "
                        "were trained at, from its tasks.json; 64 for a model trained on none)")
    _add_sampling(p, 32)


def _run_caption(args: argparse.Namespace) -> None:
    from gato_mini.agent.eval_captions import caption_image_size
    from gato_mini.agent.prompting import caption
    from gato_mini.data.captions import load_image
    from gato_mini.model.export import load_model
    from gato_mini.options import checked, count

    checked(args.samples, count("--samples", hi=10_000))
    checked(args.image_size, count("--image-size", hi=4096))
    _sampling(args)  # every number checked before the model loads
    model, tokenizer, tasks = load_model(args.model)
    size, note = ((args.image_size, args.image_size), None) if args.image_size else caption_image_size(tasks)
    size = size or (64, 64)
    if note:
        print(note, file=sys.stderr)
    images = [(path, load_image(Path(path), size)) for path in args.images]
    for path, image in images:
        for k in range(args.samples):
            temp = args.temperature if args.samples == 1 or args.temperature > 0 else 0.8
            text = caption(model, tokenizer, image, _sampling(args, temp, args.seed + k))
            print(f"{path}: {text}" if args.samples == 1 else f"{path} [{k + 1}]: {text}", flush=True)


def _add_chat(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="an exported model folder")
    p.add_argument("--system", help="a system message that opens the conversation")
    _add_sampling(p, 64)


def _run_chat(args: argparse.Namespace) -> None:
    from gato_mini.agent.prompting import ChatSession
    from gato_mini.model.export import load_model

    sampling = _sampling(args)  # checked before the model loads
    model, tokenizer, _ = load_model(args.model)
    session = ChatSession(model, tokenizer, args.system, sampling)
    interactive = sys.stdin.isatty()
    if interactive:
        print("gato-mini chat: type a message; /reset starts over, /quit leaves.")
    while True:
        if interactive:
            print("you> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        line = line.rstrip("\n")
        if line.strip() == "/quit":
            break
        if line.strip() == "/reset":
            session.reset()
            print("(conversation reset)", flush=True)
            continue
        try:
            if interactive:  # stream the reply as it comes
                print("gato> ", end="", flush=True)
                session.reply(line, on_token=lambda s: print(s, end="", flush=True))
                print(flush=True)
            else:  # scripted: exactly one line per reply (newlines inside it written as \\n)
                print(session.reply(line).replace("\\", "\\\\").replace("\n", "\\n"), flush=True)
        except GatoError as exc:  # a bad turn does not end the session
            print(f"gato-mini chat: {exc}", file=sys.stderr, flush=True)


COMMANDS: dict[str, Command] = {
    "tokens": ("show the one id space: text, discrete, continuous and special ranges",
               _add_tokens, _run_tokens),
    "sizes": ("list the named model sizes with their parameter counts", _add_sizes, _run_sizes),
    "tasks": ("list the registered tasks: observations, actions, reference scores", _add_tasks, _run_tasks),
    "collect": ("record episodes of a task, or of any gymnasium env, as a Minari dataset",
                _add_collect, _run_collect),
    "scores": ("measure random and expert reference scores and compare them with the registry",
               _add_scores, _run_scores),
    "prepare": ("train the text tokenizer and tokenize every source of a data config into shards",
                _add_prepare, _run_prepare),
    "train": ("train a model from a config file (with --SECTION.KEY VALUE overrides) and export it",
              _add_train, _run_train),
    "eval": ("play tasks with a trained model on batched envs; raw and normalized scores",
             _add_eval, _run_eval),
    "caption": ("caption images with a trained model", _add_caption, _run_caption),
    "chat": ("chat with a trained model (interactive, or one turn per line from a pipe)",
             _add_chat, _run_chat),
}
#: Commands that take free --SECTION.KEY VALUE overrides after their own options.
TAKES_OVERRIDES = {"train", "prepare"}


def _add_quickstart(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/quickstart", help="output folder (default: runs/quickstart)")
    p.add_argument("--minutes", type=float, default=20.0,
                   help="wall-time budget of the whole run in minutes (default: 20)")
    p.add_argument("--config", help="a quickstart config: a YAML path or a recipe name (default: quickstart)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _run_quickstart(args: argparse.Namespace) -> int:
    from gato_mini.quickstart import main as quickstart

    argv = ["gato-mini", *sys.argv[1:]] if sys.argv and sys.argv[0].endswith("gato-mini") else \
        ["gato-mini", "quickstart", "--out", args.out, "--minutes", f"{args.minutes:g}"]
    return quickstart(args.out, args.minutes, args.config, not args.no_progress, argv)


COMMANDS["quickstart"] = ("the main job: collect expert episodes, train one model on control, captions and "
                          "text, evaluate it, write a report (resumable)", _add_quickstart, _run_quickstart)


def quiet_libraries() -> None:
    """Everything a user sees is gato-mini's own: the libraries' info lines (Lightning's "GPU
    available", its tips) and warnings are hidden, here and in the processes this one starts. gato-mini
    itself never warns: what it has to say it prints. ``--verbose`` keeps them all."""
    import logging
    import warnings

    warnings.simplefilter("ignore")
    os.environ["PYTHONWARNINGS"] = "ignore"  # env worker processes and DataLoader workers
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line, as gato-mini's own are (its usage block is in
    ``--help``): ``gato-mini eval: error: argument --episodes: invalid int value: 'nan' (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command."""
    parser = _Parser(
        prog="gato-mini",
        description="A small, faithful re-creation of DeepMind's Gato: one Transformer for "
        "text, images, buttons and joint torques.",
    )
    parser.add_argument("--version", action="version", version=f"gato-mini {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks for user errors too (or set GATO_MINI_DEBUG=1)")
    parser.add_argument("--verbose", action="store_true",
                        help="let the libraries (Lightning, PyTorch, Gymnasium, ...) print their own info "
                             "lines and warnings (or set GATO_MINI_VERBOSE=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (help_line, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_line, description=help_line))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gato-mini`` console script; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in TAKES_OVERRIDES:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    if args.command is None:
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("GATO_MINI_DEBUG", "") not in ("", "0")
    if args.verbose:
        os.environ["GATO_MINI_VERBOSE"] = "1"  # for train's own filters and the processes started here
    if os.environ.get("GATO_MINI_VERBOSE", "") in ("", "0"):
        quiet_libraries()
    try:
        code = COMMANDS[args.command][2](args)
    except GatoError as exc:
        if debug:
            raise
        print(f"gato-mini {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gato-mini {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        # A full disk or quota is the machine's state, not a bug: one line, like a user error.
        if debug or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"gato-mini {args.command}: error: no space left on the device{where}; free some space and "
              "run the same command again (finished work is kept)", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
