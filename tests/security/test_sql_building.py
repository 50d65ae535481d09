"""SQL is built through the ORM or with bound parameters, never by formatting strings.

Scans the source of app/ (its syntax tree, not grep) for SQL entry points (`text`, `execute`,
`exec_driver_sql`, `executemany`, `executescript`) whose statement is an f-string, `%`- or
`+`-concatenation, `.format()` or `.join()`, directly or through a variable assigned that way.
"""

from __future__ import annotations

import ast
import textwrap

from tests.conftest import REPO

SQL_ENTRY_POINTS = {"text", "execute", "exec_driver_sql", "executemany", "executescript"}
# Formatting that cannot carry outside input, each with its reason. Keyed by the statement's source text
# so that an entry follows the code when lines move, and lapses when the code changes.
ALLOWED = {
    ("app/db.py", 'f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}"'): (
        "a module integer constant; SQLite PRAGMAs take no bound parameters"
    ),
}


def _assignments(body: ast.AST) -> dict[str, list[ast.expr]]:
    """Values assigned to each plain name in a function (or module), not descending into nested defs."""
    found: dict[str, list[ast.expr]] = {}
    stack = list(ast.iter_child_nodes(body))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found.setdefault(target.id, []).append(node.value)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
            if node.value is not None:
                value = node.value
                if isinstance(node, ast.AugAssign):
                    value = ast.BinOp(left=node.target, op=node.op, right=node.value)
                found.setdefault(node.target.id, []).append(value)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _is_formatted(
    node: ast.expr, names: dict[str, list[ast.expr]], seen: frozenset[str] = frozenset()
) -> bool:
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.FormattedValue) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return True  # "..." % x, "..." + x (numbers are not statements)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in ("format", "join", "format_map")
    if isinstance(node, ast.Name) and node.id in names and node.id not in seen:
        return any(_is_formatted(value, names, seen | {node.id}) for value in names[node.id])
    return False


def _entry_point(call: ast.Call) -> str | None:
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
    return name if name in SQL_ENTRY_POINTS else None


def formatted_sql(source: str, filename: str) -> list[tuple[int, str]]:
    """(line, statement source) of every SQL call whose statement is built by string formatting."""
    tree = ast.parse(source, filename)
    module_names = _assignments(tree)
    scopes: list[tuple[ast.AST, dict[str, list[ast.expr]]]] = [(tree, module_names)]
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            scopes.append((node, {**module_names, **_assignments(node)}))
    found = set()
    for scope, names in scopes:
        stack = list(ast.iter_child_nodes(scope))
        while stack:
            node = stack.pop()
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue  # its own scope
            stack.extend(ast.iter_child_nodes(node))
            if not isinstance(node, ast.Call) or _entry_point(node) is None:
                continue
            statement = (
                node.args[0]
                if node.args
                else next((k.value for k in node.keywords if k.arg in ("statement", "sql", "text")), None)
            )
            if statement is not None and _is_formatted(statement, names):
                found.add((node.lineno, ast.get_source_segment(source, statement) or "?"))
    return sorted(found)


def test_the_scanner_finds_each_way_of_formatting_sql() -> None:
    """The scanner itself: every bad shape is reported at its line, bound parameters are not."""
    source = textwrap.dedent(
        """
        import sqlalchemy as sa
        from sqlalchemy import text
        TABLE = "incident"
        QUERY = "SELECT * FROM " + TABLE

        def bad(connection, cursor, name, ids):
            connection.execute(sa.text(f"SELECT * FROM incident WHERE title = '{name}'"))
            connection.execute(text("SELECT * FROM incident WHERE title = '%s'" % name))
            connection.exec_driver_sql("DELETE FROM incident WHERE id = " + str(ids))
            cursor.execute("SELECT {}".format(name))
            statement = f"UPDATE incident SET title = '{name}'"
            connection.execute(sa.text(statement))
            connection.execute(sa.text(QUERY))
            sql = "SELECT 1"
            sql += name
            cursor.executemany(sql, [])
            cursor.execute(", ".join(ids))
            connection.execute(statement=sa.text(f"SELECT {name}"))

        def good(connection, cursor, name, session):
            connection.execute(sa.text("SELECT * FROM incident WHERE title = :name"), {"name": name})
            cursor.execute("PRAGMA foreign_keys=ON")
            connection.execute(sa.select(sa.column("x")).where(sa.column("title") == name))
            path.write_text(f"{name}")
        """
    )
    found = [line for line, _ in formatted_sql(source, "example.py")]
    assert found == [8, 9, 10, 11, 13, 14, 17, 18, 19]


def test_app_builds_no_sql_by_formatting_strings() -> None:
    problems = []
    files = sorted((REPO / "app").rglob("*.py"))
    assert len(files) > 40  # the scan sees the whole package
    used = set()
    for path in files:
        relative = path.relative_to(REPO).as_posix()
        for line, statement in formatted_sql(path.read_text(encoding="utf-8"), relative):
            if (relative, statement) in ALLOWED:
                used.add((relative, statement))
                continue
            problems.append(f"{relative}:{line}: SQL built by string formatting: {statement}")
    assert not problems, "use bound parameters or the ORM:\n" + "\n".join(problems)
    assert used == set(ALLOWED), f"stale allowances (the code changed): {set(ALLOWED) - used}"
