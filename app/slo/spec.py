"""SLO specs: the one internal model that Sloth `prometheus/v1` and OpenSLO v1 files are loaded into.

`load_specs(directory)` reads every `*.yml`/`*.yaml` below a folder (multi-document files too) and
returns the SLOs, or raises SpecError with every problem as `file: field: reason`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from app.errors import SpecError
from app.slo import burn

WINDOW_PLACEHOLDER = re.compile(r"\{\{\s*\.window\s*\}\}")
# Any Go-template action: Sloth runs queries through text/template, so `{{` only ever opens a placeholder.
ANY_PLACEHOLDER = re.compile(r"\{\{.*?\}\}", re.DOTALL)
# Prometheus 2.x names (3.x accepts more only when quoted, which 2.x cannot read).
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def promql_string(value: str) -> str:
    """`value` as a PromQL double-quoted string literal, whatever it holds (quotes, backslashes, lines)."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def label_name_problem(name: str) -> str | None:
    """Why `name` cannot be a Prometheus label name (None when it can)."""
    if not LABEL_NAME.fullmatch(name):
        return f"must be a Prometheus label name: a letter or '_', then letters, digits or '_' (got {name!r})"
    if name.startswith("__"):
        return f"names starting with '__' are reserved for Prometheus (got {name!r})"
    return None


def placeholder_problem(query: str) -> str | None:
    """A `{{...}}` other than `{{.window}}` (`{{.Window}}`, `{{ .range }}`) would reach Prometheus as is."""
    for found in ANY_PLACEHOLDER.findall(query):
        if not WINDOW_PLACEHOLDER.fullmatch(found):
            return f"unknown placeholder {found}: the only one is {{{{.window}}}} (lower case)"
    return None


@dataclass(frozen=True)
class EventsSli:
    """Prometheus: bad and total event rates, each a query with a `{{.window}}` placeholder."""

    error_query: str
    total_query: str

    def error_for(self, window: str) -> str:
        return WINDOW_PLACEHOLDER.sub(window, self.error_query)

    def total_for(self, window: str) -> str:
        return WINDOW_PLACEHOLDER.sub(window, self.total_query)


@dataclass(frozen=True)
class RawSli:
    """Prometheus: an error ratio query with a `{{.window}}` placeholder (no event counts)."""

    error_ratio_query: str

    def ratio_for(self, window: str) -> str:
        return WINDOW_PLACEHOLDER.sub(window, self.error_ratio_query)


@dataclass(frozen=True)
class LatencySli:
    """Prometheus histogram: events slower than `threshold` seconds are bad.

    The threshold must be one of the histogram's `le` buckets, or the count of fast events would be an
    interpolation; the evaluation checks that against Prometheus and lists the buckets when it is not.
    """

    metric: str  # histogram base name, e.g. http_request_duration_seconds
    selector: str  # label matchers without braces, e.g. service="fraud-model"
    threshold: float

    @property
    def le(self) -> str:
        return format(self.threshold, "g")

    def _matchers(self, *extra: str) -> str:
        return ",".join(part for part in (self.selector, *extra) if part)

    def to_events(self) -> EventsSli:
        window = "[{{.window}}]"
        total = f"sum(rate({self.metric}_count{{{self._matchers()}}}{window}))"
        if self.threshold.is_integer():
            # Exporters write whole-number buckets as "1" or "1.0" (Prometheus 3 normalises to "1.0").
            whole = str(int(self.threshold))
            le_matcher = f'le=~"{whole}|{whole}.0"'
        else:
            le_matcher = 'le="' + self.le + '"'
        fast = f"sum(rate({self.metric}_bucket{{{self._matchers(le_matcher)}}}{window}))"
        return EventsSli(error_query=f"({total} - {fast})", total_query=total)

    def buckets_query(self) -> str:
        return f"count by (le) ({self.metric}_bucket{{{self._matchers()}}})"


@dataclass(frozen=True)
class ElasticsearchSli:
    """Log events in Elasticsearch; `bad_query` or `good_query` (query-string syntax) picks the bad ones."""

    index: str
    timestamp_field: str
    total_query: str | None
    bad_query: str | None = None
    good_query: str | None = None


Sli = EventsSli | RawSli | LatencySli | ElasticsearchSli


@dataclass(frozen=True)
class Alerting:
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    page_labels: dict[str, str] = field(default_factory=dict)
    page_annotations: dict[str, str] = field(default_factory=dict)
    ticket_labels: dict[str, str] = field(default_factory=dict)
    ticket_annotations: dict[str, str] = field(default_factory=dict)
    page_disabled: bool = False
    ticket_disabled: bool = False


@dataclass(frozen=True)
class Slo:
    id: str  # `<service>-<name>`, Sloth's sloth_id
    service: str
    name: str
    objective: float  # a ratio: 0.999
    sli: Sli
    source: str  # file the SLO came from, for messages
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    alerting: Alerting = field(default_factory=Alerting)
    period_seconds: int = 30 * burn.DAY
    calendar_start: datetime | None = None  # set for calendar-aligned periods
    tiers: tuple[burn.Tier, ...] = ()

    @property
    def budget(self) -> float:
        return 1.0 - self.objective

    @property
    def windows(self) -> tuple[burn.Window, ...]:
        return burn.windows_of(self.tiers)

    @property
    def model(self) -> str | None:
        return self.labels.get("model")

    @property
    def runbook(self) -> str | None:
        for found in (self.alerting.annotations, self.alerting.page_annotations):
            for key in ("runbook_url", "runbook"):
                if found.get(key):
                    return found[key]
        return None

    @property
    def is_prometheus(self) -> bool:
        return not isinstance(self.sli, ElasticsearchSli)


class Problems:
    """Collects `file: field: reason` lines while a file is read."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, source: str, location: str, reason: str) -> None:
        self.lines.append(f"{source}: {location}: {reason}" if location else f"{source}: {reason}")


def check_tiers(slo: Slo, location: str, problems: Problems) -> None:
    """Refuse tiers that can never fire (`k · B >= 1`) or whose windows exceed the period."""
    for tier in slo.tiers:
        threshold = tier.threshold(slo.budget)
        if threshold >= 1:
            problems.add(
                slo.source,
                location,
                f"tier {tier.name} can never fire: burn rate {tier.factor:g} x error budget "
                f"{slo.budget:.6g} = {threshold:.6g} >= 1 (raise the objective or drop the tier)",
            )


def _documents(path: Path, problems: Problems, display: str) -> list[tuple[int, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
        documents = [(index, doc) for index, doc in enumerate(yaml.safe_load_all(text)) if doc is not None]
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(display, "", f"cannot read: {exc}")
        return []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problems.add(display, where, f"not valid YAML: {getattr(exc, 'problem', exc)}")
        return []
    for index, document in documents:
        found = _surrogate(document, f"[{index}]" if len(documents) > 1 else "")
        if found is not None:
            # YAML's "\ud800" escape: not a character, and not something Prometheus could store.
            problems.add(display, found.lstrip("."), "holds a lone UTF-16 surrogate, which is not text")
            return []
    return documents


def _surrogate(value: Any, where: str) -> str | None:
    """Where the first string holding a lone surrogate is (in keys or values), or None."""
    if isinstance(value, str):
        return where if any("\ud800" <= char <= "\udfff" for char in value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _surrogate(key, f"{where}.{key!r}") or _surrogate(item, f"{where}.{key}")
            if found is not None:
                return found
    if isinstance(value, list):
        for number, item in enumerate(value):
            found = _surrogate(item, f"{where}[{number}]")
            if found is not None:
                return found
    return None


def spec_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
        else:
            files.append(path)
    return files


def load_specs(paths: Iterable[Path]) -> list[Slo]:
    """Every SLO in the given files and folders; SpecError lists every problem found."""
    # The format parsers and the rules build on Slo objects: import late to avoid a cycle.
    from app.slo import formats, rules

    problems = Problems()
    slos: list[Slo] = []
    openslo: list[formats.OpenSloDocument] = []
    for path in spec_files(paths):
        display = _display(path)
        if not path.exists():
            problems.add(display, "", "no such file")
            continue
        documents = _documents(path, problems, display)
        for index, document in documents:
            prefix = f"[{index}]." if len(documents) > 1 else ""
            slos += formats.parse_document(document, display, prefix, problems, openslo)
    slos += formats.resolve_openslo(openslo, problems)

    seen: dict[str, str] = {}
    for slo in slos:
        if slo.id in seen:
            problems.add(slo.source, "", f"duplicate SLO id {slo.id!r} (also in {seen[slo.id]})")
        seen.setdefault(slo.id, slo.source)
    if not problems.lines:
        # Every query was checked where it was written; this catches what only their combination breaks.
        problems.lines += rules.problems(slos)
    if problems.lines:
        raise SpecError(problems.lines)
    return sorted(slos, key=lambda slo: slo.id)


def _display(path: Path) -> str:
    """The path as the user would write it: relative to the working folder when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
