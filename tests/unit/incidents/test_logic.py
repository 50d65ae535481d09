from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from itertools import product

import pytest

from app.errors import InvalidTransition
from app.incidents import logic
from app.incidents.models import IncidentStatus, Severity

S = IncidentStatus
# The lifecycle as the product promises it, written out independently of the code's table.
LEGAL = {
    (S.triggered, S.acknowledged),
    (S.triggered, S.mitigated),
    (S.triggered, S.resolved),
    (S.triggered, S.cancelled),
    (S.acknowledged, S.mitigated),
    (S.acknowledged, S.resolved),
    (S.acknowledged, S.cancelled),
    (S.mitigated, S.triggered),  # reopened by a new alert
    (S.mitigated, S.resolved),
    (S.mitigated, S.cancelled),
}


@pytest.mark.parametrize(("current", "target"), list(product(S, S)))
def test_every_transition_pair(current: IncidentStatus, target: IncidentStatus) -> None:
    if (current, target) in LEGAL:
        logic.check_transition(current, target)
    else:
        with pytest.raises(InvalidTransition) as caught:
            logic.check_transition(current, target)
        allowed = sorted(t.value for c, t in LEGAL if c == current)
        message = str(caught.value)
        assert f"cannot move a {current.value} incident to {target.value}" in message
        assert message.endswith(", ".join(allowed) if allowed else "none (it is closed)")


def test_response_times_from_stored_timestamps() -> None:
    started = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
    detected = started + timedelta(seconds=52)
    acknowledged = detected + timedelta(minutes=3)
    mitigated = started + timedelta(minutes=17)
    resolved = started + timedelta(hours=2)
    times = logic.response_times(started, detected, acknowledged, mitigated, resolved)
    assert times == {
        "time_to_detect": 52.0,
        "time_to_acknowledge": 180.0,
        "time_to_mitigate": 1020.0,
        "time_to_resolve": 7200.0,
    }
    assert logic.response_times(started, detected, None, None, None)["time_to_acknowledge"] is None


def test_first_acknowledgement_counts_and_reopen_clears_recovery_times() -> None:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    earlier = now - timedelta(minutes=5)
    assert logic.transition_stamps(S.acknowledged, now, earlier) == {"acknowledged_at": earlier}
    assert logic.transition_stamps(S.acknowledged, now, None) == {"acknowledged_at": now}
    assert logic.transition_stamps(S.triggered, now, earlier) == {"mitigated_at": None, "resolved_at": None}


def test_group_key_is_sha256() -> None:
    group = '{}:{alertname="FraudModelErrorSpike", service="fraud-model"}'
    assert logic.alert_group_key(group) == "am:" + hashlib.sha256(group.encode()).hexdigest()


SEVERITIES = logic.SeverityMap(
    {"page": Severity.SEV2, "critical": Severity.SEV2, "ticket": Severity.SEV3, "warning": Severity.SEV3}
)


@pytest.mark.parametrize(
    ("labels", "budget", "expected"),
    [
        ({"severity": "page"}, None, Severity.SEV2),
        ({"severity": "critical"}, 0.5, Severity.SEV2),
        ({"sloth_severity": "page"}, -0.1, Severity.SEV1),  # budget already gone
        ({"severity": "warning"}, -0.1, Severity.SEV3),  # only page-level burns escalate
        ({"sloth_severity": "ticket"}, None, Severity.SEV3),
        ({"severity": "info"}, None, Severity.SEV4),
        ({"severity": "page", "incident_severity": "sev1"}, None, Severity.SEV1),
    ],
)
def test_severity_mapping(labels: dict[str, str], budget: float | None, expected: Severity) -> None:
    assert SEVERITIES.for_labels(labels, budget) == expected
