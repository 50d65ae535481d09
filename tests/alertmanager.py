"""A real Alertmanager 0.25 (Debian's prometheus-alertmanager) on loopback, posting to sloguard."""

from __future__ import annotations

from app.demo.stack import AlertmanagerServer

__all__ = ["AlertmanagerServer"]
