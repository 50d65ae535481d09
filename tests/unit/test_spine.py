"""The spine's rules, checked on the code: typed services, small modules."""

from __future__ import annotations

import ast

from tests.conftest import REPO

APP = REPO / "app"
MODULE_LINES = 650  # "about 600": a module past this is doing two jobs
SOURCES = [path for path in sorted(APP.rglob("*.py")) if "migrations" not in path.parts]


def untyped_state_parameters(source: str, name: str) -> list[str]:
    """Parameters named `state` annotated `Any` (an untyped bag of services handed around)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for argument in [*node.args.args, *node.args.kwonlyargs]:
                annotation = argument.annotation
                if argument.arg == "state" and isinstance(annotation, ast.Name) and annotation.id == "Any":
                    found.append(f"{name}:{node.lineno} {node.name}")
    return found


def test_no_function_takes_an_untyped_state() -> None:
    found = [
        hit
        for path in SOURCES
        for hit in untyped_state_parameters(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    ]
    assert not found, found


def test_the_scan_finds_an_untyped_state() -> None:
    sample = "def run(state: Any, text: str) -> None: ...\n\ndef ok(services: Services) -> None: ...\n"
    assert untyped_state_parameters(sample, "sample.py") == ["sample.py:1 run"]


def test_no_module_fakes_the_services_with_a_namespace() -> None:
    offenders = [
        str(p.relative_to(REPO)) for p in SOURCES if "SimpleNamespace" in p.read_text(encoding="utf-8")
    ]
    assert not offenders, offenders


def test_modules_stay_small() -> None:
    sizes = {str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines()) for p in SOURCES}
    large = {name: lines for name, lines in sizes.items() if lines > MODULE_LINES}
    assert not large, large
