"""Text and chat readers: Python's own docs, chatterbot-corpus, a user's files.

* :func:`pydoc_documents`: ``pydoc_data.topics`` (Python's help topics) and the
  docstrings of the standard library, read with :mod:`ast` (nothing imported,
  so nothing runs), one document per help topic and per module.
* :func:`chatterbot_conversations`: the English dialogues of the
  ``chatterbot-corpus`` package; turns alternate user, assistant.
* :func:`read_chat_jsonl`: a user's conversations, one JSON object per line,
  ``{"messages": [{"role": "user", "content": "..."}, ...]}``.
* :func:`read_text_documents`: a user's documents: a ``.txt``/``.md`` file, a
  folder of them, or a ``.jsonl`` of ``{"text": ...}``.

Errors name the file and line. Skips are counted in the ``skips`` counter the
caller passes, and reported by ``gato-mini prepare``: an empty document, a
conversation with no assistant turn.
"""

from __future__ import annotations

import ast
import sysconfig
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from gato_mini.data.jsonl import iter_jsonl
from gato_mini.data.sequence import CHAT_ROLES
from gato_mini.errors import FileFormatError

Messages = list[dict[str, str]]
_SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "lib2to3", "turtledemo",
              "__pycache__", "ensurepip", "tkinter", "config-3.11-x86_64-linux-gnu"}


def stdlib_files() -> list[Path]:
    """The standard library's ``.py`` files, without tests and bundled tools."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return [p for p in sorted(root.rglob("*.py"))
            if not _SKIP_DIRS.intersection(p.relative_to(root).parts)]


def _module_document(path: Path, root: Path) -> str:
    tree = ast.parse(path.read_bytes())
    name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
    parts = []
    doc = ast.get_docstring(tree)
    if doc:
        parts.append(f"{name}\n\n{doc}")
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            d = ast.get_docstring(node)
            if d and not node.name.startswith("_"):
                kind = "class" if isinstance(node, ast.ClassDef) else "def"
                parts.append(f"{kind} {name}.{node.name}\n\n{d}")
    return "\n\n".join(parts)


def pydoc_documents(docstrings: bool = True, max_modules: int | None = None) -> Iterator[tuple[str, str]]:
    """(key, text) for every help topic and (optionally) every stdlib module's docstrings."""
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield f"topic/{name}", topics[name]
    if not docstrings:
        return
    root = Path(sysconfig.get_paths()["stdlib"])
    for k, path in enumerate(stdlib_files()):
        if max_modules is not None and k >= max_modules:
            break
        try:
            text = _module_document(path, root)
        except (SyntaxError, ValueError, OSError):
            continue  # a file this Python cannot parse (rare): not a document
        if text:
            yield f"module/{path.relative_to(root)}", text


def chatterbot_conversations(language: str = "english") -> Iterator[tuple[str, Messages]]:
    """(key, messages) for every dialogue of chatterbot-corpus; turns alternate user/assistant."""
    import importlib.resources

    import yaml

    try:
        base = importlib.resources.files("chatterbot_corpus") / "data" / language
    except ModuleNotFoundError:  # pragma: no cover - a dependency
        raise FileFormatError("chat-chatterbot needs the chatterbot-corpus package") from None
    files = sorted((p for p in base.iterdir() if p.name.endswith((".yml", ".yaml"))), key=lambda p: p.name)
    if not files:
        raise FileFormatError(f"chatterbot-corpus has no dialogues for language {language!r}")
    for f in files:
        data = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        for i, conv in enumerate(data.get("conversations") or []):
            turns = [str(t).strip() for t in conv if t is not None and str(t).strip()]
            if len(turns) < 2:
                continue
            roles = [CHAT_ROLES[1 + k % 2] for k in range(len(turns))]
            yield f"{f.name}/{i}", [{"role": r, "content": t} for r, t in zip(roles, turns, strict=True)]


def read_chat_jsonl(path: str | Path, skips: Counter | None = None) -> Iterator[tuple[str, Messages]]:
    """(key, messages) per line of a chat JSONL; unknown roles and bad lines are errors."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"chat file not found: {path}")
    skips = skips if skips is not None else Counter()
    for where, row in iter_jsonl(path):
        msgs = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(msgs, list):
            raise FileFormatError(f"{where}: each line needs \"messages\": a list of {{role, content}}")
        for k, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("content"), str):
                raise FileFormatError(f"{where}: message {k} needs a string \"content\"")
            if m.get("role") not in CHAT_ROLES:
                raise FileFormatError(f"{where}: message {k} has unknown role {m.get('role')!r}; "
                                      f"use one of {', '.join(CHAT_ROLES)}")
        if not any(m["role"] == "assistant" for m in msgs):
            skips["conversation without an assistant turn"] += 1
            continue
        yield f"{path.name}:{where.rsplit(':', 1)[1]}", [{"role": m["role"], "content": m["content"]}
                                                          for m in msgs]


def read_text_documents(path: str | Path, skips: Counter | None = None) -> Iterator[tuple[str, str]]:
    """(key, text) of a .txt/.md file, every such file below a folder, or each line of a .jsonl."""
    path = Path(path)
    skips = skips if skips is not None else Counter()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".txt", ".md") and p.is_file())
        if not files:
            raise FileFormatError(f"{path} holds no .txt or .md files")
    elif path.is_file():
        files = [path]
    else:
        raise FileFormatError(f"text source not found: {path}")
    for f in files:
        if f.suffix == ".jsonl":
            for where, row in iter_jsonl(f):
                if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                    raise FileFormatError(f"{where}: each line needs a string \"text\"")
                if not row["text"].strip():
                    skips["empty document"] += 1
                    continue
                yield f"{f.name}:{where.rsplit(':', 1)[1]}", row["text"]
            continue
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise FileFormatError(f"{f}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        if not text.strip():
            skips["empty document"] += 1
            continue
        yield str(f.relative_to(path) if path.is_dir() else f.name), text
