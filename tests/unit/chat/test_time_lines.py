"""The incident message's times: the record's own figures, in each reader's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.chat.blocks import incident_blocks, time_lines, when

T = datetime(2026, 12, 2, 15, 44, 16, tzinfo=UTC)


def test_a_measured_incident_shows_its_impact_budget_detection_and_mitigation() -> None:
    incident = {
        "started_at": T,
        "detected_at": T + timedelta(minutes=2),
        "mitigated_at": T + timedelta(minutes=2, seconds=1),
        "impact_method": "events",
        "impact_started_at": T,
        "impact_ended_at": T + timedelta(minutes=2),
        "impact_budget_consumed": 0.0204,
    }
    stamp = int(T.timestamp())

    def shown(offset: int, clock: str) -> str:
        return f"<!date^{stamp + offset}^{{date_short}} {{time}}|2026-12-02 {clock} UTC>"

    assert time_lines(incident) == [
        f"*Impact*: from {shown(0, '15:44')} to {shown(120, '15:46')} (2 min), 2.0% of the error budget",
        f"*Detected* {shown(120, '15:46')} (MTTD 2 min); *mitigated* {shown(121, '15:46')} (after 2 min 1 s)",
    ]


def test_an_ongoing_or_unknown_impact_says_so() -> None:
    going = {"started_at": T, "detected_at": T + timedelta(seconds=45), "impact_started_at": T}
    assert time_lines(going)[0].endswith("and going on")
    assert time_lines(going)[1].endswith("(MTTD 45 s)")
    unknown = {"started_at": T, "detected_at": T, "impact_method": "unknown"}
    assert (
        time_lines(unknown)[0] == "*Impact*: window unknown (no SLI to measure it from, or no step exceeded)"
    )
    assert when(None) == "-"


def test_the_message_carries_the_times() -> None:
    incident = {
        "id": 7,
        "title": "burning",
        "status": "mitigated",
        "severity": "SEV2",
        "started_at": T,
        "detected_at": T + timedelta(minutes=3),
    }
    text = "\n".join(str(block) for block in incident_blocks(incident))
    assert "(MTTD 3 min)" in text
