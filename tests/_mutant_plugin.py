"""A pytest plugin that plants one mutant: ``GATO_MUTANT`` (JSON: module, edits) names a gato_mini module
and the text replacements that make its wrong version. The module is compiled from the edited source
when first imported (never from a cached .pyc, and nothing is written), so the tree stays untouched.
Loaded with ``-p tests._mutant_plugin`` before any conftest imports gato_mini; see tests/mutants.py."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
from pathlib import Path

_SPEC = json.loads(os.environ.get("GATO_MUTANT", "null"))


class _MutantLoader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname):
        source = Path(self.path).read_text()
        for old, new in _SPEC["edits"]:
            if source.count(old) != 1:
                raise RuntimeError(f"mutant {_SPEC['name']}: {old!r} occurs {source.count(old)} times in "
                                   f"{self.path}, not once (the mutant is stale)")
            source = source.replace(old, new)
        return compile(source, self.path, "exec", dont_inherit=True)

    def set_data(self, *args, **kwargs) -> None:  # no .pyc of a mutant
        return None


class _MutantFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _SPEC["module"]:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.origin:
                spec.loader = _MutantLoader(name, spec.origin)
                return spec
        return None


if _SPEC:
    if _SPEC["module"] in sys.modules:
        raise RuntimeError(f"{_SPEC['module']} was imported before the mutant could be planted")
    sys.meta_path.insert(0, _MutantFinder())
