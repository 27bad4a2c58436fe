"""No import cycle inside exporter/: every import counts, top-level, function-level and typing-only.

The graph is read from the source (AST), not from `sys.modules`, so an import deferred into a
function to dodge a cycle at import time is still an edge: the two modules still need each
other. Imports under `if TYPE_CHECKING:` count too (stricter than the runtime: a type-only
cycle still means neither module can be understood or moved without the other).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Cycles tolerated for now (none: the console's two were broken); listed exactly, so a new
# cycle anywhere fails, and so does an entry that no longer exists (remove it).
KNOWN: set[frozenset[str]] = set()


def modules(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under `package` (a package is its __init__)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the modules of `package` it imports anywhere in its source.

    `from a.b import c` is an edge to a.b.c when that is a module, else to a.b; names outside
    the package are ignored; relative imports are resolved.
    """
    mods = modules(package)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = here[: len(here) - (node.level - 1)]
                    base = ".".join([*pkg, base] if base else pkg)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(frozenset(component))
    return out


def test_no_import_cycle_in_exporter() -> None:
    found = set(cycles(import_graph(ROOT / "exporter")))
    new = [sorted(c) for c in found - KNOWN]
    assert not new, f"import cycles: {new}"
    gone = [sorted(c) for c in KNOWN - found]
    assert not gone, f"broken since listed, remove from KNOWN: {gone}"


@pytest.mark.parametrize("where", ["top", "function", "typing"])
def test_a_cycle_is_found_wherever_the_import_sits(tmp_path: Path, where: str) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import g\n")
    (pkg / "c.py").write_text("import os\n")  # outside names and acyclic modules: no cycle
    back = {
        "top": "from . import a\n",
        "function": "def g():\n    from pkg.a import x\n    return x\n",
        "typing": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n",
    }[where]
    (pkg / "b.py").write_text(back)
    assert cycles(import_graph(pkg)) == [frozenset({"pkg.a", "pkg.b"})]
    (pkg / "b.py").write_text("import pkg.c\n")
    assert cycles(import_graph(pkg)) == []
