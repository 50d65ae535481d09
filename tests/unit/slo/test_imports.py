"""The modules of app/slo import each other without a cycle, counting imports inside functions (a
"lazy" import only hides a cycle until someone calls the function first)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO


def module_name(root: Path, package: str, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def imported(tree: ast.AST, importer: str, is_package: bool, modules: set[str]) -> set[str]:
    """The modules among `modules` that `importer` imports, anywhere in its code."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                # `from . import x` in a module is relative to its package; in __init__ to itself.
                anchor = importer.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import x` imports pkg, and pkg.x when x is a module.
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            # `import a.b.c` runs a, a.b and a.b.c.
            parts = name.split(".")
            found |= {".".join(parts[:end]) for end in range(1, len(parts) + 1)} & modules
    found.discard(importer)
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports."""
    paths = {module_name(root, package, path): path for path in root.rglob("*.py")}
    modules = set(paths)
    return {
        name: imported(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py", modules)
        for name, path in paths.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> list[str] | None:
        if node in stack:
            return [*stack[stack.index(node) :], node]
        if node in done:
            return None
        for target in sorted(graph.get(node, ())):
            cycle = visit(target, [*stack, node])
            if cycle is not None:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle is not None:
            return cycle
    return None


def test_app_slo_has_no_import_cycle() -> None:
    graph = import_graph(REPO / "app" / "slo", "app.slo")
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])
    # Not vacuous: the graph sees the spec reader dispatching to both formats.
    assert {"app.slo.sloth", "app.slo.openslo"} <= graph["app.slo.spec"]


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_lazy_import_cycle_is_found(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "__init__.py": "",
            "spec.py": "def load():\n    from pkg import formats\n    return formats\n",
            "formats.py": "from pkg.spec import load\n",
            "model.py": "import os\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.spec"] == {"pkg", "pkg.formats"}
    assert graph["pkg.formats"] == {"pkg", "pkg.spec"}
    assert find_cycle(graph) == ["pkg.formats", "pkg.spec", "pkg.formats"]


def test_relative_and_dotted_imports_are_followed(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from . import b\n",
            "b.py": "import pkg.sub.c\n",
            "sub/__init__.py": "from .c import x\n",
            "sub/c.py": "from ..a import y\nx = 1\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg", "pkg.b"}
    assert graph["pkg.b"] == {"pkg", "pkg.sub", "pkg.sub.c"}
    assert graph["pkg.sub"] == {"pkg", "pkg.sub.c"}
    assert graph["pkg.sub.c"] == {"pkg", "pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c", "pkg.a"]


def test_no_cycle_is_reported_for_a_tree(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"__init__.py": "", "a.py": "from pkg import b, c\n", "b.py": "from pkg import c\n", "c.py": ""},
    )
    assert find_cycle(import_graph(tmp_path, "pkg")) is None
