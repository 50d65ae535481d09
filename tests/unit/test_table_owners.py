"""One owner per table: a scan of app/ for the tables each area writes, checked against docs/architecture.md.

An area is a package under app/ (app/alerts, app/rollback, …) or a top-level module (app/db.py). A write is
an INSERT, UPDATE or DELETE through SQLAlchemy (`sa.insert(Model)`, `update(table)`, `delete(…)`), a row
built here (`Model(...)`), or the ORM (`session.add(obj)`, `session.delete(obj)`, with `obj` a model
instance: read with `session.get`/`select`, returned by a function annotated with the model, or a
parameter annotated so).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers every table)
from tests.conftest import REPO

APP = REPO / "app"
STATEMENTS = {"insert", "update", "delete"}


def table_models() -> dict[str, str]:
    """Model class name -> table name, for every table the app defines."""
    found = {}
    for mapper in SQLModel._sa_registry.mappers:  # type: ignore[attr-defined]
        cls = mapper.class_
        found[cls.__name__] = cls.__tablename__
    return found


def area_of(path: Path) -> str:
    relative = path.relative_to(APP)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def returning_functions(models: dict[str, str]) -> dict[str, set[str]]:
    """Function name -> models its return annotation names (`-> Incident`, `-> Incident | None`)."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.returns is not None:
                names = {n.id for n in ast.walk(node.returns) if isinstance(n, ast.Name)}
                names |= {c.value for c in ast.walk(node.returns) if isinstance(c, ast.Constant)}
                found[node.name] |= {name for name in names if isinstance(name, str) and name in models}
    return found


class WriteFinder(ast.NodeVisitor):
    def __init__(self, models: dict[str, str], returns: dict[str, set[str]]) -> None:
        self.models, self.returns = models, returns
        self.types: dict[str, str] = {}
        self.written: set[str] = set()

    def model_of(self, node: ast.AST | None) -> str | None:
        """The model an expression is (a class or `Model.__table__`) or holds (an instance, a query)."""
        if node is None:
            return None
        if isinstance(node, ast.Name):
            return node.id if node.id in self.models else self.types.get(node.id)
        if isinstance(node, ast.Attribute) and node.attr == "__table__":
            return self.model_of(node.value)
        if isinstance(node, ast.Call):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
            if name in self.models:
                return name  # Model(...)
            if name in ("get", "select") and node.args:
                found = self.model_of(node.args[0])
                if found:
                    return found
            candidates = self.returns.get(name, set())
            if len(candidates) == 1:
                return next(iter(candidates))
            if isinstance(function, ast.Attribute):
                return self.model_of(function.value)  # session.exec(select(M)).all(), query.where(...)
            for argument in node.args:
                if isinstance(argument, ast.Call) and (found := self.model_of(argument)):
                    return found
        return None

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        outer = dict(self.types)
        for argument in [*node.args.args, *node.args.kwonlyargs]:
            if argument.annotation is not None:
                names = [n.id for n in ast.walk(argument.annotation) if isinstance(n, ast.Name)]
                names += [c.value for c in ast.walk(argument.annotation) if isinstance(c, ast.Constant)]
                model = next((n for n in names if isinstance(n, str) and n in self.models), None)
                if model:
                    self.types[argument.arg] = model
        self.generic_visit(node)
        self.types = outer

    def visit_Assign(self, node: ast.Assign) -> None:
        model = self.model_of(node.value)
        for target in node.targets:
            if isinstance(target, ast.Name) and model:
                self.types[target.id] = model
        self.generic_visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        if model := self.model_of(node.value):
            self.types[node.target.id] = model
        self.generic_visit(node)

    def visit_For(self, node: ast.For) -> None:
        if isinstance(node.target, ast.Name) and (model := self.model_of(node.iter)):
            self.types[node.target.id] = model
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        function = node.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
        if name in self.models:
            self.written.add(name)  # a row built here is a row this area inserts
        elif name in STATEMENTS and node.args and (model := self.model_of(node.args[0])):
            self.written.add(model)
        elif name in ("add", "delete", "merge") and isinstance(function, ast.Attribute) and node.args:
            if model := self.model_of(node.args[0]):
                self.written.add(model)
        self.generic_visit(node)


def writers() -> dict[str, set[str]]:
    """Table name -> the areas whose code writes it."""
    models, found = table_models(), defaultdict(set)
    returns = returning_functions(models)
    for path in sorted(APP.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        finder = WriteFinder(models, returns)
        finder.visit(ast.parse(path.read_text(encoding="utf-8")))
        for model in finder.written:
            found[models[model]].add(area_of(path))
    return dict(found)


def documented_owners() -> dict[str, str]:
    """Table -> owner, from the "Who writes which table" table of docs/architecture.md."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## Who writes which table", 1)[1].split("\n## ", 1)[0]
    owners = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`"):
            for table in re.findall(r"`([a-z_]+)`", cells[0]):
                owners[table] = cells[1]
    return owners


def test_every_table_has_one_writing_area_and_the_map_names_it() -> None:
    found = writers()
    shared = {table: sorted(areas) for table, areas in found.items() if len(areas) > 1}
    assert not shared, f"tables written by more than one area: {shared}"
    owners = documented_owners()
    written = {table: next(iter(areas)) for table, areas in found.items()}
    # The installation row is written by its migration only, which the scan leaves out.
    assert written == {table: owner for table, owner in owners.items() if table != "installation"}


def test_the_scanner_sees_each_kind_of_write() -> None:
    """The scan itself, on code of each shape: a check that could not fail would prove nothing."""
    models = {"Incident": "incident", "AlertLink": "alert_link", "SloStatus": "slo_status", "Audit": "audit"}
    source = """
def open(session):
    session.add(Incident(title="x"))

def bulk(session, rows):
    session.execute(sa.insert(AlertLink), rows)

def prune(session):
    table = SloStatus.__table__
    session.execute(sa.delete(table).where(table.c.id < 3))

def touch(session, audit: Audit):
    audit.step = "done"
    session.add(audit)
"""
    finder = WriteFinder(models, {})
    finder.visit(ast.parse(source))
    assert finder.written == {"Incident", "AlertLink", "SloStatus", "Audit"}
    reading = WriteFinder(models, {})
    reading.visit(ast.parse("def read(session):\n    return session.exec(select(Incident)).all()\n"))
    assert reading.written == set()
