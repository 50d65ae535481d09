"""Reading SLO spec files: every `*.yml`/`*.yaml` below a folder (multi-document files too), each
document handed to the module of its format (app/slo/sloth.py, app/slo/openslo.py).

`load_specs(paths)` returns the SLOs, or raises SpecError with every problem as `file: field: reason`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from app.errors import SpecError
from app.slo import openslo, rules, sloth
from app.slo.model import Slo
from app.slo.problems import FieldPath, Location, Problems

UNKNOWN_FORMAT = (
    "unknown format: expected `version: prometheus/v1` (Sloth) or `apiVersion: openslo/v1` (OpenSLO)"
)


def load_specs(paths: Iterable[Path]) -> list[Slo]:
    """Every SLO in the given files and folders; SpecError lists every problem found."""
    problems = Problems()
    slos: list[Slo] = []
    found_openslo: list[openslo.Found] = []
    for path in spec_files(paths):
        display = _display(path)
        if not path.exists():
            problems.add(Location(display), "no such file")
            continue
        documents = _documents(path, Location(display), problems)
        for index, document in documents:
            where = Location(display, (index,) if len(documents) > 1 else ())
            slos += _read(document, where, problems, found_openslo)
    slos += openslo.resolve(found_openslo, problems)

    seen: dict[str, str] = {}
    for slo in slos:
        if slo.id in seen:
            problems.add(Location(slo.source), f"duplicate SLO id {slo.id!r} (also in {seen[slo.id]})")
        seen.setdefault(slo.id, slo.source)
    if not problems:
        # Every query was checked where it was written; this catches what only their combination breaks.
        problems.extend(rules.problems(slos))
    if problems:
        raise SpecError(problems.lines)
    return sorted(slos, key=lambda slo: slo.id)


def _read(
    document: Any, where: Location, problems: Problems, found_openslo: list[openslo.Found]
) -> list[Slo]:
    """One YAML document's SLOs, by its format; OpenSLO documents wait for `openslo.resolve`."""
    if not isinstance(document, dict):
        problems.add(where, "must be a mapping")
        return []
    if document.get("version") == "prometheus/v1":
        return sloth.read(document, where, problems)
    if document.get("apiVersion") == "sloth.slok.dev/v1":
        return sloth.read_kubernetes(document, where, problems)
    if document.get("apiVersion") == "openslo/v1":
        found = openslo.read(document, where, problems)
        if found is not None:
            found_openslo.append(found)
        return []
    problems.add(where, UNKNOWN_FORMAT)
    return []


def spec_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            # Hidden entries are left out: a Kubernetes ConfigMap volume holds each file twice, in a
            # `..<timestamp>/` folder and as a link beside it (and editors leave `.file.yaml.swp`).
            files += sorted(
                p
                for p in path.rglob("*")
                if p.suffix in (".yml", ".yaml")
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            files.append(path)
    return files


def _documents(path: Path, where: Location, problems: Problems) -> list[tuple[int, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
        documents = [(index, doc) for index, doc in enumerate(yaml.safe_load_all(text)) if doc is not None]
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(where, f"cannot read: {exc}")
        return []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = where.at(f"line {mark.line + 1}") if mark is not None else where
        problems.add(at, f"not valid YAML: {getattr(exc, 'problem', exc)}")
        return []
    for index, document in documents:
        found = _surrogate(document, (index,) if len(documents) > 1 else ())
        if found is not None:
            # YAML's "\ud800" escape: not a character, and not something Prometheus could store.
            problems.add(where.at(*found), "holds a lone UTF-16 surrogate, which is not text")
            return []
    return documents


def _surrogate(value: Any, path: FieldPath) -> FieldPath | None:
    """Where the first string holding a lone surrogate is (in keys or values), or None."""
    if isinstance(value, str):
        return path if any("\ud800" <= char <= "\udfff" for char in value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _surrogate(key, (*path, repr(key))) or _surrogate(item, (*path, str(key)))
            if found is not None:
                return found
    if isinstance(value, list):
        for number, item in enumerate(value):
            found = _surrogate(item, (*path, number))
            if found is not None:
                return found
    return None


def _display(path: Path) -> str:
    """The path as the user would write it: relative to the working folder when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
