"""The package imports downward only: each first-party import goes to a lower layer (or its own).

Layers, lowest first. ``fields`` and ``catalog`` are the vocabulary that ``data/`` and ``envs/``
share; ``data/`` never imports ``envs/``. Function-level first-party imports are few, and each says
why it is not at the top of its module. The ``cli`` package is the exception: it imports a command's code when
the command runs, so ``gato-mini --help`` stays fast.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["errors", "options", "procs", "terminal", "catalog", "config", "config_files", "tokenizers",
          "fields", "data", "envs", "collect", "references", "model", "train", "reports", "agent", "api",
          "quickstart_plan", "quickstart", "cli"]
MAX_FUNCTION_IMPORTS = 10


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for gato_mini/ and the task suite (envs/ ships as gato_mini.envs)."""
    out = {}
    for base, prefix in ((ROOT / "gato_mini", "gato_mini"), (ROOT / "envs", "gato_mini.envs")):
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([prefix, *parts])] = path
    return out


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in LAYERS:
        return None  # the package itself, or a name it exports (__version__); every module has a layer
    return LAYERS.index(parts[1])


def _imports(path: Path, module: str) -> list[tuple[str, int, bool, str]]:
    """(imported module, line, inside a function, the source line) for every first-party import."""
    tree = ast.parse(path.read_text())
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(sub) for sub in ast.walk(node))
    lines = path.read_text().splitlines()
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this package
                base = module.split(".")[: -node.level] if path.name != "__init__.py" else \
                    module.split(".")[: len(module.split(".")) - node.level + 1]
                names = [".".join(base + ([node.module] if node.module else []))]
            elif node.module and node.module.split(".")[0] == "gato_mini":
                names = [node.module]
                if node.module == "gato_mini":
                    names = [f"gato_mini.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.split(".")[0] == "gato_mini"]
        for name in names:
            out.append((name, node.lineno, id(node) in inside, lines[node.lineno - 1]))
    return out


def test_every_package_is_in_a_layer() -> None:
    for module in _modules():
        parts = module.split(".")
        assert len(parts) < 2 or parts[1] in LAYERS, f"{module}: add its package to LAYERS"


def test_imports_go_downward_only() -> None:
    upward = []
    for module, path in _modules().items():
        mine = _layer(module)
        for name, line, _, _ in _imports(path, module):
            theirs = _layer(name)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{path.relative_to(ROOT)}:{line} {module} imports {name}")
    assert not upward, "\n".join(upward)


def test_no_module_level_import_cycle() -> None:
    modules = _modules()
    graph = {m: sorted({n for n, _, fn, _ in _imports(p, m) if not fn and n in modules and n != m})
             for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(m: str, chain: list[str]) -> None:
        if state.get(m) == 2:
            return
        assert state.get(m) != 1, "import cycle: " + " -> ".join([*chain, m])
        state[m] = 1
        for n in graph[m]:
            if not n.startswith(m + "."):  # a package's __init__ may import its own submodules
                visit(n, [*chain, m])
        state[m] = 2

    for m in graph:
        visit(m, [])


def test_function_level_imports_are_few_and_each_says_why() -> None:
    found = []
    for module, path in _modules().items():
        if module.split(".")[:2] == ["gato_mini", "cli"]:
            continue
        for name, line, fn, text in _imports(path, module):
            if fn:
                found.append(f"{path.relative_to(ROOT)}:{line} {name}")
                assert "# lazy:" in text, f"{path.relative_to(ROOT)}:{line}: say why ('# lazy: ...')"
    assert len(found) <= MAX_FUNCTION_IMPORTS, "\n".join(found)


def test_the_layering_test_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an import from data/ into envs/ is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from gato_mini.envs.registry import TASKS\n")
    found = _imports(bad, "gato_mini.data.bad")
    assert found == [("gato_mini.envs.registry", 2, True, "    from gato_mini.envs.registry import TASKS")]
    assert _layer(found[0][0]) > _layer("gato_mini.data.bad")


def test_the_eval_help_states_the_eval_defaults() -> None:
    """``gato-mini eval --help`` names the defaults without importing the evaluators; they must agree."""
    from gato_mini.agent.eval_captions import CaptionEvaluation
    from gato_mini.agent.eval_control import ControlEvaluation
    from gato_mini.agent.eval_vqa import VqaEvaluation
    from gato_mini.cli import build_parser

    control, captions, vqa = ControlEvaluation.defaults, CaptionEvaluation.defaults, VqaEvaluation.defaults
    text = " ".join(build_parser()._subparsers._group_actions[0].choices["eval"].format_help().split())
    assert f"episodes source (default: {control['episodes']})" in text
    assert f"(default: {control['num_envs']}; {captions['num_envs']} for captions and questions)" in text
    assert captions["num_envs"] == vqa["num_envs"]
    assert captions["episodes"] == 0 and "every held-out image" in text
    assert vqa["episodes"] == 0 and "every held-out question" in text


def test_the_collect_help_states_the_chunk_size() -> None:
    """``gato-mini collect --help`` names :data:`CHUNK_STEPS` without importing Minari; they must agree."""
    from gato_mini.cli import build_parser
    from gato_mini.data.minari_writer import CHUNK_STEPS

    text = " ".join(build_parser()._subparsers._group_actions[0].choices["collect"].format_help().split())
    assert f"(default {CHUNK_STEPS:,})" in text
