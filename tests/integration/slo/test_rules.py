"""`sloguard slo rules` output checked by promtool: syntax, and alerts over synthetic history."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.prometheus import promtool

pytestmark = pytest.mark.integration
SLOGUARD = str(Path(sys.executable).parent / "sloguard")
CLEAN_MINUTES = 3 * 24 * 60 + 60  # longer than the 3-day window, so every window starts clean


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "slo-rules.yml"
    result = subprocess.run(
        [SLOGUARD, "slo", "rules", str(REPO / "slo"), "-o", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    return path


def test_rules_for_the_examples_pass_promtool_check(rules_file: Path) -> None:
    result = promtool("check", "rules", str(rules_file))
    assert result.returncode == 0, result.stdout + result.stderr
    groups = yaml.safe_load(rules_file.read_text())["groups"]
    names = {rule.get("record") or rule.get("alert") for group in groups for rule in group["rules"]}
    # Sloth's names, for dashboards built on Sloth.
    for name in (
        "slo:sli_error:ratio_rate5m",
        "slo:sli_error:ratio_rate3d",
        "slo:sli_error:ratio_rate30d",
        "slo:objective:ratio",
        "slo:error_budget:ratio",
        "slo:time_period:days",
        "slo:current_burn_rate:ratio",
        "slo:period_burn_rate:ratio",
        "slo:period_error_budget_remaining:ratio",
        "sloth_slo_info",
        "FraudModelAvailability",
    ):
        assert name in names
    # The log-based SLI has no Prometheus rules; each of the three Prometheus SLOs has one group.
    assert [group["name"] for group in groups] == [
        "sloguard-slo-fraud-model-availability",
        "sloguard-slo-fraud-model-latency",
        "sloguard-slo-fraud-model-quality",
    ]
    assert not any("prediction-errors" in group["name"] for group in groups)


AVAILABILITY_LABELS = {
    "owner": "ml-platform",
    "model": "fraud-detector",
    "sloth_id": "fraud-model-availability",
    "sloth_service": "fraud-model",
    "sloth_slo": "availability",
    "category": "availability",
}


def alert(severity: str) -> dict[str, Any]:
    return {
        "exp_labels": {**AVAILABILITY_LABELS, "sloth_severity": severity, "severity": severity},
        "exp_annotations": {
            "title": f"({severity}) fraud-model availability SLO error budget burn rate is too fast.",
            "summary": "Fraud model is failing scoring requests faster than its error budget allows",
            "runbook_url": "runbooks/fraud-model-availability.md",
        },
    }


def requests(step_minutes: int, per_step: int, bad_per_step: int, error_steps: int) -> list[dict[str, str]]:
    """`per_step` requests every step: three clean days, then `bad_per_step` of them failing."""
    clean_steps = CLEAN_MINUTES // step_minutes
    ok_before = per_step * clean_steps
    ok_per_step = per_step - bad_per_step
    return [
        {
            "series": 'http_requests_total{service="fraud-model",code="500"}',
            "values": f"0x{clean_steps} {bad_per_step}+{bad_per_step}x{error_steps - 1}",
        },
        {
            "series": 'http_requests_total{service="fraud-model",code="200"}',
            "values": f"0+{per_step}x{clean_steps} {ok_before + ok_per_step}+{ok_per_step}x{error_steps - 1}",
        },
    ]


def at(minutes_after_errors_start: int) -> str:
    return f"{CLEAN_MINUTES + minutes_after_errors_start}m"


def run_case(rules_file: Path, folder: Path, step_minutes: int, case: dict[str, Any]) -> None:
    test_file = folder / f"slo-rules-{step_minutes}m.test.yml"
    case = {"interval": f"{step_minutes}m", **case}
    test_file.write_text(
        yaml.safe_dump(
            {"rule_files": [str(rules_file)], "evaluation_interval": f"{step_minutes}m", "tests": [case]}
        )
    )
    result = promtool("test", "rules", str(test_file), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_page_fires_for_two_percent_after_the_expected_time(rules_file: Path, tmp_path: Path) -> None:
    # 2 % on a 99.9 % SLO: e(1h) after m minutes of errors is 2m / 6000 (100 requests a minute), above
    # 14.4 · 0.001 = 0.0144 from m = 44 (43 gives 0.01433); e(5m) is 2 % > 0.0144 all along.
    # The tickets need e(1d) > 0.003 (m > 216) or e(3d) > 0.001 (m > 216): not within the first hour.
    run_case(
        rules_file,
        tmp_path,
        1,
        {
            "input_series": requests(1, 100, 2, 60),
            "alert_rule_test": [
                {"eval_time": at(43), "alertname": "FraudModelAvailability", "exp_alerts": []},
                {"eval_time": at(44), "alertname": "FraudModelAvailability", "exp_alerts": [alert("page")]},
            ],
        },
    )


def test_half_a_percent_never_pages_and_tickets_after_fourteen_hours(
    rules_file: Path, tmp_path: Path
) -> None:
    # 0.5 %: burn 5 never reaches the page factors (14.4 over 1h, 6 over 6h). The fast ticket needs
    # e(1d) = 0.005 m / 1440 > 0.003, i.e. m > 864 minutes (14.4 hours), with e(2h) = 0.5 % > 0.3 %.
    # Steps of 5 minutes, 1,000 requests each, 5 of them failing: m = 860 gives 0.002986, 865 gives 0.0030035.
    run_case(
        rules_file,
        tmp_path,
        5,
        {
            "input_series": requests(5, 1000, 5, 180),
            "alert_rule_test": [
                {"eval_time": at(60), "alertname": "FraudModelAvailability", "exp_alerts": []},
                {"eval_time": at(360), "alertname": "FraudModelAvailability", "exp_alerts": []},
                {"eval_time": at(860), "alertname": "FraudModelAvailability", "exp_alerts": []},
                {
                    "eval_time": at(865),
                    "alertname": "FraudModelAvailability",
                    "exp_alerts": [alert("ticket")],
                },
            ],
        },
    )
