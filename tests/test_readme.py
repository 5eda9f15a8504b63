"""The commands the README and docs/ show: every script or module they run exists and takes every
option they pass it (checked against its own --help), and every make target they name is one."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PYTHON = ".venv/bin/python"


def code(text: str) -> list[str]:
    """Shell lines of the fenced blocks and the inline code spans, continuation lines joined."""
    fenced = re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    spans = [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", text)]
    lines = [line for block in fenced for line in block.replace("\\\n", " ").splitlines()]
    return [line.split(" # ")[0].strip() for line in [*lines, *spans]]


def commands() -> list[tuple[str, list[str]]]:
    """(where, argv after .venv/bin/python) for each Python command shown."""
    found = []
    for doc in DOCS:
        for line in code(doc.read_text()):
            if PYTHON + " " not in line:
                continue
            words = shlex.split(line.split(PYTHON + " ", 1)[1].replace("[", " ").replace("]", " "))
            found.append((doc.name, words))
    return found


@cache
def help_of(target: tuple[str, ...]) -> str:
    done = subprocess.run([sys.executable, *target, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(target)} --help: {done.stderr[-1000:]}"
    return done.stdout


def test_every_python_command_shown_exists_and_takes_its_options() -> None:
    shown = commands()
    assert len(shown) >= 15  # the scan found the README's commands at all
    for where, words in shown:
        target = tuple(words[:2]) if words[0] == "-m" else (words[0],)
        assert target[0] == "-m" or (REPO / target[0]).is_file(), f"{where}: {words}"
        options = {word.split("=")[0] for word in words[len(target) :] if word.startswith("--")}
        text = help_of(target)
        missing = sorted(o for o in options if not re.search(rf"(^|[\s,\[]){re.escape(o)}([\s=,\]]|$)", text, re.M))
        assert not missing, f"{where}: {' '.join(target)} takes no {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_make_target_shown_is_one(doc: Path) -> None:
    targets = {m.group(1) for line in code(doc.read_text()) if (m := re.match(r"make ([a-z][a-z-]*)", line))}
    for target in targets:
        done = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{doc.name}: make {target}: {done.stderr.strip()}"
