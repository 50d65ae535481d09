"""The impact window read from a real Prometheus holding generated history whose counts are known
(`tests/integration/scenarios.py`): the blip service fails 30 % of its 100 requests a second for the ten
minutes before T − 10 h, and 0.05 % otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.slo.impact import EVENTS, UNKNOWN
from app.slo.measure import measure
from app.slo.spec import load_specs
from app.sources.prometheus import PrometheusSource
from tests.integration.incidents.test_burn_door import BLIP_SPEC
from tests.prometheus import PrometheusServer

pytestmark = pytest.mark.integration


def test_the_blip_impact_window_budget_and_counts_follow_the_generated_history(
    history_prometheus: PrometheusServer, history_end: int, tmp_path: Path
) -> None:
    (tmp_path / "blip.yaml").write_text(BLIP_SPEC)
    (slo,) = load_specs([tmp_path])
    T = datetime.fromtimestamp(history_end, UTC)
    detected = T - timedelta(hours=10)  # when the fast page fires: the blip's last step
    source = PrometheusSource(history_prometheus.url)
    try:
        impact = measure(source, slo, detected, detected + timedelta(hours=1), min_events=10)
    finally:
        source.close()
    # 5-minute steps (the 30-day SLO's fast page short window); the two ending at T-10h-5m and T-10h
    # are at 30 % > 0.1 %, the ones either side at 0.05 %.
    assert impact.method == EVENTS
    assert impact.started_at == detected - timedelta(minutes=10)
    assert impact.ended_at == detected
    # 600 s × 100/s = 60,000 events, 30 % of them bad.
    assert impact.total_events == pytest.approx(60_000)
    assert impact.bad_events == pytest.approx(18_000)
    # The period's budget at the impact's end: 0.1 % of 30 days × 100/s = 259,200 events.
    assert impact.budget_events == pytest.approx(259_200)
    assert impact.budget_consumed == pytest.approx(18_000 / 259_200)


def test_a_detection_long_after_the_blip_has_an_unknown_window(
    history_prometheus: PrometheusServer, history_end: int, tmp_path: Path
) -> None:
    (tmp_path / "blip.yaml").write_text(BLIP_SPEC)
    (slo,) = load_specs([tmp_path])
    T = datetime.fromtimestamp(history_end, UTC)
    source = PrometheusSource(history_prometheus.url)
    try:
        # Two hours before T: only the 0.05 % background within the longest short window (6 h) before
        # it; the blip eight hours earlier is another story.
        late = measure(source, slo, T - timedelta(hours=2), T, min_events=10)
        # Half an hour before the blip: nothing exceeded before it either.
        early = measure(
            source, slo, T - timedelta(hours=11), T - timedelta(hours=10, minutes=30), min_events=10
        )
    finally:
        source.close()
    assert late.method == UNKNOWN and late.started_at is None
    assert early.method == UNKNOWN
