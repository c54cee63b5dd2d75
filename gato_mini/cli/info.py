"""``gato-mini tokens``, ``sizes`` and ``tasks``: what the package holds, printed (nothing is run)."""

from __future__ import annotations

import argparse


def add_tokens(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", default="tiny", help="named model size to show (default: tiny)")
    p.add_argument("--tokenizer", help="a tokenizer.json whose text tokens to count")


def run_tokens(args: argparse.Namespace) -> None:
    from gato_mini.reports.tables import print_token_space

    print_token_space(args.size, args.tokenizer)


def add_sizes(p: argparse.ArgumentParser) -> None:
    pass


def run_sizes(args: argparse.Namespace) -> None:
    from gato_mini.reports.tables import print_sizes

    print_sizes()


def add_tasks(p: argparse.ArgumentParser) -> None:
    pass


def run_tasks(args: argparse.Namespace) -> None:
    from gato_mini.reports.tables import print_tasks

    print_tasks()
