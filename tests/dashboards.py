"""The PromQL inside the shipped Grafana dashboards, read from their JSON as Grafana would read it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.conftest import REPO

FOLDER = REPO / "deploy" / "grafana"
LABEL_VALUES = re.compile(r"^label_values\((?P<metric>[^,]+),\s*(?P<label>\w+)\)$")


@dataclass(frozen=True)
class Query:
    dashboard: str
    where: str  # panel title and refId, or the variable's name
    expr: str
    label: str | None = None  # for a variable's label_values(metric, label): the label it lists


def files() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in sorted(FOLDER.glob("*.json"))}


def panels(model: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    found = []
    for panel in model.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def queries(name: str, model: dict[str, Any]) -> list[Query]:
    found = []
    for panel in panels(model):
        for target in panel.get("targets", []):
            found.append(Query(name, f"{panel['title']} {target['refId']}", target["expr"]))
    for variable in model["templating"]["list"]:
        if variable["type"] == "query":
            text = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = LABEL_VALUES.match(text)
            assert match, f"{name}: variable {variable['name']}: not a label_values query: {text}"
            found.append(Query(name, f"${variable['name']}", match["metric"], match["label"]))
    return found


def substitute(expr: str, slo: str) -> str:
    """Grafana's variables as Grafana would put them in: `$slo` by an SLO id, `$__rate_interval` by 1m."""
    text = expr.replace("$__rate_interval", "1m").replace("${slo}", slo).replace("$slo", slo)
    assert "$" not in text, f"a variable the test does not know: {text}"
    return text
