"""The README and the docs pages for users, run as a newcomer runs them.

Every ``gato-mini`` command of every fenced block, and every YAML snippet (a block whose first line
is ``# NAME.yaml`` is that file), section by section in a fresh directory outside the checkout, in
each page's order, exactly as written (:data:`PAGES`; the logs of experiments, measurements and
faults, ``docs/learning.md``, ``speed.md`` and ``reliability.md``, record commands of their day and
are not run). Only flags are appended to scale the work down, and only
documented ones (each command's own options and ``--SECTION.KEY`` overrides): :data:`RULES` says
which, per command. A command no rule knows fails the test, so a new README command needs its
scale-down here. The setup and test blocks are what CI itself runs (``.ci/run``); the main job of
the setup line, ``gato-mini quickstart``, is run with ``--config`` (its fast config), ``--minutes``
and ``--no-progress`` by ``tests/test_quickstart.py``, so it is not run twice here.

Files the README says the user has (``mypolicy.py``, a package registering ``MyEnv-v0``, photos,
chats, notes, ``photo.png``) are written by :func:`user_files` before a section runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("README.md", "docs/own-data.md", "docs/design.md", "docs/scaling.md", "docs/troubleshooting.md")
EXE = shutil.which("gato-mini") or str(Path(sys.executable).parent / "gato-mini")

# Scale-down flags: `absent` are appended unless the command already gives that flag (so the README's
# own values stay), `forced` always (they override the README's value; argparse and the config
# overrides both let the last one win).
MIXTURE = {"--model.text_vocab_size": "300", "--data.sources.caption-shapes.count": "40",
           "--data.sources.caption-shapes.val_count": "8", "--data.sources.text-pydoc.max_modules": "2",
           "--data.val_windows": "2"}
SMALL_MODEL = {"--model.n_layer": "1", "--model.n_embd": "32", "--model.n_head": "2",
               "--model.block_size": "64",
               "--train.batch_size": "2", "--trainer.limit_val_batches": "1"}
ON_CPU = {"--trainer.accelerator": "cpu", "--trainer.devices": "1", "--trainer.num_nodes": "1",
          "--trainer.precision": "32-true", "--train.compile": "false", "--train.num_workers": "0",
          "--trainer.max_steps": "2", "--trainer.val_check_interval": "2"}


@dataclass
class Rule:
    pattern: str  # re.search on the command as written
    absent: dict[str, str] = field(default_factory=dict)
    forced: dict[str, str] = field(default_factory=dict)
    stdin: str | None = None


RULES = [
    Rule(r"^gato-mini (tokens|sizes|tasks)\b"),
    Rule(r"^gato-mini collect ", {"--max-steps": "20", "--no-progress": ""}, {"--episodes": "3"}),
    Rule(r"^gato-mini scores ", {"--max-steps": "10", "--no-progress": ""}),
    Rule(r"^gato-mini prepare --config (tiny|small|mixture|language)\b", {**MIXTURE, "--no-progress": ""}),
    # GPU recipes on this CPU: Gato's shapes cut to one small layer, two steps
    # (these four share one data folder: the same sources and id layout, prepared once)
    Rule(r"^gato-mini train --config gato-", {**MIXTURE, "--no-progress": ""},
         {**SMALL_MODEL, **ON_CPU, "--trainer.strategy": "auto", "--data.root": "runs/data-shared"}),
    Rule(r"^gato-mini train --config tiny --trainer.strategy ddp", {**MIXTURE, "--no-progress": ""},
         {**SMALL_MODEL, **ON_CPU, "--data.root": "runs/data-shared"}),
    Rule(r"^gato-mini train --config (tiny|small|language)\b",
         {**MIXTURE, **SMALL_MODEL, "--no-progress": ""},
         {"--trainer.max_steps": "4", "--trainer.val_check_interval": "4"}),
    Rule(r"^gato-mini train --config my\.yaml", {"--data.sources.caption-shapes.count": "40",
                                                 "--data.sources.caption-shapes.val_count": "8",
                                                 **SMALL_MODEL, "--model.text_vocab_size": "300",
                                                 "--trainer.max_steps": "4", "--no-progress": ""}),
    Rule(r"^gato-mini train --config cartpole(-dagger)?\.yaml",
         {"--trainer.max_steps": "4", "--no-progress": ""}),
    Rule(r"^gato-mini eval ", {"--max-steps": "5", "--no-progress": ""},
         {"--episodes": "2", "--num-envs": "2"}),
    Rule(r"^gato-mini caption ", {"--max-tokens": "6"}),
    Rule(r"^gato-mini chat ", {"--max-tokens": "6"}, stdin="Hello, how are you?\n"),
    # the main job: tests/test_quickstart.py runs `gato-mini quickstart` on its fast config (same flags)
    Rule(r"^gato-mini quickstart$", {"--no-progress": ""}, {"--minutes": "10", "--out": "runs/quickstart"}),
]


STANDALONE = {"gato-mini quickstart", "gato-mini tokens", "gato-mini sizes", "gato-mini tasks"}


@dataclass
class Block:
    section: str  # the "## " heading it sits under
    lang: str
    body: str
    marker: str  # the <!-- name --> line just above it, if any


def readme_blocks(text: str) -> list[Block]:
    blocks, section, marker, lang, body = [], "", "", None, []
    for line in text.splitlines():
        if lang is None:
            if line.startswith("## "):
                section = line[3:].strip()
            if line.startswith("```"):
                lang, body = line[3:].strip(), []
            elif line.strip():
                marker = line.strip() if line.startswith("<!--") else ""
        elif line.startswith("```"):
            blocks.append(Block(section, lang, "\n".join(body), marker))
            lang, marker = None, ""
        else:
            body.append(line)
    return blocks


def commands(body: str) -> list[str]:
    """The gato-mini command lines of a shell block: continuations joined, prompts and comments cut."""
    out, pending = [], ""
    for raw in body.splitlines():
        line = (pending + " " + raw.strip()).strip() if pending else raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        line = line.removeprefix("$ ")
        if not line or line.startswith("#"):
            continue
        line = re.split(r"\s+#\s", line, maxsplit=1)[0].strip()
        words = shlex.split(line)
        program = next((w for w in words if "=" not in w), "")
        if program.endswith("gato-mini"):
            out.append(line)
    return out


def scaled(command: str) -> tuple[list[str], dict[str, str], str | None]:
    """(argv, environment additions, stdin) of a README command with its rule's flags appended."""
    words = shlex.split(command)
    env = {}
    while "=" in words[0]:
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    assert words[0].endswith("gato-mini"), command
    plain = " ".join(["gato-mini", *words[1:]])
    rule = next((r for r in RULES if re.search(r.pattern, plain)), None)
    assert rule is not None, f"no scale-down rule in tests/test_readme.py for the README command: {command}"
    argv = [EXE, *words[1:]]
    for key, value in rule.absent.items():
        if key not in words:
            argv += [key] + ([value] if value else [])
    for key, value in rule.forced.items():
        argv += [key] + ([value] if value else [])
    return argv, env, rule.stdin


def user_files(where: Path, text: str) -> None:
    """What the README says the user already has."""
    from PIL import Image

    m = re.search(r"# mypolicy\.py holds: (def .+)", text)
    assert m, "the README no longer says what mypolicy.py holds"
    (where / "mypolicy.py").write_text(m.group(1) + "\n")
    (where / "mypackage.py").write_text(
        "import gymnasium as gym\nimport numpy as np\n\n\n"
        "class MyEnv(gym.Env):\n"
        "    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)\n"
        "    action_space = gym.spaces.Discrete(2)\n\n"
        "    def reset(self, seed=None, options=None):\n"
        "        super().reset(seed=seed)\n"
        "        self.t = 0\n"
        "        return self.np_random.uniform(-1, 1, 2).astype(np.float32), {}\n\n"
        "    def step(self, action):\n"
        "        self.t += 1\n"
        "        obs = self.np_random.uniform(-1, 1, 2).astype(np.float32)\n"
        "        return obs, float(action == (obs[0] > 0)), False, self.t >= 30, {}\n\n\n"
        "gym.register('MyEnv-v0', entry_point=MyEnv)\n")
    rng = np.random.default_rng(0)
    photos = where / "data" / "photos"
    photos.mkdir(parents=True)
    colours = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
    with open(photos / "metadata.jsonl", "w") as f:
        for i in range(6):
            name, rgb = list(colours.items())[i % 3]
            image = np.zeros((40, 40, 3), np.uint8)
            image[8:32, 8:32] = rgb
            Image.fromarray(image).save(photos / f"{i}.png")
            f.write(json.dumps({"file_name": f"{i}.png", "text": f"a {name} square"}) + "\n")
    shutil.copy(photos / "0.png", where / "photo.png")
    with open(where / "data" / "chats.jsonl", "w") as f:
        for i in range(6):
            f.write(json.dumps({"messages": [{"role": "user", "content": f"what is {i} plus one?"},
                                             {"role": "assistant", "content": f"{i + 1}."}]}) + "\n")
    notes = where / "data" / "notes"
    notes.mkdir()
    for i in range(6):
        words = " ".join(rng.choice(["gato", "acts", "reads", "plays", "pong", "from", "pixels"], 12))
        (notes / f"note{i}.md").write_text(f"# note {i}\n\n{words}.\n")


@pytest.mark.slow  # about 4 minutes: CI's second step runs it, after the default suite
def test_every_readme_and_docs_command_and_snippet_runs_as_written(tmp_path_factory) -> None:
    readme = (ROOT / "README.md").read_text()
    sections: dict[tuple[str, str], list[Block]] = {}
    for page in PAGES:
        for b in readme_blocks((ROOT / page).read_text()):
            if b.lang in ("bash", "text", "yaml", "sh", "console", ""):
                sections.setdefault((page, b.section), []).append(b)
    ran: list[str] = []
    for (page, section), items in sections.items():
        where = tmp_path_factory.mktemp("readme")
        assert not str(where.resolve()).startswith(str(ROOT)), "must run outside the checkout"
        user_files(where, readme)  # the README says what the user's files hold
        for b in items:
            if b.lang == "yaml":
                first = b.body.splitlines()[0]
                m = re.fullmatch(r"# ([\w.-]+\.yaml)", first.strip())
                assert m, f"a YAML block in {page} '{section}' must start with '# NAME.yaml': {first!r}"
                (where / m.group(1)).write_text(b.body + "\n")
                yaml.safe_load(b.body)
                continue
            if b.marker == "<!-- test -->":
                continue  # CI's own test command
            lines = commands(b.body)
            if b.marker == "<!-- setup -->":  # CI installs; the main job is the quickstart test's
                lines = [c.split("&&")[-1].strip().replace(".venv/bin/gato-mini", "gato-mini")
                         for c in b.body.splitlines() if c.strip()]
                assert lines == ["gato-mini quickstart"], lines
                ran.append(lines[0])
                continue
            for command in lines:
                if command in STANDALONE and command in ran:
                    continue  # needs no files: once is enough
                argv, env, stdin = scaled(command)
                env = {**os.environ, **env, "COLUMNS": "200"}
                if "PYTHONPATH" in env:  # as the user's shell resolves it: relative to this directory
                    env["PYTHONPATH"] = os.pathsep.join(str((where / p).resolve())
                                                        for p in env["PYTHONPATH"].split(os.pathsep))
                t0 = time.perf_counter()
                r = subprocess.run(argv, cwd=where, env=env, input=stdin, capture_output=True, text=True,
                                   timeout=600)
                print(f"README {time.perf_counter() - t0:5.1f} s  {command}")
                assert r.returncode == 0, (f"{page} section '{section}': {command}\n(run as "
                                           f"{shlex.join(argv[1:])})\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
                assert "Traceback" not in r.stderr, (command, r.stderr[-3000:])
                ran.append(command)
    must = ("gato-mini quickstart", "gato-mini collect --env CartPole-v1", "gato-mini train --config my.yaml",
            "gato-mini eval --model runs/my/model", "gato-mini train --config cartpole.yaml",
            "gato-mini collect --env CartPole-v1 --model runs/cartpole/model",
            "gato-mini train --config cartpole-dagger.yaml", "gato-mini chat --model runs/language/model",
            "gato-mini train --config gato-79m", "gato-mini train --config gato-1.18b")
    for start in must:
        assert any(c.startswith(start) or start in c for c in ran), (start, ran)


def test_the_readme_parser_reads_what_it_must() -> None:
    body = "$ gato-mini eval --model m --task a \\\n    --episodes 3   # a comment\n# only a comment\n" \
           "PYTHONPATH=. gato-mini collect --env X --out d   # or: --import y\npython -c 1"
    assert commands(body) == ["gato-mini eval --model m --task a --episodes 3",
                              "PYTHONPATH=. gato-mini collect --env X --out d"]
    argv, env, _ = scaled("PYTHONPATH=. gato-mini collect --env X --out d --max-steps 7")
    assert env == {"PYTHONPATH": "."} and argv.count("--max-steps") == 1 and "--no-progress" in argv
    argv, _, _ = scaled("gato-mini train --config gato-1.18b --trainer.num_nodes 4")
    assert argv[argv.index("--trainer.num_nodes", argv.index("4")) + 1] == "1"  # forced, after the README's
    with pytest.raises(AssertionError, match="no scale-down rule"):
        scaled("gato-mini frobnicate --now")
