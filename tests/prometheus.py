"""Real Prometheus 2.x and promtool (Debian's `prometheus` package) for the tests.

The servers and the history writer are the demo's (`app.demo.stack`); this module adds test helpers.
"""

from __future__ import annotations

import time

from app.demo.stack import PrometheusServer, Series, backfill, binary, promtool, write_openmetrics

__all__ = ["PrometheusServer", "Series", "aligned_now", "backfill", "binary", "promtool", "write_openmetrics"]


def aligned_now(step: int, margin: int = 600) -> int:
    """A sample-aligned time safely in the past (samples after `now` break later appends)."""
    return (int(time.time()) - margin) // step * step
