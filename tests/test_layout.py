"""The project's shape: fixed top level, and hardware reached only through `hal`."""

from __future__ import annotations

import ast
import subprocess

HARDWARE_MODULES = {"machine", "network", "esp32", "esp", "neopixel"}


def test_top_level_is_exactly_the_agreed_layout(repo):
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    top = {t.split("/")[0] for t in tracked if not t.startswith(".")}
    assert top <= {
        "pyproject.toml",
        "README.md",
        "Makefile",
        "firmware",
        "controller",
        "tests",
        "boards",
        "docs",
        "bench",
    }
    assert {"pyproject.toml", "README.md", "Makefile", "firmware", "controller"} <= top
    assert (repo / ".ci" / "run").exists()


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def test_only_hal_imports_hardware_modules(repo):
    offenders = []
    for path in (repo / "firmware").rglob("*.py"):
        rel = path.relative_to(repo / "firmware")
        if rel.parts[:2] == ("lamp", "hal"):
            continue
        bad = HARDWARE_MODULES.intersection(_imports(path))
        if bad:
            offenders.append(f"{rel}: {sorted(bad)}")
    assert offenders == []


def test_only_clock_reads_time(repo):
    offenders = []
    for path in (repo / "firmware" / "lamp").rglob("*.py"):
        rel = path.relative_to(repo / "firmware")
        if rel.as_posix() in ("lamp/clock.py",) or rel.parts[:2] == ("lamp", "hal"):
            continue
        if {"time", "utime"}.intersection(_imports(path)):
            offenders.append(str(rel))
    assert offenders == []


# -- the controller's import graph (tests/import_graph.py) ------------------------------


def test_no_import_cycle_among_controller_modules():
    import import_graph

    assert import_graph.cycles() == []


def test_the_cycle_check_sees_the_graph_and_finds_a_cycle():
    import import_graph

    g = import_graph.graph()
    # The root group adds every command group: the edges are really read...
    assert {"lanterna.cli.node", "lanterna.cli.ota"} <= g["lanterna.cli"]
    assert "lanterna.cli" not in g["lanterna.cli.node"]
    # ... and a cycle in them would be found.
    g["lanterna.cli.node"].add("lanterna.cli")
    assert any({"lanterna.cli", "lanterna.cli.node"} <= set(c) for c in import_graph.cycles(g))


def test_only_the_cli_imports_click():
    import import_graph

    assert import_graph.click_outside_cli() == []


def test_the_library_never_imports_the_simulator():
    import import_graph

    offenders = [
        (m, d)
        for m, deps in import_graph.graph().items()
        if not m.startswith(("lanterna.sim", "lanterna.cli"))
        for d in deps
        if d.startswith("lanterna.sim")
    ]
    assert offenders == []
