"""Every named mutant of issue 17 (tests/mutants.py) makes at least one default test fail."""

from __future__ import annotations

import pytest

from tests import mutants


@pytest.mark.slow
def test_every_named_mutant_is_killed(tmp_path) -> None:
    out = tmp_path / "mutants.json"
    assert mutants.main(["--out", str(out)]) == 0, out.read_text()


def test_the_mutant_table_names_each_module_and_test_file_once() -> None:
    from pathlib import Path

    names = [m["name"] for m in mutants.MUTANTS]
    assert len(names) == len(set(names)) == 10
    for m in mutants.MUTANTS:
        assert all((mutants.ROOT / t).is_file() for t in m["tests"]), m
        path = Path(mutants.ROOT, *m["module"].split(".")).with_suffix(".py")
        source = path.read_text()
        for old, _ in m["edits"]:
            assert source.count(old) == 1, (m["name"], old)  # not stale: each edit applies exactly once
