"""Packaging: envs/ and configs/ ship inside the wheel; README and CI agree."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_envs_and_configs(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, timeout=300, capture_output=True)
    (wheel,) = tmp_path.glob("gato_mini-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ROOT.glob("envs/**/*"):
        if path.suffix in (".py", ".yaml"):
            assert "gato_mini/envs/" + path.relative_to(ROOT / "envs").as_posix() in names
    for path in ROOT.glob("configs/**/*"):
        if path.suffix in (".py", ".yaml"):
            assert "gato_mini/configs/" + path.relative_to(ROOT / "configs").as_posix() in names
    assert "gato_mini/tokenizers/text.py" in names
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert entry and "gato-mini = gato_mini.cli:main" in zipfile.ZipFile(wheel).read(entry[0]).decode()


def test_envs_and_configs_import_as_subpackages():
    import gato_mini.configs
    import gato_mini.envs

    assert gato_mini.envs.__doc__ and gato_mini.configs.__doc__


def _block(name: str) -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {name} -->\s*```bash\n(.*?)```\s*<!-- /{name} -->", readme, re.S)
    assert match, f"README.md has no {name} block"
    return match.group(1).strip()


def test_readme_has_the_two_commands_and_ci_reads_them():
    setup, tests = _block("setup"), _block("test")
    assert "pip install" in setup and "gato-mini" in setup
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert "block setup" in ci and "block test" in ci and "-eq 5" in ci


def test_ruff_is_clean():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_licence_and_citation_match_the_package():
    import yaml

    root = Path(__file__).resolve().parent.parent
    text = (root / "pyproject.toml").read_text()  # (tomllib is Python 3.11+; the project runs on 3.10)
    project = {k: re.search(rf'^{k} = "([^"]+)"', text, re.M).group(1) for k in ("license", "version")}
    assert project["license"] == "MIT"
    assert (root / "LICENSE").read_text().startswith("MIT License\n")
    cff = yaml.safe_load((root / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert cff["version"] == project["version"]
    assert cff["preferred-citation"]["title"] == "A Generalist Agent"
    assert cff["preferred-citation"]["authors"][0]["family-names"] == "Reed"


def test_every_relative_link_in_the_readme_and_docs_resolves():
    root = Path(__file__).resolve().parent.parent
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)", page.read_text()):
            if not target.startswith(("http://", "https://", "mailto:")) and \
                    not (page.parent / target).exists():
                broken.append(f"{page.relative_to(root)} -> {target}")
    assert not broken, broken
    assert len(pages) >= 8  # README and the pages it links: own-data, design, differences, scaling, ...
