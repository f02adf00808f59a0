"""The controller's import graph, read from the source (nothing is imported).

    python -c "import sys; sys.path.insert(0, 'tests'); import import_graph; import_graph.main()"

prints every import cycle among lanterna's modules and every module outside lanterna/cli/
that imports click (the CLI is the only place that may), and exits 1 if there is either.
tests/test_layout.py asserts both lists are empty. Every import counts, at the top of a
module or inside a function: a lazy import is still a dependency a reader must follow.
The MicroPython-side scripts in lanterna/sim/mp/ are not CPython modules and are left out.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "controller"
PACKAGE = ROOT / "lanterna"


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        rel = p.relative_to(ROOT).with_suffix("")
        if "mp" in rel.parts:
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = p
    return out


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names]
    return found


def graph() -> dict[str, set[str]]:
    """module -> the lanterna modules it imports (``from p import m`` counts as p.m when
    m is a module, else as p)."""
    mods = modules()
    g: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        for name in _imports(path):
            if name in mods and name != m:
                g[m].add(name)
    # "from lanterna.cli import broker" names both lanterna.cli and lanterna.cli.broker:
    # keep the package only when nothing more precise was meant.
    for m, deps in g.items():
        for d in list(deps):
            if any(o.startswith(d + ".") for o in deps) and not _imports_name(mods[m], d):
                deps.discard(d)
    return g


def _imports_name(path: Path, module: str) -> bool:
    """Whether `path` takes a name that is not a submodule from `module`."""
    mods = modules()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == module and node.level == 0:
            if any(f"{module}.{a.name}" not in mods for a in node.names):
                return True
        if isinstance(node, ast.Import) and any(a.name == module for a in node.names):
            return True
    return False


def cycles(g: dict[str, set[str]] | None = None) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), as sorted lists."""
    g = graph() if g is None else g
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return sorted(out)


def click_outside_cli() -> list[str]:
    return sorted(
        m
        for m, p in modules().items()
        if not (m == "lanterna.cli" or m.startswith("lanterna.cli."))
        and any(n == "click" or n.startswith("click.") for n in _imports(p))
    )


def main() -> None:
    cyc, clk = cycles(), click_outside_cli()
    for c in cyc:
        print("cycle: " + " -> ".join(c))
    for m in clk:
        print("click outside lanterna.cli: " + m)
    print(f"{len(modules())} modules, {len(cyc)} cycles, {len(clk)} click imports outside cli")
    sys.exit(1 if cyc or clk else 0)


if __name__ == "__main__":
    main()
