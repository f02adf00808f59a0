"""Every `lanterna ...` command the README and the docs show exists as shown: its
command path resolves and every option it names is one the command takes.

The examples are read from the documents themselves (console lines, table cells, inline
code), so a renamed command or option fails here before it confuses a field engineer.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from lanterna.cli import cli

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_INLINE = re.compile(r"`(lanterna [^`]+)`")
_LINE = re.compile(r"^(?:\$ )?(lanterna [a-z].*)$")


def _examples(path: Path) -> list[tuple[int, str]]:
    out = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        m = _LINE.match(line)
        if m:
            text = m.group(1)
            while text.endswith("\\") and i + 1 < len(lines):  # a continued console line
                i += 1
                text = text[:-1] + " " + lines[i].strip()
            out.append((i + 1, text))
        else:
            out += [(i + 1, t) for t in _INLINE.findall(line)]
        i += 1
    return out


def _check(text: str) -> str | None:
    """None when `text` names a real command and real options, else what is wrong."""
    text = text.split("#")[0].split(" | ")[0]
    text = re.sub(r"\\\|", "|", text)
    try:
        words = shlex.split(text)[1:]
    except ValueError:
        words = text.split()[1:]
    cmd: click.Command = cli
    path = ["lanterna"]
    opts = {o for p in cli.params for o in getattr(p, "opts", ())}
    for w in words:
        if w.startswith("-"):
            name = w.lstrip("[").split("=")[0].rstrip("]")
            if name.startswith("--") and re.fullmatch(r"--[a-z][a-z0-9-]*", name):
                known = opts | {o for p in cmd.params for o in getattr(p, "opts", ())}
                known |= {o for p in cmd.params for o in getattr(p, "secondary_opts", ())}
                if name not in known | {"--help"}:
                    return f"{' '.join(path)}: no option {name}"
            continue
        if isinstance(cmd, click.Group):
            if "|" in w:  # `site|node|group ...`: each must be a command
                missing = [x for x in w.split("|") if x not in cmd.commands]
                return f"{' '.join(path)}: no command {missing}" if missing else None
            if w in cmd.commands:
                cmd = cmd.commands[w]
                path.append(w)
                continue
            if w == "...":
                return None
            return f"{' '.join(path)}: no command {w!r}"
    return None


CASES = [(p, n, t) for p in DOCS for n, t in _examples(p)]


def test_the_docs_show_commands_at_all():
    names = {p.name for p, _, _ in CASES}
    assert {"README.md", "cli.md", "ota.md", "provisioning.md"} <= names
    assert len(CASES) > 60


@pytest.mark.parametrize("path,line,text", CASES, ids=[f"{p.name}:{n}" for p, n, _ in CASES])
def test_a_documented_command_exists_as_documented(path, line, text):
    assert _check(text) is None, f"{path.name}:{line}: `{text}`: {_check(text)}"


def test_the_check_catches_a_renamed_option_and_command():
    assert _check("lanterna dim 30 --site greenwich") is None
    assert "no option --sight" in _check("lanterna dim 30 --sight greenwich")
    assert "no command 'dimm'" in _check("lanterna dimm 30")
