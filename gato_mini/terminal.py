"""Where gato-mini's output goes: the console and its progress bars (below every layer that shows work)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column

PIPED_WIDTH = 200  # columns of a table or bar written to a file or a pipe


def terminal(console: Console | None = None) -> Console:
    """The console gato-mini's tables and bars print to. Piped or redirected output gets
    :data:`PIPED_WIDTH` columns, never rich's 80, so a table line stays whole (``gato-mini tasks |
    grep atari-breakout`` finds it) and a log keeps the bars' times."""
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, PIPED_WIDTH)
    return console


def progress_bar(*fields: str, enabled: bool = True, remaining: bool = False,  # noqa: ANN201 (a Progress)
                 console: Console | None = None):
    """gato-mini's progress bars: the task's name, a bar that takes the room left, done/total, then
    ``fields`` (rich format strings of the task) and the elapsed (and remaining) time. Names, counts and
    times are never wrapped or cut, at 80 columns or piped (:func:`terminal`); the bar shrinks instead."""
    def fixed() -> Column:
        return Column(no_wrap=True)

    columns = [TextColumn("{task.description}", table_column=fixed()),
               BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=5)),
               MofNCompleteColumn(table_column=fixed()),
               *(TextColumn(f, table_column=fixed()) for f in fields),
               TimeElapsedColumn(table_column=fixed())]
    if remaining:
        columns.append(TimeRemainingColumn(table_column=fixed()))
    return Progress(*columns, console=terminal(console), expand=True, disable=not enabled)
