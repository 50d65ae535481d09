"""Alerts on the timeline are named so that no two read the same."""

from __future__ import annotations

from app.alerts.service import alert_title


def test_the_tier_of_a_sloth_alert_is_in_its_name() -> None:
    page = {"alertname": "FraudModelAvailability", "sloth_severity": "page", "sloth_id": "fraud-avail"}
    ticket = page | {"sloth_severity": "ticket"}
    assert alert_title(page, [page, ticket]) == "FraudModelAvailability (page)"
    assert alert_title(ticket, [page, ticket]) == "FraudModelAvailability (ticket)"


def test_namesakes_are_told_apart_by_the_labels_that_differ() -> None:
    one = {"alertname": "HighLatency", "instance": "a:9090", "job": "api"}
    two = one | {"instance": "b:9090"}
    assert alert_title(one, [one, two]) == "HighLatency (instance=a:9090)"
    assert alert_title(two, [one, two]) == "HighLatency (instance=b:9090)"
    # Alone, with nothing telling: the bare name.
    assert alert_title(one, [one]) == "HighLatency"
    assert alert_title({}, [{}]) == "alert"


def test_a_long_or_hostile_label_value_is_cut() -> None:
    one = {"alertname": "X", "severity": "p" * 5000}
    title = alert_title(one, [one])
    assert title.startswith("X (ppp") and len(title) < 80
