"""The ``gato-mini`` command: a map of subcommands, each parsing arguments and
calling one function (litgpt's style).

User errors (:class:`~gato_mini.errors.GatoError`) print one line and exit 2;
``--debug`` (or ``GATO_MINI_DEBUG=1``) shows their traceback too. Any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from gato_mini import __version__
from gato_mini.errors import GatoError

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


COMMANDS: dict[str, Command] = {
    "tokens": ("show the one id space: text, discrete, continuous and special ranges",
               _add_tokens, _run_tokens),
    "sizes": ("list the named model sizes with their parameter counts", _add_sizes, _run_sizes),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="gato-mini",
        description="A small, faithful re-creation of DeepMind's Gato: one Transformer for "
        "text, images, buttons and joint torques.",
    )
    parser.add_argument("--version", action="version", version=f"gato-mini {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks for user errors too (or set GATO_MINI_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (help_line, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_line, description=help_line))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gato-mini`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    debug = args.debug or os.environ.get("GATO_MINI_DEBUG", "") not in ("", "0")
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
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
