"""A real Alertmanager 0.25 (Debian's prometheus-alertmanager) on loopback, posting to sloguard."""

from __future__ import annotations

from typing import Any

from app.demo.stack import AlertmanagerServer

__all__ = ["AlertmanagerServer"]


def group_notification(group: int, alerts: int, name: str = "Storm") -> dict[str, Any]:
    """An Alertmanager v4 notification for group `group`, with `alerts` firing alerts (one per instance)."""
    labels = {"alertname": f"{name}{group}", "service": f"svc-{group}", "severity": "page"}
    return {
        "version": "4",
        "status": "firing",
        "receiver": "sloguard",
        "groupKey": f'{{}}:{{alertname="{name}{group}"}}',
        "groupLabels": {"alertname": f"{name}{group}"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "firing",
                "labels": labels | {"instance": f"i-{index}"},
                "annotations": {"summary": f"{name.lower()} {group}/{index}"},
                "startsAt": "2026-11-26T01:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": f"{group:08x}{index:08x}",
            }
            for index in range(alerts)
        ],
    }
