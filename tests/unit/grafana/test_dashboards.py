"""The shipped dashboards (deploy/grafana/) are what `sloguard grafana dashboards` writes now, are valid
Grafana dashboard models, and every query in them is PromQL that Prometheus' parser accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.grafana import dashboards
from app.slo import promql
from tests.dashboards import FOLDER, files, panels, queries, substitute

PANEL_TYPES = {"row", "stat", "timeseries", "table"}


def test_the_committed_dashboards_are_what_the_command_writes_now(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["grafana", "dashboards", "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    written = {path.name: path.read_text() for path in (tmp_path / "out").iterdir()}
    committed = {path.name: path.read_text() for path in FOLDER.glob("*.json")}
    assert sorted(written) == sorted(committed) == sorted(dashboards.DASHBOARDS)
    for name, text in written.items():
        assert committed[name] == text, (
            f"{name} is stale: run `sloguard grafana dashboards -o deploy/grafana`"
        )


def lost(original: Any, decoded: Any, path: str = "") -> list[str]:
    """What of `original` the decoded copy does not have (decoding may add defaults, never drop)."""
    if isinstance(original, dict):
        if not isinstance(decoded, dict):
            return [path]
        return [
            found
            for key, value in original.items()
            for found in (
                [f"{path}.{key}"] if key not in decoded else lost(value, decoded[key], f"{path}.{key}")
            )
        ]
    if isinstance(original, list):
        if not isinstance(decoded, list) or len(decoded) != len(original):
            return [path]
        return [found for i, item in enumerate(original) for found in lost(item, decoded[i], f"{path}[{i}]")]
    return [] if original == decoded else [f"{path}: {original!r} != {decoded!r}"]


@pytest.mark.parametrize("name", sorted(dashboards.DASHBOARDS))
def test_each_file_reads_back_through_the_sdk_without_losing_a_field(name: str) -> None:
    text = (FOLDER / name).read_text()
    decoded = json.loads(dashboards.encode_model(dashboards.load(text)))
    assert lost(json.loads(text), decoded) == []


@pytest.mark.parametrize("name", sorted(dashboards.DASHBOARDS))
def test_each_file_is_a_grafana_dashboard_model(name: str) -> None:
    model = files()[name]
    assert model["uid"] == name.removesuffix(".json") and len(model["uid"]) <= 40
    assert model["title"].startswith("sloguard / ")
    assert isinstance(model["schemaVersion"], int) and model["schemaVersion"] >= 36
    assert model["time"] == {"from": "now-6h", "to": "now"}
    variables = {variable["name"]: variable for variable in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in panels(model)]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    for panel in panels(model):
        assert panel["type"] in PANEL_TYPES, panel["type"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["description"], panel
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)) and all(refs), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            for variable in ("slo",):
                if f"${variable}" in target["expr"]:
                    assert variable in variables, f"{panel['title']}: ${variable} is not defined"


def test_the_detail_dashboard_lists_slos_by_their_sloth_id() -> None:
    model = files()["sloguard-slo-detail.json"]
    (slo,) = [variable for variable in model["templating"]["list"] if variable["name"] == "slo"]
    assert slo["type"] == "query" and slo["datasource"]["uid"] == "${datasource}"
    assert slo["query"]["query"] == "label_values(sloth_slo_info, sloth_id)"
    # Built on the recording rules alone: no sloguard_* metric, so it works without sloguard running.
    for query in queries("detail", model):
        assert "sloguard_" not in query.expr, query


def test_every_query_is_promql_prometheus_accepts() -> None:
    found = [query for name, model in files().items() for query in queries(name, model)]
    assert len(found) >= 30
    for query in found:
        problem = promql.problem(substitute(query.expr, "fraud-model-availability"))
        assert problem is None, f"{query.dashboard}: {query.where}: {problem}"
