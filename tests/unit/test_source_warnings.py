"""A source that starts failing is one WARNING, however many probes fail, and its recovery another."""

from __future__ import annotations

import logging

import pytest

from app.errors import SourceError
from app.health import SourceProbe


class Flaky:
    """A source the test switches between answering and not (the other side, not sloguard's code)."""

    def __init__(self) -> None:
        self.down = False

    def ping(self, timeout: float) -> None:
        if self.down:
            raise SourceError("prometheus at http://127.0.0.1:9: connection refused")


def test_a_failing_source_warns_once_and_once_more_when_it_is_back(caplog: pytest.LogCaptureFixture) -> None:
    source = Flaky()
    probe = SourceProbe({"prometheus": source})
    caplog.set_level(logging.INFO, logger="app.health")
    try:
        probe.probe_once()  # healthy: nothing said
        source.down = True
        for _ in range(3):
            probe.probe_once()
        source.down = False
        probe.probe_once()
        probe.probe_once()
    finally:
        probe.stop()
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "app.health"]
    assert said == [
        ("WARNING", "source prometheus failing: prometheus at http://127.0.0.1:9: connection refused"),
        ("WARNING", "source prometheus recovered"),
    ]
