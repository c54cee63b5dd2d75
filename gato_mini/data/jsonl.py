"""Reading JSON Lines files with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gato_mini.errors import FileFormatError


def iter_jsonl(path: str | Path) -> Iterator[tuple[str, Any]]:
    """``("FILE:LINE", value)`` for every non-blank line; a line that is not JSON is an error."""
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                raise FileFormatError(f"{where}: not valid JSON ({exc.msg})") from None
            except RecursionError:
                raise FileFormatError(f"{where}: nested too deeply") from None
            except UnicodeDecodeError as exc:  # pragma: no cover - raised by the file iterator
                raise FileFormatError(f"{where}: not UTF-8 ({exc.reason})") from None
