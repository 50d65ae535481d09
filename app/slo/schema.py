"""What both spec formats share: strict pydantic models, the checks on names and queries that reach
Prometheus, pydantic's errors turned into problems, and the rules every SLO obeys whatever its format.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from app.slo import promql
from app.slo.model import LABEL_NAME, METRIC_NAME, WINDOW_PLACEHOLDER, Slo
from app.slo.problems import Location, Part, Problems

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # fullmatch: "$" would let a final newline in
# Any Go-template action: Sloth runs queries through text/template, so `{{` only ever opens a placeholder.
ANY_PLACEHOLDER = re.compile(r"\{\{.*?\}\}", re.DOTALL)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def percent_to_ratio(percent: float) -> float:
    """99.9 -> 0.999 exactly as written (99.9 / 100 in binary floating point is 0.9990000000000001)."""
    return float(Decimal(str(percent)) / 100)


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


def query_problem(query: str) -> str | None:
    """Why a spec's query (with `{{.window}}` filled in) would not load in Prometheus, or None."""
    return placeholder_problem(query) or promql.problem(
        WINDOW_PLACEHOLDER.sub("5m", query), limit=promql.QUERY_DEPTH
    )


# ---------------------------------------------------------------- validators for pydantic fields


def name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise ValueError(f"must be letters, digits, '-', '_' or '.' (got {value!r})")
    return value


def label_name(value: str) -> str:
    problem = label_name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def alert_name(value: str) -> str:
    if not METRIC_NAME.fullmatch(value):
        raise ValueError(
            f"must be a Prometheus alert name: a letter, '_' or ':', then letters, digits, '_' or ':' "
            f"(got {value!r})"
        )
    return value


def window_query(value: str) -> str:
    if not WINDOW_PLACEHOLDER.search(value):
        raise ValueError("must contain {{.window}} where the range goes, e.g. rate(x[{{.window}}])")
    problem = query_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# Label and annotation names become Prometheus label names in the generated rules.
LabelName = Annotated[str, AfterValidator(label_name)]
Labels = dict[LabelName, str]


# ---------------------------------------------------------------- pydantic errors -> problems


def _is_internal(part: Any) -> bool:
    """pydantic's own steps in an error's path (validators, unions), which are not fields of the spec."""
    return part in ("function-after[_occurrences(), str]", "[key]", "str") or str(part).startswith(
        ("function-", "union[", "OsPolicyRef")
    )


def _path(loc: tuple[Any, ...]) -> tuple[Part, ...]:
    return tuple(part if isinstance(part, int) else str(part) for part in loc if not _is_internal(part))


def report(exc: ValidationError, where: Location, problems: Problems) -> None:
    """Each of pydantic's errors as a problem under `where`, in the spec's words."""
    for error in exc.errors():
        kind, message = error["type"], str(error["msg"]).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "missing":
            message = "required"
        elif kind not in ("value_error",) and not isinstance(error.get("input"), dict | list):
            message = f"{message} (got {error.get('input')!r})"
        problems.add(where.at(*_path(tuple(error["loc"]))), message)


# ---------------------------------------------------------------- rules for every SLO


def check_tiers(slo: Slo, where: Location, problems: Problems) -> None:
    """Refuse tiers that can never fire (`k · B >= 1`)."""
    for tier in slo.tiers:
        threshold = tier.threshold(slo.budget)
        if threshold >= 1:
            problems.add(
                where,
                f"tier {tier.name} can never fire: burn rate {tier.factor:g} x error budget "
                f"{slo.budget:.6g} = {threshold:.6g} >= 1 (raise the objective or drop the tier)",
            )
