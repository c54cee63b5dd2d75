"""Reading JSON Lines files with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gato_mini.errors import FileFormatError

#: The longest line read (characters): a longer one is an error naming it, not a read of gigabytes.
MAX_LINE_CHARS = 1 << 26


def iter_jsonl(path: str | Path) -> Iterator[tuple[str, Any]]:
    """``("FILE:LINE", value)`` for every non-blank line; a line that is not JSON, or longer than
    :data:`MAX_LINE_CHARS`, is an error."""
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        lineno = 0

        def read() -> str:
            try:
                return f.readline(MAX_LINE_CHARS + 1)
            except UnicodeDecodeError as exc:
                raise FileFormatError(f"{path}:{lineno + 1}: not UTF-8 ({exc.reason})") from None

        for lineno, line in enumerate(iter(read, ""), 1):  # noqa: B007 (read() names the next line)
            where = f"{path}:{lineno}"
            if len(line) > MAX_LINE_CHARS:
                raise FileFormatError(f"{where}: a line longer than {MAX_LINE_CHARS:,} characters; split it")
            if not line.strip():
                continue
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                raise FileFormatError(f"{where}: not valid JSON ({exc.msg})") from None
            except RecursionError:
                raise FileFormatError(f"{where}: nested too deeply") from None
