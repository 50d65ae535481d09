"""The alerts on sloguard itself (`deploy/prometheus/sloguard-rules.yaml`), checked and unit-tested by
the real promtool (Debian's `prometheus` package) against series whose story the test writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.prometheus import promtool

pytestmark = pytest.mark.integration
RULES = REPO / "deploy" / "prometheus" / "sloguard-rules.yaml"


def annotations(alert: str) -> dict[str, str]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                found: dict[str, str] = rule["annotations"]
                return found
    raise AssertionError(f"{alert} not in {RULES}")


def test_the_rules_file_is_valid_for_promtool() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dead_rows_and_a_stuck_backlog_alert_and_a_healthy_outbox_does_not(tmp_path: Path) -> None:
    dead = {"severity": "page"}
    backlog = {"severity": "ticket"}
    tests: dict[str, Any] = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                # Two replicas report the same shared table; a row dies at minute 3 and is retried at 6.
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'sloguard_outbox_dead_rows{kind="slack.post",instance="a"}',
                        "values": "0 0 0 1 1 1 0 0",
                    },
                    {
                        "series": 'sloguard_outbox_dead_rows{kind="slack.post",instance="b"}',
                        "values": "0 0 0 1 1 1 0 0",
                    },
                    {
                        "series": 'sloguard_outbox_dead_total{kind="slack.post",instance="a"}',
                        "values": "0 0 0 1 1 1 1 1",
                    },
                    {
                        "series": 'sloguard_outbox_oldest_age_seconds{kind="slack.post",instance="a"}',
                        "values": "0 60 120 180 240 300 0 0",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "2m", "alertname": "SloguardOutboxDead", "exp_alerts": []},
                    {
                        "eval_time": "4m",
                        "alertname": "SloguardOutboxDead",
                        "exp_alerts": [
                            {"exp_labels": dead, "exp_annotations": annotations("SloguardOutboxDead")}
                        ],
                    },
                    # Revived at minute 6 and the counter's increase has left the 10-minute window by 14.
                    {"eval_time": "14m", "alertname": "SloguardOutboxDead", "exp_alerts": []},
                    {"eval_time": "5m", "alertname": "SloguardOutboxBacklog", "exp_alerts": []},
                ],
            },
            {
                # A backlog whose oldest row keeps ageing past 10 minutes, for 5 more minutes.
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'sloguard_outbox_oldest_age_seconds{kind="evidence.enrich",instance="a"}',
                        "values": "0+60x30",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "12m", "alertname": "SloguardOutboxBacklog", "exp_alerts": []},
                    {
                        "eval_time": "17m",
                        "alertname": "SloguardOutboxBacklog",
                        "exp_alerts": [
                            {"exp_labels": backlog, "exp_annotations": annotations("SloguardOutboxBacklog")}
                        ],
                    },
                ],
            },
        ],
    }
    path = tmp_path / "sloguard-rules-test.yaml"
    path.write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
