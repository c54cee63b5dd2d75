"""The ``gato-mini`` command: a map of subcommands, each parsing arguments and
calling one function (litgpt's style). The commands live by concept: :mod:`~gato_mini.cli.info`
(tokens, sizes, tasks), :mod:`~gato_mini.cli.data` (collect, scores, prepare) and
:mod:`~gato_mini.cli.model` (train, eval, caption, chat); the main job, the parser and the error
handling are here.

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
from typing import NoReturn

from gato_mini import __version__
from gato_mini.cli import data, info, model
from gato_mini.errors import GatoError

# name -> (help line, function adding arguments, function running the command)
Command = tuple[
    str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int | None]
]


COMMANDS: dict[str, Command] = {
    "tokens": ("show the one id space: text, discrete, continuous and special ranges",
               info.add_tokens, info.run_tokens),
    "sizes": ("list the named model sizes with their parameter counts", info.add_sizes, info.run_sizes),
    "tasks": ("list the registered tasks: observations, actions, reference scores",
              info.add_tasks, info.run_tasks),
    "collect": ("record episodes of a task, or of any gymnasium env, as a Minari dataset",
                data.add_collect, data.run_collect),
    "scores": ("measure random and expert reference scores and compare them with the registry",
               data.add_scores, data.run_scores),
    "prepare": ("train the text tokenizer and tokenize every source of a data config into shards",
                data.add_prepare, data.run_prepare),
    "train": ("train a model from a config file (with --SECTION.KEY VALUE overrides) and export it",
              model.add_train, model.run_train),
    "eval": ("play tasks with a trained model on batched envs; raw and normalized scores",
             model.add_eval, model.run_eval),
    "caption": ("caption images with a trained model", model.add_caption, model.run_caption),
    "ask": ("ask a trained model a question about an image", model.add_ask, model.run_ask),
    "chat": ("chat with a trained model (interactive, or one turn per line from a pipe)",
             model.add_chat, model.run_chat),
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
